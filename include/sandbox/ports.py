"""Free loopback ports for the processes the tests and the demo start.

They are chosen below the kernel's ephemeral range: a port from that range, free when checked,
can be taken before its server binds it, as the source port of any outgoing connection (the
sandbox's simulated viewers open many). An API server failed to start that way here.
"""

from __future__ import annotations

import contextlib
import random
import socket
from pathlib import Path

HOST = "127.0.0.1"
LOWEST = 10000
_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def ephemeral_start() -> int:
    """The first port of the kernel's ephemeral range (Linux's default where it cannot be read)."""
    try:
        return int(_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_run(count: int = 1, attempts: int = 100) -> int:
    """A port P such that P..P+count-1 are all free on loopback now, below the ephemeral range."""
    highest = ephemeral_start() - count
    for _ in range(attempts):
        base = random.randrange(LOWEST, highest)
        with contextlib.ExitStack() as stack:
            try:
                for port in range(base, base + count):
                    stack.enter_context(socket.socket()).bind((HOST, port))
            except OSError:
                continue
            return base
    raise RuntimeError(f"no {count} free loopback ports in a row below {highest + count} ({attempts} tries)")
