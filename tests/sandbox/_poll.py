"""Wait for an eventually-true condition in the sandbox's time-compressed world."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll(read: Callable[[], T], until: Callable[[T], bool], timeout: float = 10.0) -> list[T]:
    """Call ``read`` until ``until`` holds for its value; return every distinct value seen, in order."""
    seen: list[T] = []
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if not seen or seen[-1] != value:
            seen.append(value)
        if until(value):
            return seen
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s; values seen: {seen}")
        time.sleep(0.05)
