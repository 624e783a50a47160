#!/usr/bin/env python3
"""Every benchmark, one command: ``.venv/bin/python bench/run_all.py [--quick] [--celery]``.

Writes ``bench/results.json`` (every figure, and how each was computed) and
``bench/results.md`` (machine, date, figures, method). Benchmarks print figures;
they are never assertions in the test suite. Each figure is a ratio or a count
against something measured in the same run, so a slow machine moves both sides.

1. parse cost: each DAG file parsed in a fresh process, against a one-task DAG (``parse_cost.py``).
2. orchestration overhead: a full successful release on the real engine (LocalExecutor;
   with ``--celery`` also CeleryExecutor) with the sandbox's compressed timings, its wall
   time less the waits the config asks for and the approvers' time, per task on the
   critical path.
3. time to restore: a fault (50 % errors on the new version) started while the 10 % step
   (and, without ``--quick``, the 50 % step and the monitoring) watches; seconds, and polls, until the
   router (the front door's KeyValueStore by default) sends everything to the stable colour, and until
   the rollback is verified.
4. worker time while waiting: a release whose waits (``bench/config/bench-long-waits.yaml``,
   approvers who take their time) are long next to its work; worker-seconds ``running``
   over wall time, and each wait's state.
5. AWS calls per minute while the metric watches run, from the sandbox's request log.
6. Airflow's own floor, on the same stack right after the releases: a DAG of no-op tasks in the
   measured release's shape (``bench/dags/bench_floor.py``: as many tasks as its critical path,
   parked where and as often as the release's were, each wait trivial, approvals answered over
   REST) and a plain chain of the same length; the release's overhead as a ratio to each, and
   where the difference goes, from the task logs.

It starts one sandbox process and one Airflow stack per executor (2-core machines: one
at a time) and stops them all, also on failure. ``--quick`` (about 10 minutes) runs
fewer repetitions; the full run takes about 15 (20 with ``--celery``). Run it on an idle
machine: it says in the results how many other Airflow schedulers were running.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(BENCH), str(ROOT / "include"), str(ROOT / "plugins")]

import deployments_view_load  # noqa: E402
import figures  # noqa: E402
import harness  # noqa: E402
import parse_cost  # noqa: E402
import report  # noqa: E402

from deployment.config import load_file  # noqa: E402

PRODUCTION_CONFIG = ROOT / "include" / "config" / "production.yaml"
LONG_WAITS = BENCH / "config" / "bench-long-waits.yaml"
MAX_ATTEMPTS = 3
RESTORE_POINTS = (
    "deploy_frontend.shift_traffic_10",
    "deploy_frontend.shift_traffic_50",
    "monitoring.watch_metrics",
)


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)


def analyse(rec: harness.RunRecord, box: harness.BenchSandbox) -> dict[str, Any]:
    """Figures 2, 4 and 5 of one release, and 3 when it had a fault."""
    cfg = rec.config
    end = figures.ts(rec.run.get("end_date"))
    spells = figures.state_intervals(rec.events, until=end)
    poll = float(cfg.timings.poll_interval_seconds)
    configured = figures.configured_waits(
        cfg.timings.model_dump(mode="json"), [s.model_dump(mode="json") for s in cfg.traffic.steps]
    )
    timer = rec.tis.get("approval_gate.wait_timer") or {}
    approvals = rec.ledger.get("approvals") or {}
    imposed = figures.imposed_waits(
        configured,
        figures.ts((approvals.get("result") or approvals).get("wait_until")),
        figures.ts(timer.get("start_date")),
    )
    emulated = {
        "deploy_infrastructure.execute_change_set": box.update_seconds,
        "deploy_frontend.start_amplify_job": box.job_seconds,
    }
    if ((rec.ledger.get("frontend") or {}).get("api_stack_sync") or {}).get("started_at"):
        # the 100 % step's stack update that writes the live API version into the template
        emulated["deploy_frontend.shift_traffic_100"] = box.update_seconds
    result: dict[str, Any] = {
        "run_id": rec.run_id,
        "run_after": rec.run.get("run_after"),
        "state": rec.run["state"],
        "executor": rec.executor,
        "timings": {
            "poll_interval_seconds": poll,
            "configured_waits": configured,
            "imposed_waits": imposed,
            "emulated_external": emulated,
        },
        "worker_time": figures.worker_time(
            rec.run, spells, {**dict.fromkeys((*harness.GATES, *emulated)), **imposed}
        ),
        "api_calls": figures.api_calls(rec.aws_requests, spells, rec.ledger, poll),
        "cpu": rec.cpu,
    }
    calls = result["api_calls"]
    production_poll = float(load_file(PRODUCTION_CONFIG).timings.poll_interval_seconds)
    calls["production_poll_interval_seconds"] = production_poll
    calls["calls_per_minute_at_production_poll"] = (
        round(calls["calls_per_poll"] * 60 / production_poll, 2) if calls["calls_per_poll"] else None
    )
    if rec.run["state"] == "success":
        path = figures.critical_path(figures.upstream_map(rec.tasks), rec.tis, "record_outcome")
        result["overhead"] = figures.overhead(
            rec.run, rec.tis, spells, path, imposed, figures.approval_waits(rec.hitl), emulated
        )
        result["overhead"]["configured_waits_total_seconds"] = round(
            sum(configured[t] for t in path if t in configured), 3
        )
        result["shape"] = figures.release_shape(path, spells, harness.FLOOR_DEFER_SECONDS)
        result["resumptions"] = figures.resumptions(result["overhead"]["critical_path"], spells)
        if rec.logs:
            result["segments"] = figures.path_segments(path, rec.logs, spells)
    if rec.fault is not None and rec.fault_at is not None:
        result["restore"] = figures.restore(
            rec.fault_at, poll, rec.aws_requests, rec.ledger, spells, rec.fault.task_id
        )
        result["restore"]["fault"] = {"kind": rec.fault.kind, **rec.fault.fields}
    return result


def analyse_floor(rec: harness.FloorRecord) -> dict[str, Any]:
    """A floor DAG's run, measured as the release is: overhead, resumptions, task-log parts."""
    spells = figures.state_intervals(rec.events, until=figures.ts(rec.run.get("end_date")))
    shaped = rec.dag_id == harness.FLOOR_SHAPED
    ids = harness.expected_floor_ids(rec.shape, parked=shaped)
    path = figures.critical_path(figures.upstream_map(rec.tasks), rec.tis, ids[-1])
    waits = figures.floor_waits(rec.shape, ids) if shaped else {}
    found = figures.overhead(rec.run, rec.tis, spells, path, waits, figures.approval_waits(rec.hitl), {})
    return {
        "dag_id": rec.dag_id,
        "run_id": rec.run_id,
        "state": rec.run["state"],
        "executor": rec.executor,
        "waits": waits,
        "overhead": found,
        "resumptions": figures.resumptions(found["critical_path"], spells),
        "segments": figures.path_segments(path, rec.logs, spells),
        "cpu": rec.cpu,
    }


