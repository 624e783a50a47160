"""Fault-matrix fixtures: the session's sandbox and LocalExecutor stack (tests/_stack_fixtures.py),
production read back through ``World``, and each case's starting point.

Every case starts from a reseeded sandbox and no active run (the ``local`` fixture), takes
a snapshot of production as seeded, and injects its fault through the control API (or
boto3, or the stack's configuration file) itself.
"""

from __future__ import annotations

import pytest
from _matrix import World

from deployment.config import load_config


@pytest.fixture(scope="session")
def world(sandbox, stack_config) -> World:
    return World(sandbox, stack_config.path)


@pytest.fixture
def seeded(local, world) -> dict:
    """Production as freshly seeded (v1.0.0 live on blue), before the case's release."""
    before = world.snapshot()
    assert before["weights"] == {"blue": 100, "green": 0} and before["served"]["blue"] == "v1.0.0", before
    return before


@pytest.fixture
def sandbox_holds(stack_config):
    """sandbox.yaml's traffic holds instead of the real-engine stack's one-poll ones, for a test that
    needs several polls of a step (a canary judged on its own requests) or acts while a step holds."""
    steps = [step.model_dump(mode="json") for step in load_config("sandbox").traffic.steps]
    with stack_config.overridden(traffic={"steps": steps}):
        yield
