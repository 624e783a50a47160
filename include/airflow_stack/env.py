"""One description of an Airflow stack, and the environment its components share.

The same description drives the processes the e2e tests and ``make up`` start
(``supervisor``) and the services of docker-compose.yaml (``compose``), so the
two cannot drift: same settings, same commands.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "deploy_production"

Executor = Literal["LocalExecutor", "CeleryExecutor"]
FAB_AUTH_MANAGER = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"

# The local stacks' users and their FAB roles (plugins/deployment/gate/roles.py says what each may do).
ADMIN = "admin"
APPROVERS = ("alice", "bob", "carol")
DEVELOPER = "dave"  # an engineer who is not an approver: the demo's release author
CI_USER = "ci"  # the robot account CI triggers releases with
RELEASE_MANAGER = "erin"  # clears and reruns a release, rolls back by hand
PIPELINE_USER = "pipeline"  # the pipeline's own read-only identity (connection airflow_api)
PIPELINE_CONNECTION = "AIRFLOW_CONN_AIRFLOW_API"


EMERGENCY_USERS = ("alice", "bob")  # the configs' emergency_users: approvers who may also start one


def users() -> dict[str, tuple[str, ...]]:
    """Username → FAB roles, for every user of the local stacks."""
    return {
        ADMIN: ("Admin",),
        **{
            u: ("ReleaseApprover",) + (("EmergencyReleaser",) if u in EMERGENCY_USERS else ())
            for u in APPROVERS
        },
        DEVELOPER: ("ReleaseTriggerer",),
        CI_USER: ("ReleaseTriggerer",),
        RELEASE_MANAGER: ("ReleaseManager",),
        PIPELINE_USER: ("PipelineReader",),
    }


def passwords() -> dict[str, str]:
    """Known passwords for the local stacks' users (sandbox only; the demo prints them)."""
    return {name: f"{name}-pass" if name != ADMIN else ADMIN for name in users()}


def free_port() -> int:
    from sandbox.ports import free_run

    return free_run()


# SQLite lets one connection write at a time; the others wait this many seconds for the lock
# (pysqlite's default is 5). With two stacks busy on 2 cores, a run trigger waited out 5 s behind
# another writer and the API server answered 500 "Database error".
SQLITE_LOCK_TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class Stack:
    """Where and how one Airflow stack runs.

    ``database_url`` defaults to SQLite inside ``home``. ``connections`` are the
    sandbox's ``AIRFLOW_CONN_*`` variables. ``fast`` shortens the scheduler's and
    dag-processor's intervals for tests and the demo.
    """

    home: Path
    api_port: int = 8080
    executor: Executor = "LocalExecutor"
    database_url: str | None = None
    broker_url: str | None = None
    result_backend: str | None = None
    celery_queue: str = "default"
    worker_concurrency: int = 4
    worker_log_port: int = 8793
    trigger_log_port: int = 8794
    api_host: str = "127.0.0.1"  # where the API server binds
    internal_host: str | None = None  # how other components reach it (default: api_host)
    public_url: str | None = None  # how a browser reaches it (default: api_url)
    jwt_secret: str = field(default_factory=lambda: os.urandom(32).hex())
    fernet_key: str = field(default_factory=lambda: base64.urlsafe_b64encode(os.urandom(32)).decode())
    deployment_config: str = "sandbox"
    connections: Mapping[str, str] = field(default_factory=dict)
    root: Path = ROOT
    fast: bool = True

    @property
    def api_url(self) -> str:
        return f"http://{self.internal_host or self.api_host}:{self.api_port}"

    @property
    def ui_url(self) -> str:
        return self.public_url or self.api_url

    @property
    def db_url(self) -> str:
        sqlite = f"sqlite:///{self.home / 'airflow.db'}?timeout={SQLITE_LOCK_TIMEOUT_SECONDS}"
        return self.database_url or sqlite

    @property
    def logs_dir(self) -> Path:
        return self.home / "processes"

    @classmethod
    def with_free_ports(cls, home: Path, **kwargs) -> Stack:
        return cls(
            home=home,
            api_port=free_port(),
            worker_log_port=free_port(),
            trigger_log_port=free_port(),
            **kwargs,
        )

    def components(self) -> dict[str, list[str]]:
        """Component name → its ``airflow`` command line (without the leading ``airflow``)."""
        commands = {
            "api-server": ["api-server", "--host", self.api_host, "--port", str(self.api_port)],
            "scheduler": ["scheduler"],
            "dag-processor": ["dag-processor"],
            "triggerer": ["triggerer"],
        }
        if self.executor == "CeleryExecutor":
            commands["celery-worker"] = [
                "celery",
                "worker",
                "--queues",
                self.celery_queue,
                "--concurrency",
                str(self.worker_concurrency),
            ]
        return commands

    def setup_roles(self, python: str = "python") -> list[str]:
        """The command that creates the roles and the local users, run after ``airflow db migrate``."""
        return [python, str(self.root / "scripts" / "setup_roles.py"), "--local-users"]

    def pipeline_connection(self) -> str:
        """The ``airflow_api`` connection: the pipeline reads the API server as its own reader user."""
        secret = quote(passwords()[PIPELINE_USER], safe="")
        return f"http://{PIPELINE_USER}:{secret}@{self.api_url.removeprefix('http://')}"


