"""The benchmarks' side of the end-to-end harness: one sandbox, one stack per executor, releases.

Built on ``include/airflow_stack`` exactly as the e2e tests are: the sandbox and every
Airflow component are separate processes, releases are triggered and approved over the
REST API, faults are injected through the sandbox's control API. What a finished run
left behind (task instances, the audit log, the approval requests, the deployment
record in S3, the sandbox's AWS request log and traffic ticks) is collected into a
``RunRecord`` for ``figures``.

Each stack reads its deployment config from a file of its own that only ``extends``
another (``Engine.use_config``): a scenario that needs other timings rewrites that one
line, and the next run's tasks load it (tasks load the config at run time; the DAG's
shape does not depend on the timings a scenario changes, which ``use_config`` checks).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
import cpu
import requests

from airflow_stack.client import TERMINAL_RUN_STATES, AirflowClient, stack_clients
from airflow_stack.env import ADMIN, APPROVERS, CI_USER, DAG_ID, ROOT, Stack, passwords
from airflow_stack.sandbox_process import SandboxProcess
from airflow_stack.scheduler_log import SchedulerLog
from airflow_stack.services import (
    celery_services_missing,
    celery_stack,
    postgres_admin,
    postgres_missing,
    postgres_url,
)
from airflow_stack.supervisor import Supervisor
from deployment.config import DeploymentConfig, load_file

SANDBOX_CONFIG = ROOT / "include" / "config" / "sandbox.yaml"
VERSION = "v1.1.0"
AUTHOR = "dave"
GATES = ("approval_gate.first_approval", "approval_gate.second_approval")
Log = Callable[[str], None]


# Set on the benchmark's stacks over include/airflow_stack's settings. A task supervisor that
# misses its task process's exit waits up to [workers] min_heartbeat_interval (5 s) before
# reporting to the executor; a trigger that fires sooner (the sandbox's 2 s builds and stack
# updates, a 0 s traffic hold) resumes the task first, and Airflow 3.3.2's scheduler then fails
# the resumed try as "state changed externally" (a "state mismatch" in the audit log).
ENGINE_SETTINGS = {"AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1"}

# Airflow's floor for the release's shape (bench/dags/bench_floor.py): a second DAG bundle, only on
# the benchmark's stacks. The first bundle is Airflow's default (the DAGS_FOLDER env.py sets).
BENCH_DAGS = ROOT / "bench" / "dags"
FLOOR_SHAPED, FLOOR_CHAIN = "bench_floor_shaped", "bench_floor_chain"
FLOOR_SHAPE_ENV = "BENCH_FLOOR_SHAPE"
# How long each of the floor's deferrals waits: a trivial wait (the trigger fires a moment after
# the task parks), long enough that the parking try's exit is processed before it resumes.
FLOOR_DEFER_SECONDS = 1.0
LOCAL_BUNDLE = "airflow.dag_processing.bundles.local.LocalDagBundle"
# Markers the task runner writes in every task process's log, and the fields kept of each entry.
LOG_FIELDS = ("timestamp", "event", "dag_file_parse_ms", "bundle_prepare_ms")


def floor_settings(home: Path) -> dict[str, str]:
    """The settings that add ``bench/dags`` as a second DAG bundle and say where the floor's shape is."""
    bundles = [
        {"name": "dags-folder", "classpath": LOCAL_BUNDLE, "kwargs": {}},
        {"name": "bench-floor", "classpath": LOCAL_BUNDLE, "kwargs": {"path": str(BENCH_DAGS)}},
    ]
    return {
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(bundles),
        FLOOR_SHAPE_ENV: str(home / "floor-shape.json"),
    }


class BenchError(RuntimeError):
    """A benchmark run that did not go as its scenario needs (the figures would be meaningless)."""


class RaceLost(BenchError):
    """The scheduler failed a resumed task as changed externally: the run says nothing about our DAG."""

    def __init__(self, run_id: str, tasks: list[str]) -> None:
        super().__init__(f"{run_id}: Airflow failed {', '.join(tasks)} as 'state changed externally'")
        self.run_id = run_id
        self.tasks = tasks


