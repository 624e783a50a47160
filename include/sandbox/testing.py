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
from collections.abc import Iterator
from typing import Any

from deployment.config import load_config
from sandbox.launcher import PORT_OFFSETS, Sandbox
from sandbox.ports import free_run


def free_base_port() -> int:
    """A base port B such that the sandbox's ports (B + its offsets) are all free on loopback now."""
    return free_run(max(PORT_OFFSETS.values()) + 1)


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
