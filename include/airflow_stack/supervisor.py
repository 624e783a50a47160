"""Start Airflow's components as separate processes, wait for health, stop them all.

Each component runs in its own session (``start_new_session``), with its output in
``<home>/processes/<name>.log``. Task processes put themselves in process groups
of their own, and a component's helpers (the log server, LocalExecutor's workers)
outlive their parent when it stops first, re-parented to init: a process the stack
caused is one in a component's session or below a component in the process tree
(psutil finds both), and stopping signals all of them, then checks that none is left.
The pids are kept in ``<home>/stack.json`` so another process can stop the stack.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import psutil
import requests

from airflow_stack.env import ADMIN, DAG_ID, Stack, airflow_env, passwords

STATE_FILE = "stack.json"
# Stopped after the others: a task process still running when the stack stops reports through the
# Execution API, and with the API server gone first it retried until the stop's SIGKILL (30 s).
STOPPED_LAST = ("api-server",)


class StackError(RuntimeError):
    """A component that failed to start, or a stack that did not become healthy."""


def airflow_bin() -> str:
    """The ``airflow`` entry point next to this interpreter (the project's venv)."""
    candidate = Path(sys.executable).with_name("airflow")
    return str(candidate) if candidate.exists() else "airflow"


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return f"({path} does not exist)"


def caused_by(leaders: Iterable[int]) -> list[psutil.Process]:
    """Live processes that the components led by ``leaders`` caused (leaders included): the
    members of their sessions and every descendant of those, whoever their parent is now."""
    sessions = set(leaders)
    found: dict[int, psutil.Process] = {}
    for proc in psutil.process_iter(["status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and os.getsid(proc.pid) in sessions:
                found[proc.pid] = proc
        except (psutil.Error, OSError):
            continue
    for proc in list(found.values()):
        try:
            found.update(
                (child.pid, child)
                for child in proc.children(recursive=True)
                if child.status() != psutil.STATUS_ZOMBIE
            )
        except psutil.Error:
            continue
    return list(found.values())


def _signal(procs: Iterable[psutil.Process], sig: int) -> None:
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(sig)


@dataclass
class Running:
    name: str
    pid: int  # also the session id: each component leads its own session
    log: Path


class Supervisor:
    """The processes of one stack."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.env = airflow_env(stack)
        self.running: dict[str, Running] = {}
        self._popen: dict[str, subprocess.Popen] = {}
        self._setup: subprocess.Popen | None = None
        self._setup_log = stack.logs_dir / "setup-roles.log"

    @property
    def state_file(self) -> Path:
        return self.stack.home / STATE_FILE

    def migrate(self) -> float:
        """``airflow db migrate`` (FAB's tables too: Airflow runs the installed providers' DB managers);
        the seconds it took."""
        self.stack.logs_dir.mkdir(parents=True, exist_ok=True)
        log = self.stack.logs_dir / "db-migrate.log"
        started = time.monotonic()
        with log.open("wb") as out:
            result = subprocess.run(
                [airflow_bin(), "db", "migrate"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.stack.root,
                timeout=600,
            )
        if result.returncode != 0:
            raise StackError(f"airflow db migrate failed ({result.returncode}):\n{tail(log)}")
        return time.monotonic() - started

    def start(self) -> None:
        """Migrate the database, then start the roles' setup and every component in its own session.

        The setup (roles and users, ``scripts/setup_roles.py``) runs beside the components' start
        rather than before it, ~4 s of a start that waits ~15 s for the DAG to be parsed anyway;
        ``wait_healthy`` waits for it. FAB's writes of the same roles and permissions (the API
        server's sync, the dag-processor's per-DAG permissions) tolerate each other."""
        if self.state_file.exists():
            raise StackError(
                f"a stack already runs from {self.stack.home} ({self.state_file}); stop it first"
            )
        self.migrate()
        try:
            self._setup = self._start_setup()
            for name, command in self.stack.components().items():
                self.launch(name, [airflow_bin(), *command])
        except BaseException:
            self.stop()
            raise

    def _start_setup(self) -> subprocess.Popen:
        """The roles' setup, at a lower CPU priority: the components' start is what the stack waits
        for first (the setup's ~4.5 s of CPU are mostly imports, on 2 cores shared with them)."""
        with self._setup_log.open("wb") as out:
            proc = subprocess.Popen(
                self.stack.setup_roles(sys.executable),
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.stack.root,
            )
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, proc.pid, 10)
        return proc

    def _setup_done(self) -> bool:
        """Whether the roles' setup has finished (raises when it failed)."""
        if self._setup is None or self._setup.poll() is None:
            return self._setup is None
        if self._setup.returncode != 0:
            raise StackError(
                f"setting up the roles failed ({self._setup.returncode}):\n{tail(self._setup_log)}"
            )
        return True

    def launch(self, name: str, argv: list[str]) -> Running:
        """Start one component, leading a session of its own, with the stack's environment."""
        self.stack.logs_dir.mkdir(parents=True, exist_ok=True)
        log = self.stack.logs_dir / f"{name}.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                argv,
                # What a component prints (its thread dump on SIGQUIT, stall_report) lands at once.
                env={**self.env, "PYTHONUNBUFFERED": "1"},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.stack.root,
                start_new_session=True,
            )
        self._popen[name] = proc
        self.running[name] = Running(name, proc.pid, log)
        self._save()
        return self.running[name]

    def restart(self, name: str, sig: int = signal.SIGKILL, timeout: float = 30) -> Running:
        """Kill one component and everything it started (``sig``: a crash by default), then start it again."""
        procs = caused_by([self.running[name].pid])
        _signal(procs, sig)
        psutil.wait_procs(procs, timeout=timeout)
        self._reap()
        return self.launch(name, [airflow_bin(), *self.stack.components()[name]])

    def _save(self) -> None:
        state = {
            "api_url": self.stack.api_url,
            "executor": self.stack.executor,
            "processes": {r.name: {"pid": r.pid, "log": str(r.log)} for r in self.running.values()},
        }
        self.state_file.write_text(json.dumps(state, indent=2) + "\n")

    @classmethod
    def attach(cls, stack: Stack) -> Supervisor:
        """The supervisor of a stack started by another process, from its state file."""
        sup = cls(stack)
        state = json.loads(sup.state_file.read_text())
        for name, proc in state["processes"].items():
            sup.running[name] = Running(name, proc["pid"], Path(proc["log"]))
        return sup

    def exited(self) -> dict[str, int | None]:
        """Components whose process is gone, with its exit code when it was ours."""
        gone = {}
        for name, run in self.running.items():
            proc = self._popen.get(name)
            if proc is not None:
                if proc.poll() is not None:
                    gone[name] = proc.returncode
            elif not caused_by([run.pid]):
                gone[name] = None
        return gone

    def health(self) -> dict[str, str | None]:
        """Component → status, from the API server's health endpoint (raises when it does not answer)."""
        body = requests.get(f"{self.stack.api_url}/api/v2/monitor/health", timeout=5).json()
        return {
            name: (body.get(name) or {}).get("status")
            for name in ("metadatabase", "scheduler", "triggerer", "dag_processor")
        }

    def wait_healthy(self, timeout: float = 240) -> float:
        """Wait until every component reports healthy and the DAG is parsed; the seconds it took."""
        started = time.monotonic()
        deadline = started + timeout
        last: object = "API server not answering yet"
        warmed = False
        while time.monotonic() < deadline:
            if gone := self.exited():
                name = next(iter(gone))
                raise StackError(
                    f"{name} exited ({gone[name]}) while starting:\n{tail(self.running[name].log)}"
                )
            set_up = self._setup_done()
            try:
                last = self.health()
                if not warmed:  # while the dag-processor parses the DAG
                    self._warm_execution_api()
                    warmed = True
                if all(v == "healthy" for v in last.values()) and set_up and self._dag_parsed():
                    return time.monotonic() - started
            except requests.RequestException as exc:
                last = exc
            time.sleep(1)
        logs = "\n".join(f"--- {r.name} ---\n{tail(r.log, 15)}" for r in self.running.values())
        raise StackError(f"stack not healthy after {timeout:.0f}s (last: {last}):\n{logs}")

    def _dag_parsed(self) -> bool:
        token = requests.post(
            f"{self.stack.api_url}/auth/token",
            json={"username": ADMIN, "password": passwords()[ADMIN]},
            timeout=5,
        )
        if token.status_code not in (200, 201):
            return False
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        return (
            requests.get(f"{self.stack.api_url}/api/v2/dags/{DAG_ID}", headers=headers, timeout=5).status_code
            == 200
        )

    def _warm_execution_api(self) -> None:
        """One request to the Execution API, so that its first task does not wait for it to start.

        Airflow 3.3.2's Execution API (a Cadwyn app) builds its versioned routes on its first
        request: ~5 s of an API server's CPU, which the first task's ``PATCH .../run`` waited
        out (5.3-6.4 s, on every new stack) before this."""
        requests.get(f"{self.stack.api_url}/execution/health", timeout=60).raise_for_status()

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM every process the stack caused, the API server once the others are gone (or
        three quarters of ``timeout`` passed), SIGKILL what is left, check that none remains.

        Processes are remembered once seen, so one that left its session and lost its parent
        while the others were stopping is still signalled."""
        if self._setup is not None and self._setup.poll() is None:
            self._setup.kill()
            self._setup.wait(timeout=10)
        everyone = [r.pid for r in self.running.values()]
        first = [r.pid for name, r in self.running.items() if name not in STOPPED_LAST]
        known: dict[int, psutil.Process] = {}

        def alive(leaders: list[int]) -> list[psutil.Process]:
            known.update((p.pid, p) for p in caused_by(leaders))
            return [p for p in known.values() if _alive(p)]

        termed: set[int] = set()
        started = time.monotonic()
        for leaders, deadline in ((first, started + timeout * 0.75), (everyone, started + timeout)):
            while (procs := alive(leaders)) and time.monotonic() < deadline:
                _signal([p for p in procs if p.pid not in termed], signal.SIGTERM)  # once each
                termed.update(p.pid for p in procs)
                self._reap()
                psutil.wait_procs(procs, timeout=0.5)
        _signal(alive(everyone), signal.SIGKILL)
        self._reap(wait=True)
        psutil.wait_procs(alive(everyone), timeout=5)
        if left := alive(everyone):
            raise StackError(
                "processes left after SIGKILL: " + ", ".join(f"{p.pid} {_name(p)}" for p in left)
            )
        self.running.clear()
        self._popen.clear()
        self.state_file.unlink(missing_ok=True)

    def _reap(self, wait: bool = False) -> None:
        for proc in self._popen.values():
            try:
                proc.wait(timeout=5) if wait else proc.poll()
            except subprocess.TimeoutExpired:
                pass


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _name(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline()) or proc.name()
    except psutil.Error:
        return "?"
