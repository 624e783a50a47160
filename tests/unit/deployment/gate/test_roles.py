"""The roles' permission table, judged by the FAB auth manager's own authorization code.

Each role's permissions are given to a user and every request the project cares about is put to
``FabAuthManager.is_authorized_dag`` as the API server puts it (method, DAG sub-entity, DAG id):
the table below is what each role may do, and nothing else.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from airflow.api_fastapi.auth.managers.models.resource_details import AccessView, DagAccessEntity, DagDetails
from airflow.api_fastapi.common.types import MenuItem
from airflow.models.connection import Connection
from airflow.providers.fab.auth_manager.fab_auth_manager import FabAuthManager
from airflow.providers.fab.www.security import permissions

from airflow_stack.env import APPROVERS, ROOT, Stack, passwords, users
from deployment.config import load_config
from deployment.gate import roles

DEPLOY, ROLLBACK = roles.DEPLOY_DAG, roles.ROLLBACK_DAG
TRIGGERER, APPROVER = roles.RELEASE_TRIGGERER, roles.RELEASE_APPROVER
MANAGER, READER = roles.RELEASE_MANAGER, roles.PIPELINE_READER
EMERGENCY = roles.EMERGENCY_RELEASER

# request -> (method, DAG sub-entity, DAG id), as the API server's routes ask
REQUESTS = {
    "read the DAG": ("GET", None, DEPLOY),
    "list the DAGs": ("GET", None, None),
    "read runs": ("GET", DagAccessEntity.RUN, DEPLOY),
    "read task instances": ("GET", DagAccessEntity.TASK_INSTANCE, DEPLOY),
    "read approvals": ("GET", DagAccessEntity.HITL_DETAIL, DEPLOY),
    "read the audit log": ("GET", DagAccessEntity.AUDIT_LOG, DEPLOY),
    "read task logs": ("GET", DagAccessEntity.TASK_LOGS, DEPLOY),
    "trigger a release": ("POST", DagAccessEntity.RUN, DEPLOY),
    "answer an approval": ("PUT", DagAccessEntity.HITL_DETAIL, DEPLOY),
    # PATCH a task instance's state and POST clearTaskInstances: the same check
    "clear or mark a task": ("PUT", DagAccessEntity.TASK_INSTANCE, DEPLOY),
    "clear or mark a run": ("PUT", DagAccessEntity.RUN, DEPLOY),
    "delete a run": ("DELETE", DagAccessEntity.RUN, DEPLOY),
    "create an XCom": ("POST", DagAccessEntity.XCOM, DEPLOY),
    "edit an XCom": ("PUT", DagAccessEntity.XCOM, DEPLOY),
    "pause the DAG": ("PUT", None, DEPLOY),
    "read the rollback DAG": ("GET", None, ROLLBACK),
    "read rollback runs": ("GET", DagAccessEntity.RUN, ROLLBACK),
    "trigger a rollback": ("POST", DagAccessEntity.RUN, ROLLBACK),
    "clear or mark a rollback task": ("PUT", DagAccessEntity.TASK_INSTANCE, ROLLBACK),
    "answer a rollback approval": ("PUT", DagAccessEntity.HITL_DETAIL, ROLLBACK),
}
DEPLOY_READS = {"read the DAG", "list the DAGs", "read runs", "read task instances", "read approvals"}
# What each role may do; every other request is refused. "pause the DAG" rides on the DAG's
# can_edit, which a trigger and an approval need too (FAB has nothing finer); the manager's
# can_edit on task instances and runs holds for every DAG it may edit, the rollback DAG included.
ALLOWED = {
    TRIGGERER: DEPLOY_READS | {"read task logs", "trigger a release", "pause the DAG"},
    APPROVER: DEPLOY_READS | {"read task logs", "answer an approval", "pause the DAG"},
    MANAGER: DEPLOY_READS
    | {
        "read task logs",
        "clear or mark a task",
        "clear or mark a run",
        "pause the DAG",
        "read the rollback DAG",
        "read rollback runs",
        "trigger a rollback",
        "clear or mark a rollback task",
    },
    READER: DEPLOY_READS | {"read the audit log", "read the rollback DAG", "read rollback runs"},
    EMERGENCY: DEPLOY_READS
    | {
        "read task logs",
        "trigger a release",
        "pause the DAG",
        "read the rollback DAG",
        "read rollback runs",
        "trigger a rollback",
    },
}


@pytest.fixture(scope="module")
def auth() -> FabAuthManager:
    return FabAuthManager()


def _user(role: str) -> SimpleNamespace:
    return SimpleNamespace(perms=set(roles.ROLES[role]), is_anonymous=False)


def _allowed(auth: FabAuthManager, role: str) -> set[str]:
    return {
        name
        for name, (method, entity, dag_id) in REQUESTS.items()
        if auth.is_authorized_dag(
            method=method, user=_user(role), access_entity=entity, details=DagDetails(id=dag_id)
        )
    }


@pytest.mark.parametrize("role", sorted(ALLOWED))
def test_each_role_may_do_exactly_its_part(auth, role):
    assert _allowed(auth, role) == ALLOWED[role]


def test_every_project_role_is_in_the_table():
    assert set(roles.ROLES) == set(ALLOWED)


@pytest.mark.parametrize("role", sorted(roles.ROLES))
def test_every_role_opens_the_ui_on_its_dags(auth, role):
    user = _user(role)
    assert auth.is_authorized_view(access_view=AccessView.WEBSITE, user=user)
    assert MenuItem.DAGS in auth.filter_authorized_menu_items(list(MenuItem), user=user)
    assert ("can_read", permissions.RESOURCE_MY_PROFILE) in user.perms


def test_only_approvers_see_required_actions_in_the_menu(auth):
    shown = {
        role
        for role in roles.ROLES
        if MenuItem.REQUIRED_ACTIONS in auth.filter_authorized_menu_items(list(MenuItem), user=_user(role))
    }
    assert shown == {APPROVER}


def test_no_role_reaches_connections_variables_pools_or_configuration(auth):
    for role in roles.ROLES:
        user = _user(role)
        for check in (
            auth.is_authorized_connection,
            auth.is_authorized_variable,
            auth.is_authorized_pool,
            auth.is_authorized_configuration,
        ):
            assert not check(method="GET", user=user), (role, check.__name__)


def test_permissions_name_fab_actions_and_resources_or_the_project_dags():
    names = {k: v for k, v in vars(permissions).items() if isinstance(v, str)}
    actions = {v for k, v in names.items() if k.startswith("ACTION_")}
    resources = {v for k, v in names.items() if k.startswith("RESOURCE_")}
    dag_resources = {
        f"{prefix}{dag_id}" for prefix in permissions.PREFIX_LIST for dag_id in (DEPLOY, ROLLBACK)
    }
    for role, perms in roles.ROLES.items():
        for action, resource in perms:
            assert action in actions, (role, action)
            assert resource in resources | dag_resources, (role, resource)
    assert {p.stem for p in (ROOT / "dags").glob("*.py")} >= {DEPLOY, ROLLBACK}


def test_local_users_have_project_roles_and_known_passwords():
    assigned = users()
    assert {r for held in assigned.values() for r in held} == {*roles.ROLES, roles.ADMIN}
    assert {u for u, held in assigned.items() if APPROVER in held} == set(APPROVERS)
    assert {u for u, held in assigned.items() if TRIGGERER in held} == {"ci", "dave"}
    assert {u for u, held in assigned.items() if EMERGENCY in held} == set(
        load_config("sandbox").emergency_users
    )
    assert set(passwords()) == set(assigned)


def test_the_pipeline_connection_logs_in_as_the_reader(tmp_path):
    conn = Connection(conn_id="airflow_api", uri=Stack(home=tmp_path, api_port=8123).pipeline_connection())
    assert (conn.conn_type, conn.host, conn.port) == ("http", "127.0.0.1", 8123)
    assert users()[conn.login] == (READER,) and conn.password == passwords()[conn.login]


class _Perm(SimpleNamespace):
    def __hash__(self) -> int:
        return hash(self.id)


class _SecurityManager:
    """FAB's security manager, as far as ``roles.apply`` uses it, over dicts."""

    def __init__(self) -> None:
        self.perms: dict[tuple[str, str], _Perm] = {}
        self.roles: dict[str, SimpleNamespace] = {}
        self.commits = 0
        self.session = SimpleNamespace(merge=lambda role: role, commit=self._commit)

    def _commit(self) -> None:
        self.commits += 1

    def find_role(self, name):
        return self.roles.get(name)

    def add_role(self, name):
        return self.roles.setdefault(name, SimpleNamespace(name=name, permissions=[]))

    def create_permission(self, action, resource):
        pair = (action, resource)
        return self.perms.setdefault(pair, _Perm(id=len(self.perms), pair=pair))


def test_apply_leaves_each_role_with_exactly_its_permissions_and_is_idempotent():
    sm = _SecurityManager()
    stale = sm.add_role(TRIGGERER)
    stale.permissions = [sm.create_permission("can_edit", "Task Instances")]  # granted by hand once

    first = roles.apply(sm)
    held = {name: {p.pair for p in role.permissions} for name, role in sm.roles.items()}
    commits = sm.commits
    again = roles.apply(sm)

    assert held == {name: set(perms) for name, perms in roles.ROLES.items()}
    assert first[TRIGGERER] == len(roles.ROLES[TRIGGERER]) + 1, "the stale permission is taken away"
    assert set(again.values()) == {0} and sm.commits == commits, "a second run changes nothing"
