"""The sandbox for tests: one in-process :class:`~sandbox.launcher.Sandbox` on free ports.

    with running_sandbox() as sandbox:
        sandbox.endpoints["aws"]; sandbox.faults.add("latency", ms=500)
        os.environ.update(sandbox.connections_env())

moto keeps its state in module globals, so one process runs one sandbox, and
``moto.mock_aws`` (which resets every moto backend when it starts and stops)
must not run in the same process while a sandbox is up. :func:`ensure_seeded`
reseeds a sandbox whose AWS state something else in the process reset.
"""

from __future__ import annotations

import contextlib
import random
import socket
from collections.abc import Iterator
from typing import Any

from deployment.config import load_config
from sandbox.launcher import HOST, PORT_OFFSETS, Sandbox


def free_base_port(attempts: int = 50) -> int:
    """A base port B such that B..B+7 are all free on loopback right now."""
    for _ in range(attempts):
        base = random.randrange(20000, 60000)
        with contextlib.ExitStack() as stack:
            try:
                for offset in PORT_OFFSETS.values():
                    sock = stack.enter_context(socket.socket())
                    sock.bind((HOST, base + offset))
            except OSError:
                continue
            return base
    raise RuntimeError(f"no run of {len(PORT_OFFSETS)} free loopback ports found in {attempts} attempts")


@contextlib.contextmanager
def running_sandbox(
    base_port: int | None = None, config: str = "sandbox", **options: Any
) -> Iterator[Sandbox]:
    """Start a seeded sandbox (``options``: job_seconds, update_seconds, traffic); stop it on exit."""
    sandbox = Sandbox(load_config(config), base_port=base_port or free_base_port(), **options)
    sandbox.start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


def ensure_seeded(sandbox: Sandbox) -> Sandbox:
    """Reseed ``sandbox`` if its production stack is gone (moto's state was reset under it)."""
    cloudformation = sandbox.aws_client("cloudformation")
    try:
        cloudformation.describe_stacks(StackName=sandbox.cfg.stack.name)
    except cloudformation.exceptions.ClientError:
        sandbox.reseed()
    return sandbox
