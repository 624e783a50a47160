"""``python -m airflow_stack compose|init``.

``compose`` prints docker-compose.yaml. ``init`` is the compose stack's init
service: it writes the users' passwords where ``AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE``
points and migrates the database, as the supervisor does before starting a local stack.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from airflow_stack.env import passwords


def init() -> int:
    target = Path(os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(passwords()) + "\n")
    return subprocess.run(["airflow", "db", "migrate"]).returncode


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
