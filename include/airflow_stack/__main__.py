"""``python -m airflow_stack compose|init``.

``compose`` prints docker-compose.yaml. ``init`` is the compose stack's init service: it
migrates the database (FAB's tables too), then creates the roles and the sandbox demo's users
(``scripts/setup_roles.py --local-users``), as the supervisor does before starting a local stack.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from airflow_stack.env import Stack


def init() -> int:
    migrated = subprocess.run(["airflow", "db", "migrate"]).returncode
    if migrated != 0:
        return migrated
    return subprocess.run(Stack(home=Path(os.environ["AIRFLOW_HOME"])).setup_roles(sys.executable)).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m airflow_stack")
    parser.add_argument("command", choices=["compose", "init"])
    args = parser.parse_args(argv)
    if args.command == "compose":
        from airflow_stack.compose import render_text

        sys.stdout.write(render_text())
        return 0
    return init()


if __name__ == "__main__":
    sys.exit(main())
