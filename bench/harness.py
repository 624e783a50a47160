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

import boto3
import requests

from airflow_stack.client import TERMINAL_RUN_STATES, AirflowClient, stack_clients
from airflow_stack.env import ADMIN, APPROVERS, CI_USER, DAG_ID, ROOT, Stack
from airflow_stack.sandbox_process import SandboxProcess
from airflow_stack.services import celery_services_missing, celery_stack, postgres_admin
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
    _tasks: list[dict[str, Any]] | None = None

    @property
    def executor(self) -> str:
        return self.stack.executor

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
    if executor == "CeleryExecutor":
        if missing := celery_services_missing():
            raise BenchError("CeleryExecutor needs " + "; ".join(missing))
        token = secrets.token_hex(4)
        database = f"airflow_bench_{token}"
        postgres_admin(f"CREATE DATABASE {database}")
        stack = celery_stack(home, database, f"bench-{token}", **common)
    else:
        stack = Stack.with_free_ports(home, **common)
    supervisor = Supervisor(stack)
    supervisor.env.update(ENGINE_SETTINGS)
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
    return Engine(stack, supervisor, users, config_file, seconds, database)


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
class RunRecord:
    """What one release left behind, as the figures read it."""

    executor: str
    run_id: str
    run: dict[str, Any]
    tis: dict[str, dict[str, Any]]
    events: list[dict[str, Any]]
    tasks: list[dict[str, Any]]
    hitl: dict[str, dict[str, Any]]
    ledger: dict[str, Any]
    aws_requests: list[dict[str, Any]]
    traffic_ticks: list[dict[str, Any]]
    config: DeploymentConfig
    fault_at: float | None = None
    fault: Fault | None = None

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
    log(f"  run ended {run['state']}")
    record = collect(engine, box, run_id, cfg, since, fault, fault_at)
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


def event_logs(admin: AirflowClient, run_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while True:
        page = admin.request(
            "GET",
            "/eventLogs",
            params={
                "dag_id": DAG_ID,
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
