"""The stack supervisor stops every process a component caused, wherever it went.

A component here is a small Python program that leaves helpers the way Airflow's
components do: one that outlives its parent and is re-parented to init (the log
server when the scheduler exits first) and ignores SIGTERM, and one that moved to a
session of its own while its parent still runs.
"""

from __future__ import annotations

import os
import sys
import textwrap
import time

import psutil
import pytest

from airflow_stack.env import Stack
from airflow_stack.supervisor import StackError, Supervisor, caused_by

COMPONENT = textwrap.dedent(
    """
    import os, signal, sys, time
    pids = sys.argv[1]

    def helper(tag):
        open(os.path.join(pids, tag), "w").write(str(os.getpid()))
        time.sleep(300)
        os._exit(0)

    if os.fork() == 0:              # re-parented to init once its parent exits at once
        if os.fork() == 0:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            helper("orphan")
        os._exit(0)
    if os.fork() == 0:              # a session of its own, below the component
        os.setsid()
        helper("own-session")
    time.sleep(300)
    """
)


def _pids_written(folder, count: int = 2, timeout: float = 20) -> dict[str, int]:
    """The pids the started processes wrote into ``folder``, one file each, once ``count`` are there."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = {path.name: int(path.read_text()) for path in folder.iterdir() if path.read_text()}
        if len(found) == count:
            return found
        time.sleep(0.05)
    raise AssertionError(f"the processes did not all start: {found}")


@pytest.fixture
def supervisor(tmp_path):
    sup = Supervisor(Stack(home=tmp_path / "home"))
    yield sup
    if sup.running:
        sup.stop(timeout=2)


def test_stop_leaves_no_process_the_component_caused(supervisor, tmp_path):
    pids = tmp_path / "pids"
    pids.mkdir()
    leader = supervisor.launch("component", [sys.executable, "-c", COMPONENT, str(pids)]).pid
    helpers = _pids_written(pids)
    orphan = psutil.Process(helpers["orphan"])
    assert orphan.ppid() != leader and orphan.ppid() != 0, "the orphan should have lost its parent"
    assert psutil.Process(helpers["own-session"]).pid not in [
        p.pid for p in psutil.process_iter() if _sid(p.pid) == leader
    ]
    assert {leader, *helpers.values()} <= {p.pid for p in caused_by([leader])}

    supervisor.stop(timeout=2)

    assert not [pid for pid in (leader, *helpers.values()) if _running(pid)]
    assert not supervisor.state_file.exists() and not supervisor.running


LINGERING = textwrap.dedent(
    """
    import os, signal, sys, time
    out, ready, linger = sys.argv[1], sys.argv[2], float(sys.argv[3])

    def note(what):
        open(f"{out}.{what}", "w").write(repr(time.time()))

    def term(*_):
        note("term")
        time.sleep(linger)
        note("exit")
        os._exit(0)

    signal.signal(signal.SIGTERM, term)
    open(ready, "w").write(str(os.getpid()))
    while True:
        time.sleep(1)
    """
)


def test_the_api_server_is_stopped_after_the_others(supervisor, tmp_path):
    """A scheduler winding down still has the API server (its task processes report through it)."""
    ready = tmp_path / "ready"
    ready.mkdir()
    for name, linger in (("api-server", "0"), ("scheduler", "1.5")):
        supervisor.launch(
            name, [sys.executable, "-c", LINGERING, str(tmp_path / name), str(ready / name), linger]
        )
    _pids_written(ready)

    supervisor.stop(timeout=10)

    seen = {path.name: float(path.read_text()) for path in tmp_path.glob("*.*")}
    assert seen["api-server.term"] >= seen["scheduler.exit"], seen


class _FailingSetup(Stack):
    def setup_roles(self, python: str = "python") -> list[str]:
        return [python, "-c", "print('no role ReleaseApprover'); raise SystemExit(3)"]


def test_a_failed_roles_setup_fails_the_start_with_its_output(tmp_path):
    """The setup runs beside the components: the wait for health is what reports its failure."""
    supervisor = Supervisor(_FailingSetup(home=tmp_path / "home"))
    supervisor.stack.logs_dir.mkdir(parents=True)
    supervisor._setup = supervisor._start_setup()

    with pytest.raises(StackError, match="(?s)setting up the roles failed \\(3\\).*no role ReleaseApprover"):
        supervisor.wait_healthy(timeout=20)


def _sid(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:
        return None


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
