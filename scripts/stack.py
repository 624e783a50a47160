#!/usr/bin/env python3
"""Start, stop and inspect the local stack in the background: ``stack.py up|down|status``.

``up`` starts the sandbox and Airflow (api-server, scheduler, dag-processor,
triggerer; LocalExecutor on SQLite) and returns once they are healthy; ``down``
stops every process of both and checks that none is left. State: .airflow/, .sandbox/.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "include"))

from airflow_stack import local  # noqa: E402
from airflow_stack.env import passwords  # noqa: E402
from airflow_stack.sandbox_process import SandboxError  # noqa: E402
from airflow_stack.supervisor import StackError, Supervisor  # noqa: E402


def status() -> int:
    box = local.sandbox()
    print(f"sandbox: {'running at ' + box.control_url if box.running() else 'not running'}")
    if not (local.AIRFLOW_HOME / "stack.json").exists():
        print("airflow: not running")
        return 1
    supervisor = Supervisor.attach(local.stack())
    gone = supervisor.exited()
    for name, run in supervisor.running.items():
        print(f"  {name:<14} {'exited' if name in gone else 'running'} (pid {run.pid}, log {run.log})")
    try:
        health = supervisor.health()
    except OSError as exc:
        print(f"airflow: API server not answering at {supervisor.stack.api_url}: {exc}")
        return 1
    print(f"airflow: {supervisor.stack.api_url} " + ", ".join(f"{k} {v}" for k, v in health.items()))
    return 0 if not gone and box.running() else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up", "down", "status"])
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            stack = local.up()
            print(f"\nAirflow UI: {stack.ui_url}  (log in as admin / {passwords()['admin']})")
            print("Stop everything with: make down")
            return 0
        if args.command == "down":
            local.down()
            return 0
        return status()
    except (StackError, SandboxError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
