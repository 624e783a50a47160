"""A Slack incoming-webhook sink.

Entry point::

    SlackWebhooks(webhooks: Mapping[str, str] | None = None,
                  *, faults: Faults | None = None, recorder: Recorder | None = None)

``webhooks`` maps a webhook path below ``/services/`` (for example
``"T0SANDBOX/B0TEAM/teamsecret"``) to the channel it posts to (``"#deployments"``);
``add_webhook(path, channel)`` adds one later. The instance is a WSGI app. A
``slackwebhook`` connection reaches it with host ``http://127.0.0.1:<port>/services``
and password = the path (``SlackWebhookHook`` joins them), or with the full
webhook URL as password.

``POST /services/<path>`` with a JSON object answers ``ok`` (text/plain) as Slack
does and records ``{path, channel, text, blocks, attachments, body}``. Slack's
errors: invalid JSON → 400 ``invalid_payload``; neither ``text`` nor ``blocks``
nor ``attachments`` → 400 ``no_text``; unknown path → 404 ``no_service``. An
``outage`` fault with ``service="slack"`` answers 503 to everything.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

from werkzeug.wrappers import Request, Response

from sandbox.faults import Faults
from sandbox.recorder import Recorder

PREFIX = "/services/"


class SlackWebhooks:
    """The WSGI app; ``recorder`` holds one entry per accepted message."""

    def __init__(
        self,
        webhooks: Mapping[str, str] | None = None,
        *,
        faults: Faults | None = None,
        recorder: Recorder | None = None,
    ) -> None:
        self.faults = faults or Faults()
        self.recorder = recorder if recorder is not None else Recorder()
        self._lock = threading.Lock()
        self._webhooks: dict[str, str] = {}
        for path, channel in (webhooks or {}).items():
            self.add_webhook(path, channel)

    def add_webhook(self, path: str, channel: str) -> str:
        """Register a webhook path (below ``/services/``); return its full path."""
        path = path.strip("/").removeprefix(PREFIX.strip("/") + "/")
        if not path:
            raise ValueError("a webhook path must not be empty")
        with self._lock:
            self._webhooks[path] = channel
        return PREFIX + path

    def __call__(self, environ: dict, start_response: Any) -> Any:
        return self._handle(Request(environ))(environ, start_response)

    def _handle(self, request: Request) -> Response:
        if self.faults.find("outage", service="slack"):
            return _text("service_unavailable", 503)
        path = request.path.removeprefix(PREFIX).strip("/")
        with self._lock:
            channel = self._webhooks.get(path) if request.path.startswith(PREFIX) else None
        if channel is None:
            return _text("no_service", 404)
        if request.method != "POST":
            return _text("invalid_method", 405)
        try:
            body = json.loads(request.get_data(as_text=True))
        except ValueError:
            return _text("invalid_payload", 400)
        if not isinstance(body, dict):
            return _text("invalid_payload", 400)
        if not any(body.get(key) for key in ("text", "blocks", "attachments")):
            return _text("no_text", 400)
        self.recorder.record(
            path=path,
            channel=channel,
            text=body.get("text"),
            blocks=body.get("blocks"),
            attachments=body.get("attachments"),
            body=body,
        )
        return _text("ok", 200)


def _text(body: str, status: int) -> Response:
    return Response(body, status=status, content_type="text/plain; charset=utf-8")