class BenchSandbox(SandboxProcess):
    """The sandbox process (its emulated durations stated), plus the logs the figures read."""

    def aws_requests(self, since: float) -> list[dict[str, Any]]:
        return self.control("GET", f"/requests?since={since}")

    def traffic_ticks(self) -> list[dict[str, Any]]:
        return self.control("GET", "/recorded/traffic")

    def s3(self, conn_id: str) -> Any:
        conn = json.loads(self.connections()[f"AIRFLOW_CONN_{conn_id.upper()}"])
        extra = conn.get("extra") or {}
        extra = json.loads(extra) if isinstance(extra, str) else extra
        return boto3.client(
            "s3",
            endpoint_url=extra["endpoint_url"],
            region_name=extra.get("region_name"),
            aws_access_key_id="sandbox",
            aws_secret_access_key="sandbox",
        )


@dataclass
class Engine:
    """One running stack and its users' clients."""

    stack: Stack
    supervisor: Supervisor
    users: dict[str, AirflowClient]
    config_file: Path
    start_seconds: float
    database: str | None = None
    sandbox_pid: int | None = None
    _tasks: list[dict[str, Any]] | None = None

    @property
    def executor(self) -> str:
        return self.stack.executor

    @property
    def database_kind(self) -> str:
        return "PostgreSQL" if self.database else "SQLite"

    def cpu_roots(self) -> dict[str, int | None]:
        """The process trees whose CPU a run is charged: each component, PostgreSQL, the sandbox."""
        roots: dict[str, int | None] = {name: r.pid for name, r in self.supervisor.running.items()}
        return {**roots, "postgres": cpu.postmaster(), "sandbox": self.sandbox_pid}

    @property
    def ci(self) -> AirflowClient:
        return self.users[CI_USER]

    @property
    def admin(self) -> AirflowClient:
        return self.users[ADMIN]

    def config(self) -> DeploymentConfig:
        return load_file(self.config_file)

    def use_config(self, target: Path) -> DeploymentConfig:
        """Point this stack's config at ``target``; refuses a change of the DAG's parse-time shape."""
        before = self.config()
        write_config(self.config_file, target)
        after = self.config()
        shape = (
            "traffic.steps weights",
            [s.weight for s in before.traffic.steps],
            [s.weight for s in after.traffic.steps],
        )
        for what, old, new in (
            shape,
            (
                "timings.approval_timeout_seconds",
                before.timings.approval_timeout_seconds,
                after.timings.approval_timeout_seconds,
            ),
            (
                "timings.poll_interval_seconds",
                before.timings.poll_interval_seconds,
                after.timings.poll_interval_seconds,
            ),
        ):
            if old != new:
                write_config(self.config_file, SANDBOX_CONFIG)
                raise BenchError(
                    f"{target}: {what} differs from the stack's ({old} → {new}); the DAG's "
                    "shape would change under a running stack: start a stack with it instead"
                )
        return after

    def tasks(self) -> list[dict[str, Any]]:
        if self._tasks is None:
            self._tasks = self.admin.request("GET", f"/dags/{DAG_ID}/tasks")["tasks"]
        return self._tasks


def write_config(path: Path, target: Path) -> None:
    path.write_text(
        f"# written by bench/harness.py: this stack's deployment config\nextends: {target.resolve()}\n"
    )


# ------------------------------------------------------------------------------------- stacks
def start_sandbox(workdir: Path, log: Log) -> BenchSandbox:
    from sandbox.testing import free_base_port

    box = BenchSandbox(workdir / "sandbox", free_base_port(), job_seconds=2.0, update_seconds=2.0)
    started = time.monotonic()
    box.start()
    log(f"sandbox up on base port {box.base_port} in {time.monotonic() - started:.1f} s")
    return box