class Runner:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.records = workdir / "records"
        self.records.mkdir(parents=True, exist_ok=True)
        self.errors: list[str] = []
        self.races: list[dict[str, Any]] = []

    def scenario(self, name: str, call) -> Any:
        """Run one scenario; a failure is recorded and the others still run."""
        log(f"== {name}")
        started = time.monotonic()
        try:
            value = call()
        except Exception as exc:
            self.errors.append(f"{name}: {type(exc).__name__}: {exc}")
            log(f"!! {name} failed: {exc}\n{traceback.format_exc()}")
            return None
        log(f"== {name} done in {time.monotonic() - started:.0f} s")
        return value

    def retrying(self, executor: str, scenario: str, call) -> tuple[Any, int]:
        """``call()`` and its attempt; a run the scheduler's deferral race spoiled is counted and rerun."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                return call(), attempt
            except harness.RaceLost as lost:
                self.races.append(
                    {"executor": executor, "scenario": scenario, "run_id": lost.run_id, "tasks": lost.tasks}
                )
                log(
                    f"  lost to Airflow's deferral race ({', '.join(lost.tasks)}); "
                    f"attempt {attempt} of {MAX_ATTEMPTS}"
                )
                if attempt == MAX_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    def release(
        self, engine: harness.Engine, box: harness.BenchSandbox, name: str, **kwargs: Any
    ) -> dict[str, Any]:
        """One release of the scenario; a run the scheduler's deferral race spoiled is counted and rerun."""
        rec, attempt = self.retrying(
            engine.executor,
            name,
            lambda: harness.release(engine, box, log, with_logs=name.startswith("release-"), **kwargs),
        )
        rec.dump(self.records / f"{engine.executor}-{name}.json")
        result = analyse(rec, box)
        result["attempt"] = attempt
        expected = "failed" if kwargs.get("fault") else "success"
        if rec.run["state"] != expected:
            raise harness.BenchError(
                f"{name}: the run ended {rec.run['state']}, the scenario needs {expected}:\n"
                + engine.ci.diagnose(rec.run_id)
            )
        return result

    def engine_benchmarks(self, executor: str, box: harness.BenchSandbox) -> dict[str, Any]:
        quick = self.args.quick
        found: dict[str, Any] = {}
        engine = harness.start_engine(executor, self.workdir, box, log)
        found["start_seconds"] = round(engine.start_seconds, 1)
        found["database"] = engine.database_kind
        try:
            repeats = 0 if self.args.restore_only else 1 if quick or executor == "CeleryExecutor" else 2
            found["releases"] = [
                r
                for r in (
                    self.scenario(
                        f"{executor}: successful release {i + 1}/{repeats}",
                        lambda i=i: self.release(engine, box, f"release-{i + 1}"),
                    )
                    for i in range(repeats)
                )
                if r
            ]
            shaped = next((r["shape"] for r in found["releases"] if r.get("shape")), None)
            if shaped is not None:
                found["floor"] = self.scenario(
                    f"{executor}: Airflow's floor for the release's shape",
                    lambda: self.floor(engine, shaped, 1 if quick else 2),
                )
            measured = next((r for r in found["releases"] if r.get("overhead")), None)
            if measured is not None:
                found["task_costs"] = self.scenario(
                    f"{executor}: a release task's steps before its own work",
                    lambda: self.task_costs(engine, measured, 3 if quick else 5),
                )
            if executor == "LocalExecutor":
                points = RESTORE_POINTS[:1] if quick else RESTORE_POINTS
                found["restores"] = [
                    r
                    for r in (
                        self.scenario(
                            f"{executor}: fault during {point}",
                            lambda p=point: self.release(engine, box, f"fault-{p}", fault=harness.Fault(p)),
                        )
                        for point in points
                    )
                    if r
                ]
                if not self.args.restore_only:
                    found["long_waits"] = self.scenario(
                        f"{executor}: release with long waits", lambda: self.long_waits(engine, box)
                    )
        finally:
            harness.stop_engine(engine, log)
        return found

    def floor(self, engine: harness.Engine, shape: dict[str, Any], repeats: int) -> dict[str, Any]:
        """The floor DAGs in the release's shape: the shaped chain, then the plain chain, ``repeats`` each."""
        kinds = [t["kind"] for t in shape["tasks"]]
        log(
            f"  shape: {len(kinds)} tasks, {kinds.count('deferred')} deferred "
            f"({sum(t['parks'] for t in shape['tasks'] if t['kind'] == 'deferred')} deferrals), "
            f"{kinds.count('awaiting_input')} awaiting input"
        )
        found: dict[str, Any] = {"shape": shape, "parse_seconds": harness.set_floor_shape(engine, shape, log)}
        for key, dag_id in (("shaped", harness.FLOOR_SHAPED), ("chain", harness.FLOOR_CHAIN)):
            found[key] = []
            for i in range(repeats):
                rec, attempt = self.retrying(
                    engine.executor, dag_id, lambda d=dag_id: harness.floor_run(engine, d, shape, log)
                )
                rec.dump(self.records / f"{engine.executor}-{dag_id}-{i + 1}.json")
                if rec.run["state"] != "success":
                    raise harness.BenchError(
                        f"{dag_id} ended {rec.run['state']}:\n"
                        + harness.floor_client(engine, dag_id).diagnose(rec.run_id)
                    )
                result = analyse_floor(rec)
                result["attempt"] = attempt
                found[key].append(result)
                o = result["overhead"]
                log(
                    f"  {dag_id}: wall {o['wall_seconds']:.1f} s, overhead {o['overhead_seconds']:.1f} s "
                    f"({o['overhead_per_task_seconds']:.2f} s per task)"
                )
        return found

    def task_costs(self, engine: harness.Engine, release: dict[str, Any], repeats: int) -> dict[str, Any]:
        """``task_costs.py`` in ``repeats`` fresh processes with the stack's environment; median per step."""
        runs = []
        for _ in range(repeats):
            out = subprocess.run(
                [
                    sys.executable,
                    str(BENCH / "task_costs.py"),
                    release["run_id"],
                    harness.VERSION,
                    release["run_after"],
                ],
                env=engine.supervisor.env,
                capture_output=True,
                text=True,
                timeout=300,
                cwd=ROOT,
            )
            if out.returncode != 0:
                raise harness.BenchError(f"task_costs.py failed ({out.returncode}):\n{out.stderr[-3000:]}")
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        found = figures.step_medians(runs)
        for step, value in found["median_seconds"].items():
            log(f"  {value:.3f} s  {step}")
        return found

    def long_waits(self, engine: harness.Engine, box: harness.BenchSandbox) -> dict[str, Any]:
        cfg = engine.use_config(LONG_WAITS)
        hold = 5.0 if self.args.quick else 15.0
        log(
            f"  {LONG_WAITS.relative_to(ROOT)}: wait timer {cfg.timings.wait_timer_seconds} s, steps "
            f"{[(s.weight, s.hold_seconds) for s in cfg.traffic.steps]}, monitoring "
            f"{cfg.timings.monitoring_seconds} s; approvers answer after {hold:.0f} s"
        )
        try:
            result = self.release(engine, box, "long-waits", approval_hold=hold)
        finally:
            engine.use_config(harness.SANDBOX_CONFIG)
        result["approval_hold_seconds"] = hold
        result["config"] = str(LONG_WAITS.relative_to(ROOT))
        return result


