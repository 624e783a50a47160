"""A small Airflow API server for the unit tier: the routes the pipeline's reader calls, over real HTTP.

It answers as Airflow 3.3.2's API server does (FAB's numeric user ids, the HITL detail and
audit-log shapes), from what a test puts in ``state``.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlparse

USER_IDS = {"admin": "1", "alice": "2", "bob": "3", "carol": "4", "dave": "5", "ci": "6", "erin": "7"}


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


class FakeAirflowApi:
    def __init__(self) -> None:
        self.users = dict(USER_IDS)
        self.hitl: dict[str, list[dict]] = {}  # task id -> its tries' HITL details, oldest first
        self.event_logs: list[dict] = []
        self.requests: list[str] = []
        self.queries: dict[str, list[dict[str, list[str]]]] = {}  # path -> each request's query
        # When set, each audit-log read and each latest-try HITL read waits at it (a test's
        # rendezvous: the reads only pass it if they are in flight together).
        self.rendezvous: threading.Barrier | None = None
        self.logins = 0
        self.token_seconds: float | None = 86400  # the JWT's lifetime; None: a token without ``exp``
        self.tokens: set[str] = set()  # the tokens it takes
        self._serial = itertools.count(1)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def issue_token(self) -> str:
        """A JWT-shaped token (unsigned) with the lifetime ``token_seconds``, as Airflow's ``exp``."""
        claims = {"sub": "pipeline", "n": next(self._serial)}
        if self.token_seconds is not None:
            claims["exp"] = int(time.time() + self.token_seconds)
        token = f"{_b64({'alg': 'none'})}.{_b64(claims)}.unsigned"
        self.tokens.add(token)
        return token

    def restart(self) -> None:
        """Refuse every token issued so far, as an API server started with a new JWT secret does
        (403 "Invalid JWT token")."""
        self.tokens.clear()

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
                    api.logins += 1
                    return self._send(201, {"access_token": api.issue_token()})
                return self._send(401, {"detail": "Invalid credentials"})

            def do_GET(self) -> None:
                url = urlparse(self.path)
                api.requests.append(url.path)
                # As Airflow 3.3.2's resolve_user_from_token: no token is 401, a token its JWT
                # secret does not verify (issued before a restart with a new secret) is 403.
                token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
                if not token:
                    return self._send(401, {"detail": "Not authenticated"})
                if token not in api.tokens:
                    return self._send(403, {"detail": "Invalid JWT token"})
                if url.path == "/api/v2/forbidden":  # a route the pipeline's role may not read
                    return self._send(403, {"detail": "Forbidden"})
                query = parse_qs(url.query)
                api.queries.setdefault(url.path, []).append(query)
                parts = [unquote(p) for p in url.path.split("/")]
                if api.rendezvous is not None and (
                    url.path == "/api/v2/eventLogs" or ("hitlDetails" in parts and "tries" not in parts)
                ):
                    try:
                        api.rendezvous.wait()
                    except threading.BrokenBarrierError:
                        pass
                if url.path == "/deployments-view/api/identities":
                    names = query.get("username", [])
                    return self._send(
                        200, {"identities": [{"username": n, "id": api.users.get(n)} for n in names]}
                    )
                if url.path == "/api/v2/eventLogs":
                    # As Airflow's route: ``included_events`` (repeated) keeps only those events.
                    wanted = set(query.get("included_events", []))
                    logs = [e for e in api.event_logs if not wanted or e.get("event") in wanted]
                    return self._send(200, {"event_logs": logs, "total_entries": len(logs)})
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
