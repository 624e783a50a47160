#!/usr/bin/env python3
"""A release task process's start, step by step: this tree against another revision.

    .venv/bin/python bench/task_start.py [--base REV] [--repeat 9]

Starts a sandbox in this process (no traffic simulator), writes a release record with its
configuration snapshot to the sandbox's S3, and exports ``--base`` with ``git archive``. Then it
runs fresh interpreters, round-robin, each set up as a scheduler is (``airflow_local_settings``
as ``airflow scheduler`` loads it, the scheduler's and the task runner's own imports, ``gc.freeze()``),
each forking a task process that times, once each and in a task's order:

1. ``dags/deploy_production.py`` parsed as the task runner does (``BundleDagBag``);
2. the task's Params resolved as its template context does (``process_params``);
3. the run context (``deployment.run_context.release``);
4. one section of the record read, 5. one written;
6. a second AWS hook and client (CloudFormation);
7. the gate proof of ``backup.tag_amplify`` (``prove_gate``, a new try each time) against two recorded
   approvals. Airflow's API is the unit tier's stand-in (``tests/unit/_airflow_api.py``) over HTTP,
   which charges nothing for a login: a real API server checks the password (FAB: scrypt).

The base tree runs once per round; this tree twice: with the local cache (``deployment.local_cache``)
left by an earlier process, as every task process after the first on a machine finds it, and with
an empty one, as the first does. Prints the median wall and CPU milliseconds of each step, and how
many of each variant's processes logged in to the API. Nothing here needs Airflow's database.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUN_ID, VERSION, RUN_AFTER = "manual__task_start_probe", "v1.1.0", "2026-12-07T05:00:00+00:00"
COMMIT = "a" * 40
PLAN = f"# Deployment plan: {VERSION}\n\n- Commit: `{COMMIT}`\n"
STEPS = ("parse", "params", "run context", "record read", "record write", "2nd hook and client", "gate proof")
PROBE = textwrap.dedent(
    f"""
    import gc, json, os, sys, time
    from datetime import datetime
    from types import SimpleNamespace

    sys.argv = ["airflow", "scheduler"]  # airflow_local_settings preloads and shares as the scheduler does
    import airflow  # noqa: F401 (imports airflow_local_settings)
    import airflow.executors.local_executor, airflow.jobs.scheduler_job_runner  # noqa: F401
    import airflow.sdk.execution_time.supervisor, airflow.sdk.execution_time.task_runner  # noqa: F401
    gc.freeze()
    # The task process is a fork of the executor's worker: what the worker does before it forks
    # (airflow_local_settings.build_before_fork, where the tree has it) is not the task's time.
    pid = os.fork()
    if pid:
        _, status = os.waitpid(pid, 0)
        sys.exit(os.waitstatus_to_exitcode(status))
    tree, out = os.environ["PROBE_TREE"], {{}}

    def step(name, call):
        wall, cpu = time.perf_counter(), time.process_time()
        value = call()
        out[name] = [1000 * (time.perf_counter() - wall), 1000 * (time.process_time() - cpu)]
        return value

    from airflow.dag_processing.dagbag import BundleDagBag

    bag = step("parse", lambda: BundleDagBag(
        dag_folder=f"{{tree}}/dags/deploy_production.py", safe_mode=False, load_op_links=False,
        bundle_path=f"{{tree}}/dags", bundle_name="dags-folder",
    ))
    dag = bag.dags["deploy_production"]
    from airflow.sdk.definitions.param import process_params

    conf = {{"version": {VERSION!r}, "commit_sha": {COMMIT!r}, "author": "alice"}}
    task = dag.task_dict["approval_gate.record_approvals"]
    params = step("params", lambda: process_params(dag, task, conf, suppress_exception=False))
    from deployment.run_context import release

    context = {{
        "params": params, "run_id": {RUN_ID!r},
        "dag_run": SimpleNamespace(
            run_after=datetime.fromisoformat({RUN_AFTER!r}), triggering_user_name="ci"
        ),
        "ti": SimpleNamespace(
            dag_id="deploy_production", task_id="backup.tag_amplify", try_number=int(os.environ["PROBE_TRY"])
        ),
    }}
    rel = step("run context", lambda: release(context))
    step("record read", lambda: rel.ledger.read("conf"))
    step("record write", lambda: rel.ledger.write("probe", {{"at": time.time()}}))
    from airflow.providers.amazon.aws.hooks.cloud_formation import CloudFormationHook
    from deployment.hooks.aws import hook_for

    step("2nd hook and client", lambda: hook_for(rel.cfg, CloudFormationHook).get_conn())
    from deployment.gate.proof import prove_gate

    assert step("gate proof", lambda: prove_gate(context))["proven"]
    print("PROBE", json.dumps(out), flush=True)
    os._exit(0)
    """
)


def _write_record(cfg, api) -> None:
    """The record as the gate finds it (config snapshot, conf, plan), and two approvals in ``api``."""
    from deployment.ledger import Ledger
    from deployment.run_context import CONFIG_SECTION, config_snapshot

    ledger = Ledger(cfg, VERSION, RUN_ID, datetime.fromisoformat(RUN_AFTER))
    ledger.write(CONFIG_SECTION, config_snapshot(cfg))
    ledger.write("conf", {"version": VERSION, "run_id": RUN_ID})
    ledger.write_text("plan", PLAN, "md")
    ledger.write(
        "plan", {"release": {"version": VERSION, "commit_sha": COMMIT}, "artifact": {"commit_sha": COMMIT}}
    )
    answered = (datetime.now(UTC) - timedelta(seconds=cfg.timings.wait_timer_seconds + 5)).isoformat()
    for number, (task, user) in enumerate((("first", "bob"), ("second", "carol")), 1):
        api.answer(
            f"approval_gate.{task}_approval", user, body=f"**Approval {number} of 2.**\n\n{PLAN}", at=answered
        )


def _probe(tree: Path, env: dict[str, str], cache: Path, attempt: int) -> dict[str, list[float]]:
    env = {
        **env,
        "PROBE_TRY": str(attempt),
        "PROBE_TREE": str(tree),
        "AIRFLOW__CORE__DAGS_FOLDER": str(tree / "dags"),
        "PYTHONPATH": os.pathsep.join([str(tree / "plugins"), str(tree / "include")]),
        "DEPLOYMENT_CACHE_DIR": str(cache),
    }
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    line = next((line for line in out.stdout.splitlines() if line.startswith("PROBE ")), None)
    if line is None:
        raise RuntimeError(f"the probe failed in {tree}:\n{out.stderr[-3000:]}")
    return json.loads(line.removeprefix("PROBE "))


def measure(base: str, repeat: int, log=print) -> dict:
    """Median (wall, CPU) milliseconds of each step, per variant: ``base``, ``warm`` and ``cold``."""
    sys.path[:0] = [str(ROOT / "plugins"), str(ROOT / "include")]
    work = Path(tempfile.mkdtemp(prefix="bench-task-start-"))
    try:
        return _measure(base, repeat, work, log)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _measure(base: str, repeat: int, work: Path, log) -> dict:
    sys.path.append(str(ROOT / "tests" / "unit"))
    from _airflow_api import FakeAirflowApi

    from sandbox.testing import running_sandbox

    base_tree = work / "base"
    base_tree.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", base], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(base_tree)], input=archive.stdout, check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")}
    env.update(AIRFLOW_HOME=str(work / "home"), AIRFLOW__CORE__LOAD_EXAMPLES="False")
    env["DEPLOYMENT_CONFIG"] = "sandbox"
    variants = {"base": (base_tree, lambda n: work / "cache-base"), "warm": (ROOT, lambda n: work / "cache")}
    variants["cold"] = (ROOT, lambda n: work / f"cache-cold-{n}")
    samples: dict[str, list[dict]] = {name: [] for name in variants}
    logins = dict.fromkeys(variants, 0)
    api = FakeAirflowApi()
    with running_sandbox(traffic=False) as sandbox:
        env.update(sandbox.connections_env(), AIRFLOW_CONN_AIRFLOW_API=api.connection_uri)
        os.environ.update(sandbox.connections_env())  # the record is written from this process
        from deployment.config import load_config

        _write_record(load_config("sandbox"), api)
        # Bytecode caches written, and the warm variant's cache left; each proof is a new try.
        for attempt, tree in enumerate((base_tree, ROOT), 1):
            _probe(tree, env, work / ("cache" if tree == ROOT else "cache-base"), attempt)
        for n in range(repeat):
            for name, (tree, cache) in variants.items():
                attempt, before = attempt + 1, api.logins
                samples[name].append(_probe(tree, env, cache(n), attempt))
                logins[name] += api.logins - before
    api.close()
    medians = {
        name: {step: [statistics.median(s[step][i] for s in runs) for i in (0, 1)] for step in STEPS}
        for name, runs in samples.items()
    }
    log(f"median of {repeat}, ms (wall / CPU); base = {base}")
    log(f"{'step':<22}" + "".join(f"{name:>18}" for name in medians))
    for step in (*STEPS, "total"):
        cells = []
        for name in medians:
            wall, cpu = (
                [sum(medians[name][s][i] for s in STEPS) for i in (0, 1)]
                if step == "total"
                else medians[name][step]
            )
            cells.append(f"{wall:9.1f} /{cpu:6.1f}")
        log(f"{step:<22}" + "".join(f"{cell:>18}" for cell in cells))
    log(f"{'API logins':<22}" + "".join(f"{f'{logins[name]} of {repeat}':>18}" for name in medians))
    return {"base": base, "repeat": repeat, "median_ms": medians, "logins": logins, "samples": samples}


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", help="the revision to compare with (default: where this branch left main)")
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    base = (
        args.base
        or subprocess.run(
            ["git", "-C", str(ROOT), "merge-base", "HEAD", "main"], capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    return measure(base, args.repeat)


if __name__ == "__main__":
    main()
