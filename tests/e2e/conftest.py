"""End-to-end fixtures: the sandbox and Airflow's components as real processes, driven over HTTP.

One sandbox process serves the whole session. The LocalExecutor stack starts once
per session; the CeleryExecutor stack once for its module (it runs first, by name
order, and is stopped before the LocalExecutor stack starts: 2 cores). Each release
test starts from a reseeded sandbox and no active run.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from _e2e import RC_COMMITS, TIMINGS, clients, fresh_world, start_stack, stop_stack

from airflow_stack.client import AirflowClient
from airflow_stack.env import Stack
from airflow_stack.sandbox_process import SandboxProcess
from sandbox.testing import free_base_port


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory) -> Iterator[SandboxProcess]:
    proc = SandboxProcess(tmp_path_factory.mktemp("sandbox"), base_port=free_base_port())
    started = time.monotonic()
    proc.start()
    TIMINGS.append(("sandbox process started", time.monotonic() - started))
    RC_COMMITS["v1.1.0"] = proc.commit_of("rc-1.1.0")
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory, sandbox) -> Iterator[Stack]:
    stack = Stack.with_free_ports(tmp_path_factory.mktemp("airflow-local"), connections=sandbox.connections())
    supervisor = start_stack(stack)
    try:
        yield stack
    finally:
        stop_stack(supervisor)


@pytest.fixture(scope="session")
def local_clients(local_stack) -> dict[str, AirflowClient]:
    return clients(local_stack)


@pytest.fixture
def local(local_clients, sandbox) -> dict[str, AirflowClient]:
    """The LocalExecutor stack's clients, with no active run and a freshly seeded sandbox."""
    fresh_world(local_clients["admin"], sandbox)
    return local_clients


def pytest_terminal_summary(terminalreporter):
    if TIMINGS:
        terminalreporter.section("end-to-end stack timings")
        for what, seconds in TIMINGS:
            terminalreporter.write_line(f"{seconds:7.1f} s  {what}")
