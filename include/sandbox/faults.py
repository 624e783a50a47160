"""Injected faults, shared by every emulator of the sandbox.

A fault is a kind plus matchers and settings, for example
``{"kind": "error_rate", "version": "v1.1.0", "percent": 30}``. It applies to a
request when every matcher the fault names (``version``, ``colour``, ``function_version``,
``backend_version``, ``check``, ``service``, ``branch``, ``stack``, ``action``) equals the
request's own value; a fault that names no matcher applies to every request of its kind.
``version`` is the release the colour's frontend serves (``v1.1.0``), ``function_version`` the
Lambda version of the API function that executed the request (``"2"``) and ``backend_version``
the release that version runs (its ``APP_VERSION``, ``v1.1.0``): both known when the traffic
simulator routes by the alias, and for a direct Invoke of the function.
A fault with ``seconds`` lasts that long from when it was added, then no longer applies.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

KINDS = frozenset(
    {
        "smoke_failure",  # matchers: version|colour, check
        "error_rate",  # matchers: version|colour|function_version|backend_version; settings: percent, spacing
        "latency",  # matchers: version|colour|function_version|backend_version, check; settings: ms
        "latency_tail",  # matchers: version|colour|function_version|backend_version; settings: percent, ms
        "stall",  # matchers: version|colour|function_version|backend_version: no answer
        "metrics_delay",  # settings: ms (the simulator's metrics reach CloudWatch that late)
        "kvs_propagation",  # settings: ms (the front door reads the KeyValueStore as it was ms ago)
        "amplify_job_failure",  # matchers: branch|version; settings: reason
        "stack_update_failure",  # matchers: stack|version; settings: reason
        "outage",  # matchers: service (github, slack, statuspage, smtp)
        "cloudwatch_failure",  # matchers: action (e.g. GetMetricData); settings: mode (error|throttling)
    }
)
MATCHERS = frozenset(
    {
        "version",
        "colour",
        "function_version",
        "backend_version",
        "check",
        "service",
        "branch",
        "stack",
        "action",
    }
)


class Faults:
    """A thread-safe registry of active faults."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._active: dict[int, dict[str, Any]] = {}
        # How many requests each fault has been applied to: shared with snapshots, kept across ticks.
        self._tallies: dict[int, int] = {}
        self._tally_lock = threading.Lock()

    def add(self, kind: str, **fields: Any) -> int:
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {sorted(KINDS)}")
        with self._lock:
            fault_id = next(self._ids)
            fault = {"id": fault_id, "kind": kind, **fields}
            if fields.get("seconds") is not None:
                fault["expires_at"] = time.time() + float(fields["seconds"])
            self._active[fault_id] = fault
            return fault_id

    def remove(self, fault_id: int) -> bool:
        with self._lock:
            return self._active.pop(fault_id, None) is not None

    def clear(self) -> None:
        with self._lock:
            self._active.clear()

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(f) for f in self._active.values()]

    def snapshot(self) -> Faults:
        """The faults active now, as a registry of their own that later changes (and expiries) do
        not reach."""
        frozen = Faults()
        frozen._tallies, frozen._tally_lock = self._tallies, self._tally_lock
        now = time.time()
        with self._lock:
            frozen._active = {
                i: {k: v for k, v in f.items() if k != "expires_at"}
                for i, f in self._active.items()
                if f.get("expires_at", now + 1) > now
            }
        return frozen

    def tally(self, fault_id: int) -> int:
        """How many requests ``fault_id`` was applied to before this one (which it counts)."""
        with self._tally_lock:
            seen = self._tallies.get(fault_id, 0)
            self._tallies[fault_id] = seen + 1
            return seen

    def find(self, kind: str, **context: Any) -> dict[str, Any] | None:
        """The first active fault of ``kind`` whose matchers all equal ``context``."""
        now = time.time()
        with self._lock:
            for fault in self._active.values():
                if fault["kind"] != kind or fault.get("expires_at", now + 1) <= now:
                    continue
                matchers = {k: v for k, v in fault.items() if k in MATCHERS}
                if all(context.get(k) == v for k, v in matchers.items()):
                    return dict(fault)
        return None
