"""Who may do what: the FAB roles of the project, with their exact permissions, in one place.

A permission is FAB's ``(action, resource)`` pair. FAB's resources for a DAG's sub-entities
(runs, task instances, approvals, XComs, logs) are global; what scopes them to one DAG is the
``DAG:<dag_id>`` permission beside them, which Airflow's FAB auth manager checks on every
request: ``can_read DAG:<id>`` for a read, ``can_edit DAG:<id>`` for any write. So
``can_edit DAG:<id>`` goes only with the one sub-entity write each role needs (and it also
allows pausing the DAG: FAB has no finer permission). Creating a run is the exception: it is
scoped by ``can_create`` on ``DAG Run:<dag_id>``.

Clearing a task instance and marking its state are both ``can_edit`` on ``Task Instances`` and
``DAG Runs``: FAB cannot tell them apart, so whoever may clear may mark too.

:func:`apply` writes the roles through FAB's security manager: each role ends with exactly
these permissions, whatever it held before. Airflow's built-in roles (``Admin``, ``Viewer``...)
are FAB's own and left alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

DEPLOY_DAG = "deploy_production"
ROLLBACK_DAG = "rollback_production"

READ, EDIT, CREATE, MENU = "can_read", "can_edit", "can_create", "menu_access"

Permission = tuple[str, str]

RELEASE_TRIGGERER = "ReleaseTriggerer"
RELEASE_APPROVER = "ReleaseApprover"
RELEASE_MANAGER = "ReleaseManager"
PIPELINE_READER = "PipelineReader"
EMERGENCY_RELEASER = "EmergencyReleaser"
ADMIN = "Admin"  # FAB's built-in role: every permission


def dag(dag_id: str) -> str:
    return f"DAG:{dag_id}"


def dag_run(dag_id: str) -> str:
    return f"DAG Run:{dag_id}"


# What the UI needs before any DAG: its pages (Website), the Dags entry of the menu, one's own
# profile. FAB also gives every custom role ``can_read Website`` whenever the API server starts.
UI_BASICS: frozenset[Permission] = frozenset({(READ, "Website"), (MENU, "DAGs"), (READ, "My Profile")})

# Airflow's Viewer role, less what is not about a DAG (pools, jobs, assets, backfills, cluster
# activity): the DAG's pages (grid, graph, code, versions, warnings, logs, XComs, its required
# actions), for the DAGs the role may read. Import errors are shown only for readable DAGs' files.
DAG_PAGES: frozenset[Permission] = frozenset(
    (READ, resource)
    for resource in (
        "DAG Runs",
        "Task Instances",
        "Task Logs",
        "HITL Detail",
        "DAG Code",
        "DAG Dependencies",
        "DAG Versions",
        "DAG Warnings",
        "XComs",
        "ImportError",
    )
)


def _reads(*dag_ids: str) -> frozenset[Permission]:
    return UI_BASICS | DAG_PAGES | {(READ, dag(d)) for d in dag_ids}


ROLES: Mapping[str, frozenset[Permission]] = {
    # CI's robot and the engineers who cut releases: start a release, watch it, nothing else.
    RELEASE_TRIGGERER: _reads(DEPLOY_DAG) | {(EDIT, dag(DEPLOY_DAG)), (CREATE, dag_run(DEPLOY_DAG))},
    # Answer a release's approval requests (Required Actions), watch it; never start one.
    RELEASE_APPROVER: _reads(DEPLOY_DAG)
    | {(EDIT, dag(DEPLOY_DAG)), (EDIT, "HITL Detail"), (MENU, "HITL Detail")},
    # Rerun a release's failed part (clear), roll production back by hand.
    RELEASE_MANAGER: _reads(DEPLOY_DAG, ROLLBACK_DAG)
    | {
        (EDIT, dag(DEPLOY_DAG)),
        (EDIT, "Task Instances"),
        (EDIT, "DAG Runs"),
        (EDIT, dag(ROLLBACK_DAG)),
        (CREATE, dag_run(ROLLBACK_DAG)),
    },
    # A second role for the config's emergency_users (often approvers too): start a release (with
    # emergency flags, which the pipeline allows only for them) or a rollback by hand; never clear.
    EMERGENCY_RELEASER: _reads(DEPLOY_DAG, ROLLBACK_DAG)
    | {
        (EDIT, dag(DEPLOY_DAG)),
        (CREATE, dag_run(DEPLOY_DAG)),
        (EDIT, dag(ROLLBACK_DAG)),
        (CREATE, dag_run(ROLLBACK_DAG)),
    },
    # The pipeline's own identity (connection ``airflow_api``): reads runs, task states,
    # approvals and the audit log of both DAGs; writes nothing.
    PIPELINE_READER: UI_BASICS
    | {
        (READ, dag(DEPLOY_DAG)),
        (READ, dag(ROLLBACK_DAG)),
        (READ, "DAG Runs"),
        (READ, "Task Instances"),
        (READ, "HITL Detail"),
        (READ, "Audit Logs"),
    },
}


def apply(security_manager: Any, roles: Mapping[str, Iterable[Permission]] = ROLES) -> dict[str, int]:
    """Create or update each role so that it holds exactly its permissions (FAB's security manager,
    inside its Flask app context); the number of permissions each role gained or lost."""
    changed: dict[str, int] = {}
    for name, wanted in roles.items():
        role = security_manager.find_role(name) or security_manager.add_role(name)
        permissions = [security_manager.create_permission(action, resource) for action, resource in wanted]
        before = {p.id for p in role.permissions}
        after = {p.id for p in permissions}
        changed[name] = len(before ^ after)
        if before != after:
            role.permissions = permissions
            security_manager.session.merge(role)
            security_manager.session.commit()
    return changed
