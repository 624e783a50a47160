"""What an emulator received, kept in memory for tests and the control API.

Every emulator of the sandbox owns one ``Recorder`` (attribute ``recorder``;
pass your own to the constructor to share or inspect it). Entries are plain
JSON-safe dicts with a ``received_at`` ISO-8601 UTC timestamp added, in
arrival order; ``GET /recorded/<service>`` of the control API serves
``recorder.list()``.
"""

from __future__ import annotations

import copy
import json
import threading
from datetime import UTC, datetime
from typing import Any


class Recorder:
    """A thread-safe, append-only list of received messages."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[dict[str, Any]] = []

    def record(self, **fields: Any) -> dict[str, Any]:
        """Append one entry (``fields`` plus ``received_at``) and return a copy of it."""
        entry = {"received_at": datetime.now(UTC).isoformat(), **fields}
        with self._lock:
            self._entries.append(entry)
        return copy.deepcopy(entry)

    def record_request(self, request: Any, status: int, **fields: Any) -> dict[str, Any]:
        """Append an HTTP request (a werkzeug ``Request``) and the status it got: method, path,
        body (parsed when it is JSON, else the text, None when empty), and ``fields``."""
        body = request.get_data(as_text=True)
        try:
            payload: Any = json.loads(body) if body else None
        except ValueError:
            payload = body
        return self.record(method=request.method, path=request.path, json=payload, status=status, **fields)

    def list(self, **match: Any) -> list[dict[str, Any]]:
        """Copies of the entries whose fields equal every ``match`` item, oldest first."""
        with self._lock:
            entries = copy.deepcopy(self._entries)
        return [e for e in entries if all(e.get(k) == v for k, v in match.items())]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
