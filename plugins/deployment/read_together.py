"""Reads a task needs before it decides, made at once.

The gate proof gathers its evidence from two places that answer independently: Airflow's approval
records and audit log over its API, and four sections of the record in S3. Read one after another,
a proof waited for the sum of seven round trips before every change to production; on threads it
waits for the slowest. Only reads go to the threads: what decides, and every write, stays on the
task's own thread and in its order. The clients must exist before the threads start: a boto3 client
may be shared between threads, but creating one from a session may not happen on several at once.
The whole record (``Ledger.record``: 21 sections when a release opens its first attempt, more by its
end) is read the same way, on at most ``MAX_THREADS`` threads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

MAX_THREADS = 16


def read_together(reads: Mapping[str, Callable[[], Any]]) -> dict[str, Future]:
    """Run every read at once and return when all have ended: each future holds its read's value or
    its exception, for the caller to take in the order it reports errors."""
    with ThreadPoolExecutor(
        max_workers=min(max(len(reads), 1), MAX_THREADS), thread_name_prefix="read"
    ) as pool:
        return {name: pool.submit(read) for name, read in reads.items()}
