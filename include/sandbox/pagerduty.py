"""PagerDuty's Events API v2 (alert events), enough to page on-call from a rollback.

Entry point::

    PagerDutyEvents(routing_keys: Iterable[str] = (), *, faults: Faults | None = None,
                    recorder: Recorder | None = None)

``POST /v2/enqueue`` with ``{routing_key, event_action, dedup_key?, payload: {summary,
source, severity, ...}, links?, images?}`` answers 202 ``{"status": "success", "message":
"Event processed", "dedup_key": ...}``, as PagerDuty does (a trigger without a
``dedup_key`` gets a generated one). An invalid event answers 400 ``{"status": "invalid
event", "message": "Event object is invalid", "errors": [...]}``: a routing key that is
not 32 characters or not registered, an unknown ``event_action``, a trigger without
``payload.summary``/``source``/``severity``, a severity other than critical, error,
warning or info, a summary over 1024 characters, an acknowledge or resolve without a
``dedup_key``. An ``outage`` fault with ``service="pagerduty"`` answers 503. Each
accepted event is recorded as ``{routing_key, event_action, dedup_key, payload, links}``;
``alerts()`` gives each dedup key's current state (triggered, acknowledged, resolved).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterable
from typing import Any

from werkzeug.wrappers import Request, Response

from sandbox.faults import Faults
from sandbox.recorder import Recorder

ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")
STATES = {"trigger": "triggered", "acknowledge": "acknowledged", "resolve": "resolved"}
ROUTING_KEY_LENGTH = 32
SUMMARY_LIMIT = 1024


class PagerDutyEvents:
    """The WSGI app; ``recorder`` holds one entry per accepted event."""

    def __init__(
        self,
        routing_keys: Iterable[str] = (),
        *,
        faults: Faults | None = None,
        recorder: Recorder | None = None,
    ) -> None:
        self.faults = faults or Faults()
        self.recorder = recorder if recorder is not None else Recorder()
        self.routing_keys = set(routing_keys)
        self._lock = threading.Lock()
        self._alerts: dict[str, str] = {}

    def alerts(self) -> dict[str, str]:
        """``{dedup_key: state}`` of every alert an event has touched."""
        with self._lock:
            return dict(self._alerts)

    def __call__(self, environ: dict, start_response: Any) -> Any:
        return self._handle(Request(environ))(environ, start_response)

    def _handle(self, request: Request) -> Response:
        if self.faults.find("outage", service="pagerduty"):
            return _json({"status": "unavailable", "message": "Service unavailable"}, 503)
        if request.path.rstrip("/") != "/v2/enqueue":
            return _json({"status": "not found", "message": "Not found"}, 404)
        if request.method != "POST":
            return _json({"status": "method not allowed", "message": "Use POST"}, 405)
        try:
            event = json.loads(request.get_data(as_text=True))
        except ValueError:
            return _invalid(["Event object is not valid JSON"])
        if not isinstance(event, dict):
            return _invalid(["Event object must be a JSON object"])
        errors = self._errors(event)
        if errors:
            return _invalid(errors)
        dedup_key = event.get("dedup_key") or uuid.uuid4().hex
        with self._lock:
            self._alerts[dedup_key] = STATES[event["event_action"]]
        self.recorder.record(
            routing_key=event["routing_key"],
            event_action=event["event_action"],
            dedup_key=dedup_key,
            payload=event.get("payload"),
            links=event.get("links"),
        )
        return _json({"status": "success", "message": "Event processed", "dedup_key": dedup_key}, 202)

    def _errors(self, event: dict[str, Any]) -> list[str]:
        errors = []
        key = event.get("routing_key")
        if not isinstance(key, str) or len(key) != ROUTING_KEY_LENGTH:
            errors.append(f"Length of 'routing_key' is incorrect (should be {ROUTING_KEY_LENGTH} characters)")
        elif self.routing_keys and key not in self.routing_keys:
            errors.append("'routing_key' does not match an integration")
        action = event.get("event_action")
        if action not in ACTIONS:
            errors.append(f"'event_action' must be one of {', '.join(ACTIONS)}")
        elif action == "trigger":
            payload = event.get("payload")
            if not isinstance(payload, dict):
                errors.append("'payload' is missing or not an object")
            else:
                for field in ("summary", "source", "severity"):
                    if not payload.get(field):
                        errors.append(f"'payload.{field}' is missing or blank")
                if payload.get("severity") and payload["severity"] not in SEVERITIES:
                    errors.append(f"'payload.severity' must be one of {', '.join(SEVERITIES)}")
                if len(str(payload.get("summary", ""))) > SUMMARY_LIMIT:
                    errors.append(f"'payload.summary' is longer than {SUMMARY_LIMIT} characters")
        elif not event.get("dedup_key"):
            errors.append(f"'dedup_key' is required for event_action={action}")
        return errors


def _invalid(errors: list[str]) -> Response:
    return _json({"status": "invalid event", "message": "Event object is invalid", "errors": errors}, 400)


def _json(body: dict[str, Any], status: int) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")
