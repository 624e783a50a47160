#!/usr/bin/env python3
"""Create or update the project's FAB roles (``deployment.gate.roles``), and the local stacks' users.

Run after ``airflow db migrate``, with the stack's Airflow environment, on every start:

    setup_roles.py                 the roles only (production: users come from the IdP or an admin)
    setup_roles.py --local-users   also the users of the local stacks (airflow_stack.env), with
                                   their known passwords: the sandbox, the tests, the demo

Idempotent: a role ends with exactly its permissions, a user with exactly its role and its
known password. One Python process through FAB's security manager, where ``airflow users
create`` would start Airflow's CLI once per user. Opening FAB's app also syncs FAB's built-in
roles (Admin, Viewer, ...) and its views' permissions, as ``airflow sync-perm`` does.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for folder in ("plugins", "include"):
    if str(ROOT / folder) not in sys.path:
        sys.path.insert(0, str(ROOT / folder))


def upsert_users(sm, users: dict[str, tuple[str, ...]], passwords: dict[str, str]) -> list[str]:
    """Create each user with its roles and password, or put an existing one back to them; who changed."""
    from werkzeug.security import check_password_hash

    changed = []
    for name, role_names in users.items():
        found = [sm.find_role(role_name) for role_name in role_names]
        if None in found:
            raise SystemExit(f"user {name}: no role among {role_names!r}")
        user = sm.find_user(username=name)
        if user is None:
            sm.add_user(name, name.title(), "-", f"{name}@example.test", found, passwords[name])
            changed.append(name)
            continue
        fixed = {r.id for r in found} != {r.id for r in user.roles} or not user.active
        if not check_password_hash(user.password or "", passwords[name]):
            user.password = sm._hash_password(passwords[name])
            fixed = True
        if fixed:
            user.roles, user.active = found, True
            sm.update_user(user)
            changed.append(name)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--local-users", action="store_true", help="also the local stacks' users")
    args = parser.parse_args(argv)

    started = time.monotonic()
    # This process syncs FAB's own roles (Admin, Viewer...) and its views' permissions too, the stacks'
    # only writer of them (airflow_stack.env turns the API server's sync off).
    os.environ["AIRFLOW__FAB__UPDATE_FAB_PERMS"] = "True"
    from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder

    from deployment.gate import roles

    with get_application_builder() as appbuilder:
        opened = time.monotonic()
        changed = roles.apply(appbuilder.sm)
        print("roles: " + ", ".join(f"{name} ({n} changed)" for name, n in changed.items()))
        if args.local_users:
            from airflow_stack.env import passwords, users

            print(
                "users changed: " + (", ".join(upsert_users(appbuilder.sm, users(), passwords())) or "none")
            )
    done = time.monotonic()
    print(f"setup_roles: {done - started:.1f} s ({opened - started:.1f} s opening FAB's app)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
