"""Username → the auth manager's user id, for human-in-the-loop ``assigned_users``.

Airflow checks an answer against ``assigned_users`` by user id, and an auth manager's id is
not always the name people know: SimpleAuthManager's is the username, FAB's the row's
numeric id. The public API has no route from one to the other (FAB's user API returns no
id), so the pipeline asks this one, which runs inside the API server beside the auth manager.
"""

from __future__ import annotations

from typing import Any


def user_ids(auth_manager: Any, usernames: list[str]) -> list[dict[str, str | None]]:
    """``[{username, id}]`` for each name; ``id`` is None for a name the auth manager does not know
    (or, under FAB, whose account is inactive)."""
    if type(auth_manager).__name__ == "FabAuthManager":
        known = _fab_users(usernames)
    else:  # SimpleAuthManager: the id is the username
        known = {user.username.lower(): user.username for user in auth_manager.get_users()}
    return [{"username": u, "id": known.get(u.lower())} for u in usernames]


def _fab_users(usernames: list[str]) -> dict[str, str]:
    from airflow.providers.fab.auth_manager.models import User
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    wanted = [u.lower() for u in usernames]
    with create_session() as session:
        rows = session.scalars(select(User).where(func.lower(User.username).in_(wanted))).all()
        return {row.username.lower(): row.get_id() for row in rows if row.is_active}