def derive(results: dict[str, Any]) -> None:
    """The figures computed across scenarios, from what each scenario recorded."""
    for engine in (results.get("engines") or {}).values():
        floor = engine.get("floor")
        if floor:
            shaped, chain = (floor.get("shaped") or [None])[0], (floor.get("chain") or [None])[0]
            floor["comparisons"] = [
                figures.floor_comparison(r, shaped, chain)
                for r in engine.get("releases") or []
                if r.get("overhead")
            ]
        long_waits = engine.get("long_waits")
        if long_waits:
            long_waits["marginal"] = figures.marginal_worker_time(
                long_waits["worker_time"], [r["worker_time"] for r in engine.get("releases") or []]
            )


def render_only(out: Path) -> int:
    results = json.loads((out / "results.json").read_text())
    derive(results)
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (out / "results.md").write_text(report.render(results))
    log(f"rewrote {out / 'results.md'} from results.json")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (about 10 minutes)")
    parser.add_argument(
        "--celery",
        action="store_true",
        help="also measure CeleryExecutor (needs PostgreSQL and Redis on 127.0.0.1)",
    )
    parser.add_argument(
        "--restore-only",
        action="store_true",
        help="only the time-to-restore scenarios (write their results elsewhere with --out)",
    )
    parser.add_argument("--out", type=Path, default=BENCH, help="where results.md/json go (default bench/)")
    parser.add_argument("--keep", action="store_true", help="keep the stacks' state and raw records")
    parser.add_argument(
        "--render",
        action="store_true",
        help="only rewrite results.md from results.json (after a change to the report)",
    )
    args = parser.parse_args(argv)
    if args.render:
        return render_only(args.out)

    results: dict[str, Any] = {
        "command": "python bench/run_all.py" + " --quick" * args.quick + " --celery" * args.celery,
        "machine": harness.machine(),
    }
    if results["machine"]["airflow_schedulers_running"]:
        log(
            f"warning: {results['machine']['airflow_schedulers_running']} other Airflow scheduler(s) are "
            "running on this machine; the figures will say so"
        )
    workdir = Path(tempfile.mkdtemp(prefix="bench-run-"))
    runner = Runner(args, workdir)
    started = time.monotonic()
    if not args.restore_only:
        results["parse_cost"] = runner.scenario(
            "parse cost", lambda: parse_cost.measure(3 if args.quick else 7, log=lambda m: log("  " + m))
        )
        results["deployments_view"] = runner.scenario("deployments view", deployments_view_load.measure)
    box = harness.start_sandbox(workdir, log)
    results["sandbox"] = {"job_seconds": box.job_seconds, "update_seconds": box.update_seconds}
    engines: dict[str, Any] = {}
    try:
        for executor in ("LocalExecutor", *(("CeleryExecutor",) if args.celery else ())):
            engines[executor] = (
                runner.scenario(f"{executor} stack", lambda e=executor: runner.engine_benchmarks(e, box))
                or {}
            )
    finally:
        box.stop()
        log("sandbox stopped")
    results["engines"] = engines
    derive(results)
    results["errors"] = runner.errors
    results["runs_lost_to_deferral_race"] = runner.races
    results["engine_settings"] = harness.ENGINE_SETTINGS
    results["total_seconds"] = round(time.monotonic() - started, 1)
    results["machine_after"] = {"load_average": harness.machine()["load_average"]}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (args.out / "results.md").write_text(report.render(results))
    log(f"wrote {args.out / 'results.md'} and results.json in {results['total_seconds']:.0f} s")
    if args.keep:
        log(f"state and raw records kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    for error in runner.errors:
        log(f"error: {error}")
    return 1 if runner.errors else 0


if __name__ == "__main__":
    sys.exit(main())
