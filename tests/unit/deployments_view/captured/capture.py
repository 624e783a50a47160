#!/usr/bin/env python3
"""Capture the deployment records that real sandbox releases write, as the view's test fixtures.

Starts a sandbox and a LocalExecutor stack of its own (free ports, a temporary home), and runs
on the real engine: a release of v1.1.0 that succeeds followed by a manual rollback to v1.0.0,
then a release whose canary breaches at 10 % (60 % errors injected on v1.1.0) and is rolled
back automatically. Every JSON object the runs left under the records prefix (their sections,
and the summaries ``record_outcome`` writes under ``summaries/``) is copied to ``records/``
here, keyed as in S3. Rerun it when the record's sections change; it runs a real-engine
stack, so under the team's lock:

    flock /work/team/real-engine.lock .venv/bin/python tests/unit/deployments_view/captured/capture.py
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[3]
OUT = HERE / "records"
sys.path[:0] = [str(ROOT / p) for p in ("include", "plugins", "tests", "tests/e2e", "tests/integration")]
os.environ.setdefault("DEPLOYMENT_CONFIG", "sandbox")


def dump(world) -> int:
    s3 = world.client("s3")
    bucket = world.cfg.artifacts.bucket
    prefix = f"{world.cfg.artifacts.prefix.strip('/')}/"  # the records and their summaries, not builds/
    count = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            if not obj["Key"].endswith(".json"):
                continue
            target = OUT / obj["Key"]
            target.parent.mkdir(parents=True, exist_ok=True)
            body = json.loads(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
            target.write_text(json.dumps(body, indent=1, sort_keys=True) + "\n")
            count += 1
    return count


def main() -> int:
    from _e2e import RC_COMMITS, start_stack, stop_stack
    from _matrix import NEW, World
    from _stack_fixtures import StackConfig

    from airflow_stack.client import stack_clients
    from airflow_stack.env import Stack
    from airflow_stack.sandbox_process import SandboxProcess
    from sandbox.testing import free_base_port

    work = Path(tempfile.mkdtemp(prefix="deployments-view-records-"))
    box = SandboxProcess(work / "sandbox", base_port=free_base_port())
    box.start()
    supervisor = None
    try:
        RC_COMMITS[NEW] = box.commit_of("rc-" + NEW.removeprefix("v"))
        config = StackConfig(work / "config")
        stack = Stack.with_free_ports(
            work / "airflow", connections=box.connections(), deployment_config=str(config.path)
        )
        supervisor = start_stack(stack)
        capture(stack, stack_clients(stack), box, World(box, config.path))
    finally:
        if supervisor is not None:
            stop_stack(supervisor)
        box.stop()
    return 0


def capture(stack, users, box, world) -> None:
    from _e2e import fresh_world
    from _matrix import NEW, OLD, Release

    from airflow_stack.client import AirflowClient
    from airflow_stack.env import passwords

    shutil.rmtree(OUT, ignore_errors=True)
    fresh_world(users["admin"], box)
    release = Release.trigger(users, world, "success")
    release.approve()
    print("success:", release.wait("success")["state"], flush=True)
    rollback = AirflowClient(stack.api_url, "alice", passwords()["alice"], dag_id="rollback_production")
    run_id = f"manual__to-v1.0.0__{int(time.time() * 1000)}"
    rollback.trigger(
        {
            "target_version": OLD,
            "reason": "checkout conversion dropped 30 % since v1.1.0",
            "requested_by": "alice",
        },
        run_id=run_id,
    )
    print(
        "manual rollback:",
        rollback.wait_for_run(run_id, {"success", "failed"}, timeout=300)["state"],
        flush=True,
    )
    print("records:", dump(world), flush=True)

    fresh_world(users["admin"], box)  # reseeding empties the bucket: the first records are saved
    box.inject("error_rate", version=NEW, percent=60)
    breach = Release.trigger(users, world, "breach10")
    breach.approve()
    print("breach:", breach.wait("failed")["state"], flush=True)
    print("records:", dump(world), flush=True)


if __name__ == "__main__":
    sys.exit(main())
