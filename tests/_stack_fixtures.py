"""The session's sandbox and LocalExecutor stack, shared by the integration and e2e tiers.

``tests/conftest.py`` loads this module as a plugin, so one pytest process (``make test``
runs ``pytest tests/integration tests/e2e``) starts ONE sandbox process and ONE
LocalExecutor stack whichever tiers it collects. Every tier loads this module and the
unit tier never uses its fixtures, so everything heavy is imported inside them.

The stack runs on a configuration file of its own (``stack_config``): ``tests/config/real-engine.yaml``
(``sandbox.yaml`` with the waits no test asserts on cut short) with the template read from a
copy, identical until a test edits it. Airflow's
components reload the file when it changes, so a test can change a run-time setting
(an approval timeout) or the template (between the approved plan and its deploy) the way
an operator would, and put it back afterwards.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
E2E_DIR = Path(__file__).resolve().parent / "e2e"
REAL_ENGINE_CONFIG = Path(__file__).resolve().parent / "config" / "real-engine.yaml"
# The e2e helpers are the module ``_e2e`` (imported by that name in tests/e2e): one module
# object, so the rc commits the sandbox fixture finds are the ones release_conf() reads.
if str(E2E_DIR) not in sys.path:
    sys.path.insert(0, str(E2E_DIR))


class StackConfig:
    """The stack's deployment configuration file, and the template copy it points at."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "deployment.yaml"
        self.template = folder / "template.yaml"
        self.original_template = ROOT / "include" / "templates" / "bayon-coagent.yaml"
        shutil.copyfile(self.original_template, self.template)
        self._overrides: dict[str, Any] = {}
        self._write({})

    def _write(self, overrides: dict[str, Any]) -> None:
        self._overrides = overrides
        body = {
            "extends": str(REAL_ENGINE_CONFIG),
            **overrides,
            "stack": {**overrides.get("stack", {}), "template": str(self.template)},
        }
        text = (
            "# The test stack's configuration (tests/_stack_fixtures.py): real-engine.yaml, the template "
            "read from a copy.\n" + yaml.safe_dump(body, sort_keys=False)
        )
        _replace(self.path, text)

    @contextlib.contextmanager
    def overridden(self, **sections: dict[str, Any]) -> Iterator[None]:
        """Merge ``sections`` over the configuration for the duration (e.g. ``timings={...}``), over
        the sections an enclosing ``overridden`` set."""
        before = self._overrides
        self._write({**before, **sections})
        try:
            yield
        finally:
            self._write(before)

    @contextlib.contextmanager
    def restored_template(self) -> Iterator[Path]:
        """The template copy, put back to the original afterwards whatever a test did to it."""
        try:
            yield self.template
        finally:
            _replace(self.template, self.original_template.read_text())


def _replace(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, with a new mtime (the config cache key)."""
    partial = path.with_suffix(path.suffix + ".partial")
    partial.write_text(text)
    os.replace(partial, path)
    stamp = time.time()
    os.utime(path, (stamp, stamp))


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory):
    from _e2e import RC_COMMITS, TIMINGS

    from airflow_stack.sandbox_process import SandboxProcess
    from sandbox.testing import free_base_port

    # A 1 s Amplify job is done when the triggerer first looks (1-2 s after the task defers). The
    # stack update keeps its 2 s: the kill matrix kills the triggerer while it is in progress.
    proc = SandboxProcess(tmp_path_factory.mktemp("sandbox"), base_port=free_base_port(), job_seconds=1.0)
    started = time.monotonic()
    proc.start()
    TIMINGS.append(("sandbox process started", time.monotonic() - started))
    RC_COMMITS["v1.1.0"] = proc.commit_of("rc-1.1.0")
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def stack_config(tmp_path_factory) -> StackConfig:
    return StackConfig(tmp_path_factory.mktemp("deployment-config"))


@contextlib.contextmanager
def _stack_database() -> Iterator[str | None]:
    """A scratch PostgreSQL database for the session's stack (dropped afterwards), or None for SQLite
    where this machine has no PostgreSQL (REQUIRE_CELERY_STACK=1, CI, makes that a failure).

    SQLite lets one connection write at a time: on CI's slower 2 cores, with two stacks and their
    tasks busy, an API write (a run's trigger, its PATCH to failed) waited past the client's 15 s
    behind the scheduler's transaction. PostgreSQL is what a deployment runs on anyway."""
    from _e2e import require_celery_stack

    from airflow_stack.services import analyzed, postgres_missing, postgres_url, scratch_database

    if reason := postgres_missing():
        if require_celery_stack():
            pytest.fail(f"the real-engine tier's stack needs {reason} (REQUIRE_CELERY_STACK=1)")
        yield None
        return
    with scratch_database("airflow_e2e_local") as (database, _token), analyzed(database):
        yield postgres_url(database)


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory, sandbox, stack_config):
    from _e2e import start_stack, stop_stack

    from airflow_stack.env import Stack

    with _stack_database() as database_url:
        stack = Stack.with_free_ports(
            tmp_path_factory.mktemp("airflow-local"),
            connections=sandbox.connections(),
            deployment_config=str(stack_config.path),
            database_url=database_url,
        )
        supervisor = start_stack(stack)
        SUPERVISORS[stack.home] = supervisor
        try:
            yield stack
        finally:
            stop_stack(supervisor)


# The supervisor of each stack this session started, by its home: the kill matrix restarts components.
SUPERVISORS: dict[Path, Any] = {}


@pytest.fixture(scope="session")
def local_supervisor(local_stack):
    """The LocalExecutor stack's supervisor (kill and restart one of its components)."""
    return SUPERVISORS[local_stack.home]


@pytest.fixture(scope="session")
def local_clients(local_stack):
    from airflow_stack.client import stack_clients

    return stack_clients(local_stack)


@pytest.fixture
def local(local_clients, sandbox):
    """The LocalExecutor stack's clients, with no active run and a freshly seeded sandbox."""
    from _e2e import fresh_world

    fresh_world(local_clients["admin"], sandbox)
    return local_clients


def pytest_collection_modifyitems(items):
    """Tests on the Celery stack first: it starts and stops its own stack before its process
    starts a LocalExecutor stack, so no process runs two stacks at once (2 cores). Under
    pytest-xdist (``make test`` runs this tier with ``-n 2``) each worker is a session of its
    own, with its own sandbox and stack, so at most two stacks run side by side."""
    items.sort(key=lambda item: "celery" not in getattr(item, "fixturenames", ()))


# Stack timings reported by pytest-xdist workers, by worker id (filled on the controller).
_WORKER_TIMINGS: dict[str, list[tuple[str, float]]] = {}


def _timings() -> list[tuple[str, float]]:
    return getattr(sys.modules.get("_e2e"), "TIMINGS", [])


def pytest_sessionfinish(session):
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: hand the timings to the controller
        workeroutput["stack_timings"] = list(_timings())


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    found = getattr(node, "workeroutput", {}).get("stack_timings")
    if found:
        _WORKER_TIMINGS[node.gateway.id] = found


def pytest_terminal_summary(terminalreporter):
    sources = {"": _timings(), **{f"[{worker}] ": found for worker, found in sorted(_WORKER_TIMINGS.items())}}
    lines = [
        f"{seconds:7.1f} s  {prefix}{what}" for prefix, found in sources.items() for what, seconds in found
    ]
    if lines:
        terminalreporter.section("end-to-end stack timings")
        for line in lines:
            terminalreporter.write_line(line)
