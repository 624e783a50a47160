"""The developer's background stack (``make up`` / ``make down``): sandbox + Airflow from the checkout.

State lives in ``.airflow/`` (AIRFLOW_HOME: SQLite database, logs, the pids) and
``.sandbox/`` (the sandbox's pid, log and connections). Ports: the API server on
``AIRFLOW_PORT`` (8080), the sandbox from ``SANDBOX_BASE_PORT`` (5100).
"""

from __future__ import annotations

import os
from pathlib import Path

from airflow_stack.env import ROOT, Stack, free_port
from airflow_stack.sandbox_process import SandboxProcess
from airflow_stack.supervisor import Supervisor

AIRFLOW_HOME = ROOT / ".airflow"
SANDBOX_STATE = ROOT / ".sandbox"


def sandbox() -> SandboxProcess:
    return SandboxProcess(SANDBOX_STATE, base_port=int(os.environ.get("SANDBOX_BASE_PORT", "5100")))


def stack(connections: dict[str, str] | None = None) -> Stack:
    return Stack(
        home=AIRFLOW_HOME,
        api_port=int(os.environ.get("AIRFLOW_PORT", "8080")),
        worker_log_port=free_port(),
        trigger_log_port=free_port(),
        connections=connections or {},
    )


def is_up() -> bool:
    """Whether a stack started from this checkout still has every component running."""
    if not (AIRFLOW_HOME / "stack.json").exists():
        return False
    supervisor = Supervisor.attach(stack())
    return not supervisor.exited()


def up(log=print) -> Stack:
    """Start the sandbox and Airflow unless they run already; the running stack."""
    box = sandbox()
    if box.running():
        log(f"sandbox already running ({box.control_url})")
    else:
        log(f"starting the sandbox (base port {box.base_port}, log {_rel(box.state_dir / 'sandbox.log')})...")
        box.start()
    current = stack(box.connections())
    if is_up():
        log(f"Airflow already running ({current.api_url})")
        return current
    if (AIRFLOW_HOME / "stack.json").exists():
        log("a previous stack died; cleaning up what is left of it")
        Supervisor.attach(current).stop()
    log(f"starting Airflow (LocalExecutor, SQLite; logs in {_rel(current.logs_dir)})...")
    supervisor = Supervisor(current)
    supervisor.start()
    try:
        seconds = supervisor.wait_healthy(timeout=300)
    except BaseException:
        supervisor.stop()
        raise
    log(f"Airflow healthy after {seconds:.0f} s at {current.api_url}")
    return current


def down(log=print) -> None:
    """Stop Airflow's components and the sandbox; raises if any process is left."""
    if (AIRFLOW_HOME / "stack.json").exists():
        Supervisor.attach(stack()).stop()
        log("Airflow stopped (no process left)")
    else:
        log("Airflow is not running")
    box = sandbox()
    if (box.state_dir / "sandbox.pid").exists():
        box.stop()
        log("sandbox stopped")
    else:
        log("the sandbox is not running")


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
