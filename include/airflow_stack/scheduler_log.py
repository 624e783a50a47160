"""When a scripted approval is safe to send, read from the scheduler's log.

Airflow 3.3.2 races an answer that comes before the scheduler has processed the executor's
event for the worker that parked the approval task: the event of the parked try then drops
the resumed try from the executor's bookkeeping and the scheduler fails the task as "changed
externally". The scheduler logs ``TaskInstance Finished: ... ti_id=<id> ... state=awaiting_input
... try_number=<n>`` once it has processed that event; an answer after that line is safe. On
the stacks we start (demo, tests, benchmarks) the log is a file the client can read, so a
scripted approver answers as soon as that line is written rather than after a fixed settle.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

PARKED = re.compile(
    r"TaskInstance Finished: .*?ti_id=([0-9a-f-]+),.*? state=awaiting_input,.*? try_number=(\d+),"
)


class SchedulerLog:
    """The approval tries the scheduler has seen parked, read incrementally from its log file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._parked: set[tuple[str, int]] = set()
        self._lock = threading.Lock()

    def parked(self, ti: dict) -> bool:
        """Whether the scheduler has processed the parking of ``ti`` (a REST task instance)."""
        with self._lock:
            self._read_new_lines()
            return (ti["id"], int(ti["try_number"])) in self._parked

    def _read_new_lines(self) -> None:
        try:
            with self.path.open("rb") as log:
                log.seek(0, 2)
                if log.tell() < self._offset:  # the file was replaced: read it from the start
                    self._offset = 0
                log.seek(self._offset)
                chunk = log.read()
        except FileNotFoundError:
            return
        complete = chunk.rfind(b"\n") + 1
        self._offset += complete
        for match in PARKED.finditer(chunk[:complete].decode("utf-8", "replace")):
            self._parked.add((match.group(1), int(match.group(2))))