def airflow_env(stack: Stack, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment every component of ``stack`` runs with, over ``base`` (default: os.environ).

    ``PYTHONDONTWRITEBYTECODE`` is not passed on: every task process imports the DAG file and our
    plugins, and without their bytecode caches each one compiles them from source again (about
    a third of a task's start-up on the 2-core machine)."""
    env = {
        k: v
        for k, v in (os.environ if base is None else base).items()
        if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_")) and k != "PYTHONDONTWRITEBYTECODE"
    }
    env.update(airflow_settings(stack))
    env.update(stack.connections)
    return env


def airflow_settings(stack: Stack) -> dict[str, str]:
    """The Airflow and project settings of ``stack``, as environment variables."""
    root = stack.root
    settings = {
        "AIRFLOW_HOME": str(stack.home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(root / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(root / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # A run of a paused DAG stays queued: the local stacks serve their DAGs unpaused.
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__EXECUTOR": stack.executor,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": stack.db_url,
        "AIRFLOW__CORE__AUTH_MANAGER": FAB_AUTH_MANAGER,
        # FAB's roles and permissions have one writer, scripts/setup_roles.py, which runs beside the
        # components' start: the API server's own sync of them (FAB 3.10.2) fails on a concurrent
        # writer's rows (it died of a UNIQUE constraint on the Admin role's permissions).
        "AIRFLOW__FAB__UPDATE_FAB_PERMS": "False",
        PIPELINE_CONNECTION: stack.pipeline_connection(),
        "AIRFLOW__API__HOST": stack.api_host,
        "AIRFLOW__API__PORT": str(stack.api_port),
        "AIRFLOW__API__BASE_URL": stack.ui_url,
        # Workers reach the Execution API here; it must follow the API port.
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{stack.api_url}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": stack.jwt_secret,
        "AIRFLOW__API__SECRET_KEY": stack.jwt_secret,
        "AIRFLOW__CORE__FERNET_KEY": stack.fernet_key,
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(stack.worker_log_port),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(stack.trigger_log_port),
        "DEPLOYMENT_CONFIG": stack.deployment_config,
        # What one task process leaves for the next (deployment.local_cache): the stack's own.
        "DEPLOYMENT_CACHE_DIR": str(stack.home / "deployment-cache"),
        "PYTHONPATH": os.pathsep.join([str(root / "plugins"), str(root / "include")]),
    }
    if stack.executor == "CeleryExecutor":
        if not (stack.broker_url and stack.result_backend):
            raise ValueError("a CeleryExecutor stack needs broker_url and result_backend")
        settings |= {
            "AIRFLOW__CELERY__BROKER_URL": stack.broker_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": stack.result_backend,
            "AIRFLOW__OPERATORS__DEFAULT_QUEUE": stack.celery_queue,
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(stack.worker_concurrency),
        }
    if stack.fast:
        settings |= {
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            # An idle scheduler loop sleeps this long (default 1 s) before it looks again for a
            # finished task whose downstream can be queued: up to that long per hand-off. Each look
            # checks every pending task of the active run: at 0.2 s an idle scheduler takes ~16 % of
            # a core on the 2-core machine, at 0.5 s ~9 %; yet with two test stacks side by side the
            # real-engine tier took 962 s at 0.2 s and 1102 s at 0.5 s, the cores 59-79 % busy.
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.2",
            # LocalExecutor forks this many workers up front (default 32); a release runs at most
            # a handful of tasks at once, and CI runs two stacks side by side on 2 cores.
            "AIRFLOW__CORE__PARALLELISM": "8",
            "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "2",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            # Each periodic re-parse of deploy_production costs the dag-processor about two seconds of
            # CPU (a tenth of a core at the default 30 s, idle or not). An edited DAG file is re-parsed
            # at the next refresh anyway (file_parsing_sort_mode = modified_time, the default), and
            # task processes parse the file themselves; only a DAG shape changed through the
            # deployment configuration alone waits for this.
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__API__WORKERS": "1",
            # A task whose worker died (OOM, node lost) is failed, and retried when it has retries,
            # once its heartbeat is this old; the default 300 s would stall a test or demo for minutes.
            # Supervisors heartbeat every second ([workers] min_heartbeat_interval, below).
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
            # A scheduler that dies leaves the task instances it ran "running", and its successor only
            # watches the heartbeats of its own: it resets them when it looks for orphans (default
            # every 300 s) and the dead scheduler's last heartbeat is older than the health-check
            # threshold (default 30 s). A scheduler killed during the rollback's verify stalled the
            # rollback for five minutes (the kill matrix, row 8).
            "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "10",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD": "20",
            # A dead triggerer's triggers move to a live one once its last heartbeat is this old (default 30).
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "15",
            # How often deferral and human-in-the-loop response deadlines are checked (default 15 s).
            "AIRFLOW__SCHEDULER__TRIGGER_TIMEOUT_CHECK_INTERVAL": "5",
            # A task supervisor notices its process's exit only at its next wake-up, up to this
            # many seconds later (default 5). With seconds-long sandbox waits, a trigger can fire
            # and re-queue a deferred task before the executor reports the first workload's
            # exit; Airflow 3.3.2 then calls the state "changed externally" and fails the task.
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
        }
    return settings


def read_connections_env(path: Path) -> dict[str, str]:
    """The ``export AIRFLOW_CONN_X=...`` lines of the sandbox's connections.env."""
    import shlex

    found: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        words = shlex.split(line)
        if words and words[0] == "export":
            words = words[1:]
        for word in words:
            name, sep, value = word.partition("=")
            if sep and name.startswith("AIRFLOW_CONN_"):
                found[name] = value
    if not found:
        raise ValueError(f"{path} holds no AIRFLOW_CONN_* variable")
    return found
