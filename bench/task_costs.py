#!/usr/bin/env python3
"""What a release task spends before its own work, step by step, in a process set up as a task's.

Run by ``run_all.py`` after the releases, on the same stack (its environment: connections, the
deployment config, PYTHONPATH) against the record a release left in the sandbox's S3:
``python bench/task_costs.py <run_id> <version> <run_after>``. The process first does what the
scheduler does before it forks a task (Airflow's settings, with ``airflow_local_settings`` as the
scheduler loads it: Airflow's building blocks of the DAG file, the providers' hooks and libraries,
botocore's service models, our package, our DAGs built before the fork), then forks, and the fork
times, once each and in a task's order:

1. ``dags/deploy_production.py`` imported as a task process parses it (the DAG its worker built
   before the fork is taken when the file, the configuration and the docs are unchanged);
2. the run context (``deployment.run_context.release``): the deployment record located and its
   config snapshot taken from the machine's local cache, where the release's tasks left it in the
   stack's home (``deployment.local_cache``), or else read from S3 and validated, which builds the
   S3 hook and client;
3. one more section of the record read (one S3 GET, and the S3 client when step 2 built none);
4. a second AWS hook and its client (CloudFormation), as the tasks that call it build one;
5. a third (Amplify).

Prints one JSON object: step → seconds. The gate proof and the XCom push are read from the
task logs instead (``figures.path_segments``).
"""

from __future__ import annotations

import gc
import importlib.util
import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
STEPS = (
    "parse dags/deploy_production.py as a task process does (the DAG built before the fork, if current)",
    "run context: the record located, its config snapshot (local cache, else S3 and validated)",
    "one more section of the record read (S3 GET; the S3 client if not built yet)",
    "a second AWS hook and client (CloudFormation)",
    "a third AWS hook and client (Amplify)",
)


def measure(run_id: str, version: str, run_after: str) -> dict[str, float]:
    sys.argv = ["airflow", "scheduler"]  # airflow_local_settings preloads and builds as the scheduler does
    import airflow  # noqa: F401 (initialises Airflow's settings, which imports airflow_local_settings)
    import airflow.executors.local_executor  # noqa: F401
    import airflow.sdk.execution_time.supervisor  # noqa: F401
    import airflow.sdk.execution_time.task_runner  # noqa: F401

    gc.freeze()
    return in_a_fork(lambda: _steps(run_id, version, run_after))


def in_a_fork(measure_steps) -> dict[str, float]:
    """``measure_steps()`` in a fork of this process, as a task process is one of its worker's."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            os.write(write, json.dumps(measure_steps()).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        text = pipe.read()
    _, status = os.waitpid(pid, 0)
    if not text:
        raise RuntimeError(
            f"the measuring fork ended without figures (exit {os.waitstatus_to_exitcode(status)})"
        )
    return json.loads(text)


def _steps(run_id: str, version: str, run_after: str) -> dict[str, float]:
    seconds: dict[str, float] = {}

    def step(name: str, call):
        started = time.perf_counter()
        value = call()
        seconds[name] = round(time.perf_counter() - started, 4)
        return value

    def parse() -> None:
        spec = importlib.util.spec_from_file_location(
            "bench_probe_dag", ROOT / "dags" / "deploy_production.py"
        )
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)

    step(STEPS[0], parse)
    from airflow.providers.amazon.aws.hooks.cloud_formation import CloudFormationHook

    from deployment.hooks.aws import AmplifyHook, hook_for
    from deployment.run_context import CONFIG_SECTION, release

    context = {
        "params": {"version": version},
        "run_id": run_id,
        "dag_run": SimpleNamespace(run_after=datetime.fromisoformat(run_after.replace("Z", "+00:00"))),
    }
    rel = step(STEPS[1], lambda: release(context))
    step(STEPS[2], lambda: rel.ledger.read(CONFIG_SECTION))
    step(STEPS[3], lambda: hook_for(rel.cfg, CloudFormationHook).get_conn())
    step(STEPS[4], lambda: hook_for(rel.cfg, AmplifyHook).get_conn())
    return seconds


if __name__ == "__main__":
    print(json.dumps(measure(*sys.argv[1:4])))
