"""Fault-matrix fixtures: the session's sandbox and LocalExecutor stack (tests/_stack_fixtures.py),
production read back through ``World``, and each case's starting point.

Every case starts from a reseeded sandbox and no active run (the ``local`` fixture), takes
a snapshot of production as seeded, and injects its fault through the control API (or
boto3, or the stack's configuration file) itself.
"""

from __future__ import annotations

import pytest
from _matrix import World


@pytest.fixture(scope="session")
def world(sandbox, stack_config) -> World:
    return World(sandbox, stack_config.path)


@pytest.fixture
def seeded(local, world) -> dict:
    """Production as freshly seeded (v1.0.0 live on blue), before the case's release."""
    before = world.snapshot()
    assert before["weights"] == {"blue": 100, "green": 0} and before["served"]["blue"] == "v1.0.0", before
    return before
