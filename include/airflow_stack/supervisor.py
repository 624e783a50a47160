"""Start Airflow's components as separate processes, wait for health, stop them all.

Each component runs in its own session (``start_new_session``), with its output in
``<home>/processes/<name>.log``. Task processes put themselves in process groups
of their own but stay in their component's session, so stopping signals every
process of each session, not just a group, and then checks that none is left.
The pids are kept in ``<home>/stack.json`` so another process can stop the stack.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from airflow_stack.env import DAG_ID, Stack, airflow_env, passwords

STATE_FILE = "stack.json"


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


def _session_members(sid: int) -> list[int]:
    """Live (non-zombie) processes of session ``sid``."""
    members = []
    if Path("/proc").is_dir():
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if fields[0] != "Z" and int(fields[3]) == sid:
                members.append(int(entry.name))
        return members
    out = subprocess.run(["ps", "-A", "-o", "pid=,stat="], capture_output=True, text=True).stdout
    for line in out.splitlines():
        pid, state = line.split(None, 1)
        try:
            if not state.startswith("Z") and os.getsid(int(pid)) == sid:
                members.append(int(pid))
        except OSError:
            continue
    return members


def _signal_session(sid: int, sig: int) -> None:
    for pid in _session_members(sid):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


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

    @property
    def state_file(self) -> Path:
        return self.stack.home / STATE_FILE

    def migrate(self) -> float:
        """``airflow db migrate``; the seconds it took."""
        self.stack.logs_dir.mkdir(parents=True, exist_ok=True)
        log = self.stack.logs_dir / "db-migrate.log"
        started = time.monotonic()
        with log.open("wb") as out:
            result = subprocess.run([airflow_bin(), "db", "migrate"], env=self.env, stdout=out,
                                    stderr=subprocess.STDOUT, cwd=self.stack.root, timeout=600)
        if result.returncode != 0:
            raise StackError(f"airflow db migrate failed ({result.returncode}):\n{tail(log)}")
        return time.monotonic() - started

    def start(self) -> None:
        """Migrate the database, then start every component in its own session."""
        if self.state_file.exists():
            raise StackError(f"a stack already runs from {self.stack.home} ({self.state_file}); "
                             "stop it first")
        self.stack.write_passwords()
        self.migrate()
        try:
            for name, command in self.stack.components().items():
                log = self.stack.logs_dir / f"{name}.log"
                with log.open("ab") as out:
                    proc = subprocess.Popen([airflow_bin(), *command], env=self.env, stdout=out,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            cwd=self.stack.root, start_new_session=True)
                self._popen[name] = proc
                self.running[name] = Running(name, proc.pid, log)
                self._save()
        except BaseException:
            self.stop()
            raise

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
            elif not _session_members(run.pid):
                gone[name] = None
        return gone

    def health(self) -> dict[str, str | None]:
        """Component → status, from the API server's health endpoint (raises when it does not answer)."""
        body = requests.get(f"{self.stack.api_url}/api/v2/monitor/health", timeout=5).json()
        return {name: (body.get(name) or {}).get("status") for name in
                ("metadatabase", "scheduler", "triggerer", "dag_processor")}

    def wait_healthy(self, timeout: float = 240) -> float:
        """Wait until every component reports healthy and the DAG is parsed; the seconds it took."""
        started = time.monotonic()
        deadline = started + timeout
        last: object = "API server not answering yet"
        while time.monotonic() < deadline:
            if gone := self.exited():
                name = next(iter(gone))
                raise StackError(f"{name} exited ({gone[name]}) while starting:\n"
                                 f"{tail(self.running[name].log)}")
            try:
                last = self.health()
                if all(v == "healthy" for v in last.values()) and self._dag_parsed():
                    return time.monotonic() - started
            except requests.RequestException as exc:
                last = exc
            time.sleep(1)
        logs = "\n".join(f"--- {r.name} ---\n{tail(r.log, 15)}" for r in self.running.values())
        raise StackError(f"stack not healthy after {timeout:.0f}s (last: {last}):\n{logs}")

    def _dag_parsed(self) -> bool:
        token = requests.post(f"{self.stack.api_url}/auth/token",
                              json={"username": "admin", "password": passwords()["admin"]}, timeout=5)
        if token.status_code not in (200, 201):
            return False
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        return requests.get(f"{self.stack.api_url}/api/v2/dags/{DAG_ID}", headers=headers,
                            timeout=5).status_code == 200

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM every process of every component, SIGKILL what is left, check that none remains."""
        sessions = [r.pid for r in self.running.values()]
        for sid in sessions:
            _signal_session(sid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(_session_members(s) for s in sessions):
            self._reap()
            time.sleep(0.2)
        for sid in sessions:
            _signal_session(sid, signal.SIGKILL)
        time.sleep(0.2)
        self._reap(wait=True)
        left = {s: _session_members(s) for s in sessions if _session_members(s)}
        if left:
            raise StackError(f"processes left after SIGKILL (session: pids): {left}")
        self.running.clear()
        self._popen.clear()
        self.state_file.unlink(missing_ok=True)

    def _reap(self, wait: bool = False) -> None:
        for proc in self._popen.values():
            try:
                proc.wait(timeout=5) if wait else proc.poll()
            except subprocess.TimeoutExpired:
                pass
