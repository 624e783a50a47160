"""One in-process sandbox for the whole session (see ``sandbox.testing``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox.launcher import Sandbox
from sandbox.testing import ensure_seeded, running_sandbox


@pytest.fixture(scope="session")
def sandbox_session() -> Iterator[Sandbox]:
    # No traffic simulator: other tests in this process use moto too, and background
    # writes to its (process-global) CloudWatch would show up in their assertions.
    with running_sandbox(job_seconds=0.6, update_seconds=0.4, traffic=False) as sandbox:
        yield sandbox


@pytest.fixture
def sandbox(sandbox_session: Sandbox) -> Sandbox:
    """The session's sandbox, with no faults, reseeded if other tests reset moto under it."""
    sandbox_session.reset()
    return ensure_seeded(sandbox_session)


@pytest.fixture
def aws(sandbox: Sandbox):
    """``aws("cloudformation")``: an unmodified boto3 client pointed at the sandbox."""
    return sandbox.aws_client
