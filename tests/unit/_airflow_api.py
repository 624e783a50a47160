"""A small Airflow API server for the unit tier: the routes the pipeline's reader calls, over real HTTP.

It answers as Airflow 3.3.2's API server does (FAB's numeric user ids, the HITL detail and
audit-log shapes), from what a test puts in ``state``.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlparse

TOKEN = "unit-token"
USER_IDS = {"admin": "1", "alice": "2", "bob": "3", "carol": "4", "dave": "5", "ci": "6", "erin": "7"}


class FakeAirflowApi:
    def __init__(self) -> None:
        self.users = dict(USER_IDS)
        self.hitl: dict[str, list[dict]] = {}  # task id -> its tries' HITL details, oldest first
        self.event_logs: list[dict] = []
        self.requests: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def connection_uri(self) -> str:
        return f"http://pipeline:pipeline-pass@127.0.0.1:{self.server.server_port}"

    def answer(self, task_id: str, user: str, option: str = "Approve", *, body: str, at: str) -> dict:
        """Record an answer as Airflow's HITL detail of the task's next try."""
        tries = self.hitl.setdefault(task_id, [])
        detail = {
            "task_instance": {"task_id": task_id, "try_number": len(tries) + 1},
            "options": ["Approve", "Reject"],
            "subject": "Approve release",
            "body": body,
            "assigned_users": [],
            "created_at": at,
            "responded_by_user": {"id": self.users[user], "name": user},
            "responded_at": at,
            "chosen_options": [option],
            "params_input": {},
            "response_received": True,
        }
        tries.append(detail)
        return detail

    def close(self) -> None:
        self.server.shutdown()

    def _handler(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _send(self, status: int, payload) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path == "/auth/token" and body.get("username") == "pipeline":
                    return self._send(201, {"access_token": TOKEN})
                return self._send(401, {"detail": "Invalid credentials"})

            def do_GET(self) -> None:
                url = urlparse(self.path)
                api.requests.append(url.path)
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    return self._send(401, {"detail": "Not authenticated"})
                query = parse_qs(url.query)
                parts = [unquote(p) for p in url.path.split("/")]
                if url.path == "/deployments-view/api/identities":
                    names = query.get("username", [])
                    return self._send(
                        200, {"identities": [{"username": n, "id": api.users.get(n)} for n in names]}
                    )
                if url.path == "/api/v2/eventLogs":
                    return self._send(
                        200, {"event_logs": api.event_logs, "total_entries": len(api.event_logs)}
                    )
                if "hitlDetails" in parts:
                    task_id = parts[parts.index("taskInstances") + 1]
                    tries = api.hitl.get(task_id) or []
                    if "tries" in parts:
                        number = int(parts[-1])
                        found = tries[number - 1] if 0 < number <= len(tries) else None
                    else:
                        found = tries[-1] if tries else None
                    return self._send(200, found) if found else self._send(404, {"detail": "not found"})
                return self._send(404, {"detail": "no such route"})

        return Handler