def start_engine(executor: str, workdir: Path, box: BenchSandbox, log: Log) -> Engine:
    home = workdir / executor
    home.mkdir(parents=True, exist_ok=True)
    config_file = home / "deployment.yaml"
    write_config(config_file, SANDBOX_CONFIG)
    common = {"connections": box.connections(), "deployment_config": str(config_file)}
    database = None
    token = secrets.token_hex(4)
    if executor == "CeleryExecutor":
        if missing := celery_services_missing():
            raise BenchError("CeleryExecutor needs " + "; ".join(missing))
        database = f"airflow_bench_{token}"
        postgres_admin(f"CREATE DATABASE {database}")
        stack = celery_stack(home, database, f"bench-{token}", **common)
    elif postgres_missing() is None:
        # The database a deployment runs on (docker-compose.yaml, the Helm chart); SQLite, one
        # writer at a time, is the fallback where this machine has no PostgreSQL.
        database = f"airflow_bench_local_{token}"
        postgres_admin(f"CREATE DATABASE {database}")
        stack = Stack.with_free_ports(home, database_url=postgres_url(database), **common)
    else:
        log("no PostgreSQL on 127.0.0.1:5432: LocalExecutor runs on SQLite")
        stack = Stack.with_free_ports(home, **common)
    supervisor = Supervisor(stack)
    supervisor.env.update(ENGINE_SETTINGS)
    supervisor.env.update(floor_settings(home))
    started = time.monotonic()
    log(f"starting {executor} (logs in {stack.logs_dir})...")
    try:
        supervisor.start()
        supervisor.wait_healthy(timeout=300)
    except BaseException:
        supervisor.stop()
        if database:
            postgres_admin(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        raise
    seconds = time.monotonic() - started
    log(f"{executor} healthy after {seconds:.0f} s at {stack.api_url}")
    users = stack_clients(stack)
    sandbox_pid = int((box.state_dir / "sandbox.pid").read_text())
    return Engine(stack, supervisor, users, config_file, seconds, database, sandbox_pid)


def stop_engine(engine: Engine, log: Log) -> None:
    try:
        engine.supervisor.stop()
        log(f"{engine.executor} stopped, no process left")
    finally:
        if engine.database:
            postgres_admin(f"DROP DATABASE IF EXISTS {engine.database} WITH (FORCE)")


# ------------------------------------------------------------------------------------ releases
@dataclass
class Fault:
    """Inject ``kind`` with ``fields`` once ``task_id`` is deferred (its metric watch has begun)."""

    task_id: str
    kind: str = "error_rate"
    fields: dict[str, Any] = field(default_factory=lambda: {"version": VERSION, "percent": 50})


@dataclass
class Run:
    """What any run left behind in Airflow: the run, its task instances, audit log, tasks, approvals."""

    executor: str
    run_id: str
    run: dict[str, Any]
    tis: dict[str, dict[str, Any]]
    events: list[dict[str, Any]]
    tasks: list[dict[str, Any]]
    hitl: dict[str, dict[str, Any]]


@dataclass
class RunRecord(Run):
    """What one release left behind, as the figures read it."""

    ledger: dict[str, Any]
    aws_requests: list[dict[str, Any]]
    traffic_ticks: list[dict[str, Any]]
    config: DeploymentConfig
    fault_at: float | None = None
    fault: Fault | None = None
    logs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    cpu: dict[str, Any] = field(default_factory=dict)

    def dump(self, path: Path) -> None:
        """The raw material, for a second look at a figure."""
        body = {k: v for k, v in self.__dict__.items() if k not in ("config", "fault")}
        body["config_timings"] = self.config.timings.model_dump(mode="json")
        body["fault"] = self.fault.__dict__ if self.fault else None
        path.write_text(json.dumps(body, indent=1, default=str))


def fresh_world(engine: Engine, box: BenchSandbox) -> None:
    """No active run (max_active_runs=1 would queue ours), the sandbox reseeded at v1.0.0 on blue."""
    for run in engine.admin.runs(states=("queued", "running")):
        engine.admin.request("PATCH", f"/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}", json={"state": "failed"})
    box.reseed()


def release(
    engine: Engine,
    box: BenchSandbox,
    log: Log,
    *,
    approval_hold: float = 0.0,
    fault: Fault | None = None,
    timeout: float = 600,
    with_logs: bool = False,
) -> RunRecord:
    """Trigger ``VERSION`` as CI does, approve it as two approvers, optionally inject a fault; collect."""
    fresh_world(engine, box)
    cfg = engine.config()
    conf = {
        "version": VERSION,
        "commit_sha": box.commit_of("rc-" + VERSION.removeprefix("v")),
        "author": AUTHOR,
    }
    since = time.time() - 1
    cpu_before, started = cpu.snapshot(engine.cpu_roots()), time.monotonic()
    run_id = engine.ci.trigger(conf)["dag_run_id"]
    log(f"  triggered {run_id}")
    approve(engine, run_id, approval_hold, log)
    fault_at = None
    if fault is not None:
        try:
            engine.ci.wait_for_task(run_id, fault.task_id, {"deferred"}, timeout=timeout, poll=0.25)
        except AssertionError:
            if victims := race_victims(event_logs(engine.admin, run_id)):
                raise RaceLost(run_id, victims) from None
            raise
        before = time.time()
        fault_id = box.inject(fault.kind, **fault.fields)
        fault_at = (before + time.time()) / 2
        log(f"  fault #{fault_id} {fault.kind} {fault.fields} injected while {fault.task_id} watches")
    run = engine.ci.wait_for_run(run_id, TERMINAL_RUN_STATES, timeout=timeout, poll=1.0)
    used = cpu.usage(cpu_before, cpu.snapshot(engine.cpu_roots()), time.monotonic() - started)
    log(f"  run ended {run['state']}")
    record = collect(engine, box, run_id, cfg, since, fault, fault_at)
    record.cpu = used
    if with_logs:
        record.logs = task_logs(engine.ci, run_id, record.tis)
    if victims := race_victims(record.events):
        raise RaceLost(run_id, victims)
    return record


def race_victims(events: list[dict[str, Any]]) -> list[str]:
    """Tasks the scheduler failed as changed externally (Airflow logs a ``state mismatch``)."""
    return sorted({e["task_id"] for e in events if e.get("event") == "state mismatch" and e.get("task_id")})


def approve(engine: Engine, run_id: str, hold: float, log: Log) -> None:
    """Answer both gates as the first assigned approver, each after ``hold`` seconds of reading."""
    for gate in GATES:
        engine.ci.wait_for_task(run_id, gate, {"awaiting_input"}, timeout=300, poll=0.5)
        if hold:
            time.sleep(hold)
        assigned = [u["name"] for u in engine.ci.hitl_detail(run_id, gate)["assigned_users"]]
        approver = next(u for u in assigned if u in APPROVERS)
        engine.users[approver].respond(run_id, gate, "Approve")
        log(f"  {approver} approved {gate}")


def collect(
    engine: Engine,
    box: BenchSandbox,
    run_id: str,
    cfg: DeploymentConfig,
    since: float,
    fault: Fault | None,
    fault_at: float | None,
) -> RunRecord:
    settle_deadline = time.monotonic() + 30
    while True:  # the scheduler may write the last TI states a moment after the run's
        tis = {ti["task_id"]: ti for ti in engine.ci.task_instances(run_id)}
        if (
            all(ti["state"] not in ("running", "queued", "scheduled", "deferred") for ti in tis.values())
            or time.monotonic() > settle_deadline
        ):
            break
        time.sleep(1)
    return RunRecord(
        executor=engine.executor,
        run_id=run_id,
        run=engine.ci.run(run_id),
        tis=tis,
        events=event_logs(engine.admin, run_id),
        tasks=engine.tasks(),
        hitl={gate: engine.ci.hitl_detail(run_id, gate) for gate in GATES if gate in tis},
        ledger=ledger_sections(box, cfg, run_id),
        aws_requests=box.aws_requests(since),
        traffic_ticks=box.traffic_ticks(),
        config=cfg,
        fault_at=fault_at,
        fault=fault,
    )


def event_logs(admin: AirflowClient, run_id: str, dag_id: str = DAG_ID) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while True:
        page = admin.request(
            "GET",
            "/eventLogs",
            params={
                "dag_id": dag_id,
                "run_id": run_id,
                "limit": 100,
                "offset": len(found),
                "order_by": "event_log_id",
            },
        )
        found.extend(page["event_logs"])
        if not page["event_logs"] or len(found) >= page["total_entries"]:
            return found


def ledger_sections(box: BenchSandbox, cfg: DeploymentConfig, run_id: str) -> dict[str, Any]:
    """Every JSON section of the run's deployment record, by section name."""
    from deployment.ledger import newest_run_prefix

    s3 = box.s3(cfg.connections.aws)
    prefix = newest_run_prefix(s3, cfg, VERSION, run_id)
    sections: dict[str, Any] = {}
    if prefix is None:
        return sections
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=cfg.artifacts.bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            name = obj["Key"].removeprefix(prefix)
            if name.endswith(".json"):
                body = s3.get_object(Bucket=cfg.artifacts.bucket, Key=obj["Key"])["Body"].read()
                sections[name.removesuffix(".json")] = json.loads(body)
    return sections


def task_logs(
    client: AirflowClient, run_id: str, tis: dict[str, dict[str, Any]], dag_id: str = DAG_ID
) -> dict[str, list[dict[str, Any]]]:
    """Each task's log (its last try; resumptions append to it) as entries of ``LOG_FIELDS``."""
    found: dict[str, list[dict[str, Any]]] = {}
    for task_id, ti in tis.items():
        if not ti.get("try_number") or ti.get("state") in (None, "skipped", "upstream_failed", "removed"):
            continue
        try:
            body = client.request(
                "GET",
                f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{quote(task_id, safe='')}"
                f"/logs/{ti['try_number']}",
                params={"full_content": "true"},
                headers={"Accept": "application/json"},
            )
        except Exception as exc:  # a log is a detail of the figures, never a reason to lose the run
            found[task_id] = [{"error": f"{type(exc).__name__}: {exc}"}]
            continue
        entries = []
        for entry in body.get("content") or []:
            if isinstance(entry, dict) and entry.get("timestamp"):
                kept = {k: entry[k] for k in LOG_FIELDS if k in entry}
                kept["event"] = str(kept.get("event", ""))[:120]
                entries.append(kept)
        found[task_id] = entries
    return found


# ------------------------------------------------------------------------- Airflow's own floor
@dataclass
class FloorRecord(Run):
    """What one run of a floor DAG left behind."""

    dag_id: str
    logs: dict[str, list[dict[str, Any]]]
    shape: dict[str, Any]
    cpu: dict[str, Any] = field(default_factory=dict)

    def dump(self, path: Path) -> None:
        path.write_text(json.dumps(self.__dict__, indent=1, default=str))


def floor_client(engine: Engine, dag_id: str) -> AirflowClient:
    """The admin's client for a floor DAG. The approvers' role may answer only the release's
    requests, so the admin answers the floor's (no assigned users), as soon as it is safe, as the
    bench's approvers do."""
    parked = SchedulerLog(engine.stack.logs_dir / "scheduler.log").parked
    return AirflowClient(engine.stack.api_url, ADMIN, passwords()[ADMIN], dag_id=dag_id, parked=parked)


def floor_tasks(engine: Engine, dag_id: str) -> list[dict[str, Any]]:
    return engine.admin.request("GET", f"/dags/{dag_id}/tasks")["tasks"]


def expected_floor_ids(shape: dict[str, Any], parked: bool) -> list[str]:
    """The task ids ``bench/dags/bench_floor.py`` builds from ``shape``."""
    return [f"t{i:02d}_{spec['kind'] if parked else 'run'}" for i, spec in enumerate(shape["tasks"], start=1)]


def set_floor_shape(engine: Engine, shape: dict[str, Any], log: Log, timeout: float = 180) -> float:
    """Write the floor's shape where the stack's components read it, have the floor's file parsed
    again, and wait until both DAGs have the shape's tasks; the seconds it took."""
    Path(engine.supervisor.env[FLOOR_SHAPE_ENV]).write_text(json.dumps(shape, indent=1))
    started = time.monotonic()
    wanted = {
        FLOOR_SHAPED: expected_floor_ids(shape, parked=True),
        FLOOR_CHAIN: expected_floor_ids(shape, parked=False),
    }
    asked = 0.0
    while True:
        try:
            found = {d: sorted(t["task_id"] for t in floor_tasks(engine, d)) for d in wanted}
        except Exception:  # not parsed yet
            found = {}
        if all(found.get(d) == sorted(ids) for d, ids in wanted.items()):
            seconds = time.monotonic() - started
            log(f"  floor DAGs parsed with {len(shape['tasks'])} tasks in {seconds:.1f} s")
            return seconds
        if time.monotonic() - asked > 20:
            with contextlib.suppress(Exception):
                token = engine.admin.request("GET", f"/dags/{FLOOR_SHAPED}/details")["file_token"]
                engine.admin.request("PUT", f"/parseDagFile/{token}")
            asked = time.monotonic()
        if time.monotonic() - started > timeout:
            raise BenchError(f"the floor DAGs did not take the shape in {timeout:.0f} s: {found}")
        time.sleep(1)


def floor_run(
    engine: Engine, dag_id: str, shape: dict[str, Any], log: Log, timeout: float = 600
) -> FloorRecord:
    """Trigger a floor DAG as the admin, answer its approval requests over REST, collect what it left."""
    client = floor_client(engine, dag_id)
    for run in client.runs(states=("queued", "running")):
        client.request("PATCH", f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}", json={"state": "failed"})
    cpu_before, started = cpu.snapshot(engine.cpu_roots()), time.monotonic()
    run_id = client.trigger({})["dag_run_id"]
    log(f"  triggered {dag_id} {run_id}")
    ids = expected_floor_ids(shape, parked=dag_id == FLOOR_SHAPED)
    inputs = [t for t in ids if t.endswith("awaiting_input")]
    for task_id in inputs:
        client.wait_for_task(run_id, task_id, {"awaiting_input"}, timeout=timeout, poll=0.25)
        client.respond(run_id, task_id, "Approve")
    run = client.wait_for_run(run_id, TERMINAL_RUN_STATES, timeout=timeout, poll=1.0)
    used = cpu.usage(cpu_before, cpu.snapshot(engine.cpu_roots()), time.monotonic() - started)
    log(f"  {dag_id} ended {run['state']}")
    deadline = time.monotonic() + 30
    while True:
        tis = {ti["task_id"]: ti for ti in client.task_instances(run_id)}
        settled = all(ti["state"] in ("success", "failed", "skipped") for ti in tis.values())
        if settled or time.monotonic() > deadline:
            break
        time.sleep(1)
    events = event_logs(engine.admin, run_id, dag_id)
    if victims := race_victims(events):
        raise RaceLost(run_id, victims)
    return FloorRecord(
        dag_id=dag_id,
        executor=engine.executor,
        run_id=run_id,
        run=client.run(run_id),
        tis=tis,
        events=events,
        tasks=floor_tasks(engine, dag_id),
        hitl={t: client.hitl_detail(run_id, t) for t in inputs if t in tis},
        logs=task_logs(client, run_id, tis, dag_id),
        shape=shape,
        cpu=used,
    )


# ------------------------------------------------------------------------------------ the machine
def other_schedulers() -> int:
    """``airflow scheduler`` processes running on this machine now (other people's stacks, or ours)."""
    out = subprocess.run(["pgrep", "-fc", "airflow scheduler"], capture_output=True, text=True).stdout
    return int(out.strip() or 0)


def machine() -> dict[str, Any]:
    from importlib.metadata import version

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = None
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        memory = round(pages * size / 2**30, 1)
    except (ValueError, OSError):
        pass
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "os": platform.platform(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory_gib": memory,
        "python": sys.version.split()[0],
        "airflow": version("apache-airflow"),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "airflow_schedulers_running": other_schedulers(),
    }


def sandbox_health(box: BenchSandbox) -> bool:
    try:
        return requests.get(f"{box.control_url}/health", timeout=2).ok
    except requests.RequestException:
        return False
