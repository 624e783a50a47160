"""The benchmark arithmetic on hand-made runs (``pytest bench/test_figures.py``): no stack, no clock."""

from __future__ import annotations

from datetime import UTC, datetime

import figures
import pytest
import report

T0 = 1_700_000_000.0


def iso(offset: float) -> str:
    return datetime.fromtimestamp(T0 + offset, UTC).isoformat()


def event(task_id: str, name: str, at: float) -> dict:
    return {"task_id": task_id, "event": name, "when": iso(at)}


# A three-task chain: a (2 s running), b (defers for a 10 s hold), c (1 s running).
EVENTS = [
    {"task_id": None, "event": "trigger_dag_run", "when": iso(0)},
    event("a", "running", 1),
    event("a", "success", 3),
    event("b", "running", 4),
    event("b", "deferred", 5),
    event("b", "running", 17),
    event("b", "success", 18),
    event("c", "running", 20),
    event("c", "success", 21),
]
TIS = {
    "a": {"start_date": iso(1), "end_date": iso(3), "queued_when": iso(0.5), "state": "success"},
    "b": {"start_date": iso(4), "end_date": iso(18), "queued_when": iso(16), "state": "success"},
    "c": {"start_date": iso(20), "end_date": iso(21), "queued_when": iso(19), "state": "success"},
}
TASKS = [
    {"task_id": "a", "downstream_task_ids": ["b"]},
    {"task_id": "b", "downstream_task_ids": ["c"]},
    {"task_id": "c", "downstream_task_ids": []},
    {"task_id": "side", "downstream_task_ids": ["c"]},
]
RUN = {"start_date": iso(0), "end_date": iso(22), "state": "success"}


def test_state_intervals_split_running_from_deferred():
    spells = figures.state_intervals(EVENTS)
    assert [(i.state, i.seconds) for i in spells["b"]] == [("running", 1), ("deferred", 12), ("running", 1)]
    assert figures.seconds_in(spells, ["running"]) == {"a": 2, "b": 2, "c": 1}
    assert figures.concurrency_peak(spells) == 1


def test_open_spell_runs_to_until():
    spells = figures.state_intervals([event("x", "running", 0)], until=T0 + 5)
    assert spells["x"][0].seconds == 5


def test_critical_path_follows_the_upstream_that_finished_last():
    tis = {**TIS, "side": {"start_date": iso(1), "end_date": iso(2), "state": "success"}}
    assert figures.critical_path(figures.upstream_map(TASKS), tis, "c") == ["a", "b", "c"]


def test_overhead_subtracts_waits_and_splits_the_wall_time():
    spells = figures.state_intervals(EVENTS)
    result = figures.overhead(RUN, TIS, spells, ["a", "b", "c"], {"b": 10.0}, {}, {})
    assert result["wall_seconds"] == 22
    assert result["overhead_seconds"] == 12
    assert result["overhead_per_task_seconds"] == 4
    split = result["split"]
    # 1 s before a, 1 s a→b, 2 s b→c; 5 s running; b parked 12 s of which 10 s asked: 2 s hand-off
    assert split["gaps_between_tasks"] == 4 and split["running"] == 5 and split["resume_handoffs"] == 2
    assert split["after_last_task"] == 1
    total = sum(
        split[k]
        for k in (
            "gaps_between_tasks",
            "running",
            "resume_handoffs",
            "retry_delays",
            "waits",
            "after_last_task",
        )
    )
    assert total == pytest.approx(result["wall_seconds"])
    a = result["critical_path"][0]
    assert (a["to_queued"], a["queued_to_running"]) == (0.5, 0.5)
    assert result["critical_path"][1]["to_queued"] is None  # b's queued_when is its resumption's


def test_imposed_wait_timer_counts_only_what_is_left_when_the_task_starts():
    configured = {"approval_gate.wait_timer": 3.0, "x": 6.0}
    assert figures.imposed_waits(configured, T0 + 10, T0 + 8)["approval_gate.wait_timer"] == 2
    assert figures.imposed_waits(configured, T0 + 10, T0 + 12)["approval_gate.wait_timer"] == 0
    assert figures.imposed_waits(configured, None, None) == configured


def test_worker_time_counts_running_only_and_checks_each_wait():
    spells = figures.state_intervals(EVENTS)
    result = figures.worker_time(RUN, spells, {"b": 10.0})
    assert result["worker_seconds_running"] == 5
    assert result["worker_fraction"] == pytest.approx(5 / 22, abs=1e-4)
    assert result["every_wait_parked"] is True
    assert result["waits"] == [
        {
            "task_id": "b",
            "parked_as": ["deferred"],
            "asked_seconds": 10.0,
            "parked_seconds": 12.0,
            "running_seconds": 2.0,
            "wait_not_running": True,
        }
    ]
    held = figures.state_intervals([event("b", "running", 4), event("b", "success", 16)])
    assert figures.worker_time(RUN, held, {"b": 10.0})["every_wait_parked"] is False
    assert figures.worker_time(RUN, held, {"b": None})["every_wait_parked"] is False  # an expected wait
    # Asked to wait 0 s (a 0 s hold, an elapsed wait timer): nothing to park, so no wait to check.
    zero = figures.worker_time(RUN, held, {"b": 0.0})
    assert zero["every_wait_parked"] is True and zero["waits"] == []


def test_a_front_door_keyvaluestore_update_is_a_traffic_write():
    kvs = {"service": "cloudfront-keyvaluestore", "status": 200}
    assert figures.is_traffic_write({**kvs, "action": "POST /key-value-stores/arn%3Aaws%3Acloudfront/keys"})
    assert not figures.is_traffic_write({**kvs, "action": "GET /key-value-stores/arn%3Aaws%3Acloudfront"})
    assert not figures.is_traffic_write({**kvs, "action": "POST /key-value-stores/a/keys", "status": 409})
    assert figures.is_traffic_write({"service": "route53", "action": CHANGE, "status": 200})


def test_keyvaluestore_actions_are_named_from_method_and_path():
    store = "/key-value-stores/arn:aws:cloudfront::1:key-value-store/s"
    assert figures.api_action("cloudfront-keyvaluestore", f"GET {store}") == "DescribeKeyValueStore"
    assert figures.api_action("cloudfront-keyvaluestore", f"GET {store}/keys/routing") == "GetKey"
    assert figures.api_action("cloudfront-keyvaluestore", f"POST {store}/keys") == "UpdateKeys"
    assert figures.api_action("cloudfront-keyvaluestore", f"PUT {store}/keys/routing") == "PutKey"
    assert figures.api_action("route53", "GET /2013-04-01/change/C1") == "GetChange"


def test_route53_actions_are_named_from_method_and_path():
    assert (
        figures.route53_action("route53", "POST /2013-04-01/hostedzone/Z1/rrset/")
        == "ChangeResourceRecordSets"
    )
    assert (
        figures.route53_action("route53", "GET /2013-04-01/hostedzone/Z1/rrset") == "ListResourceRecordSets"
    )
    assert figures.route53_action("route53", "GET /2013-04-01/change/C1") == "GetChange"
    assert figures.route53_action("monitoring", "GetMetricData") == "GetMetricData"


RESTORE_EVENTS = [
    event("deploy_frontend.shift_traffic_10", "running", 0),
    event("deploy_frontend.shift_traffic_10", "deferred", 1),
    event("deploy_frontend.shift_traffic_10", "running", 6),
    event("deploy_frontend.shift_traffic_10", "failed", 7),
    event("rollback.plan", "running", 9),
    event("rollback.plan", "success", 10),
    event("rollback.restore_traffic", "running", 12),
    event("rollback.restore_traffic", "success", 14),
    event("rollback.restore_stack", "running", 15),
    event("rollback.restore_stack", "success", 19),
]
CHANGE = "POST /2013-04-01/hostedzone/Z1/rrset/"
REQUESTS = [
    {"service": "route53", "action": CHANGE, "status": 200, "time": T0 + 0.5},  # the step's own change
    {"service": "monitoring", "action": "GetMetricData", "status": 200, "time": T0 + 3},
    {"service": "monitoring", "action": "DescribeAlarms", "status": 200, "time": T0 + 3.1},
    {"service": "monitoring", "action": "PutMetricData", "status": 200, "time": T0 + 3.2},  # the simulator
    {"service": "monitoring", "action": "GetMetricData", "status": 200, "time": T0 + 5},
    {"service": "monitoring", "action": "DescribeAlarms", "status": 200, "time": T0 + 5.1},
    {"service": "route53", "action": CHANGE, "status": 200, "time": T0 + 13},  # the rollback's
]


def verdict(outcome: str, end: float) -> dict:
    return {"outcome": outcome, "sample": {"end": iso(end)}}


LEDGER = {
    "frontend": {"steps": {"10": {"watch": {"verdicts": [verdict("healthy", 3), verdict("breach", 5)]}}}},
    "rollback.verify": {"verified": True, "verified_at": iso(30)},
    "rollback": {"status": "rolled_back", "stable_colour": "blue", "undone": ["traffic", "stack"]},
}


def test_restore_measures_from_the_fault_to_route53_and_to_verification():
    spells = figures.state_intervals(RESTORE_EVENTS)
    result = figures.restore(T0 + 2, 2.0, REQUESTS, LEDGER, spells, "deploy_frontend.shift_traffic_10")
    assert result["fault_to_traffic_restored_seconds"] == 11
    assert result["traffic_restored_in_polls"] == 5.5
    assert result["fault_to_rollback_verified_seconds"] == 28
    assert result["chain"] == {
        "fault_to_breach_poll": 3,
        "breach_poll_to_traffic_restored_by_the_watch": None,
        "breach_poll_to_step_failed": 2,
        "step_failed_to_rollback_plan_running": 2,
        "plan_running_to_restore_traffic_running": 3,
        "restore_traffic_running_to_route53_change": 1,
    }
    assert result["restore_stack_running_seconds"] == 4
    assert result["rollback_status"] == "rolled_back"


def test_restore_by_the_watching_step_is_the_first_change_after_the_fault():
    api = {
        "before": {"version": "1", "weights": {"2": 0.1}},
        "after": {"version": "1", "weights": {}},
        "at": iso(5.6),
    }
    restored = {"colour": "blue", "at": iso(5.8), "change": {"api": api}}
    watch = {"verdicts": [verdict("healthy", 3), verdict("breach", 5)]}
    step = {"watch": watch, "traffic_restored": restored}
    ledger = {**LEDGER, "frontend": {"steps": {"10": step}}, "rollback.stack": {"finished_at": iso(25)}}
    requests = [*REQUESTS[:-1], {"service": "route53", "action": CHANGE, "status": 200, "time": T0 + 5.9}]
    spells = figures.state_intervals(RESTORE_EVENTS)
    result = figures.restore(T0 + 2, 2.0, requests, ledger, spells, "deploy_frontend.shift_traffic_10")
    assert result["fault_to_traffic_restored_seconds"] == 3.9
    assert result["chain"]["breach_poll_to_traffic_restored_by_the_watch"] == 0.8
    # the API's alias went back in the watch's restore; CloudFormation restored the stack much later
    assert result["fault_to_api_alias_restored_seconds"] == 3.6
    assert result["fault_to_stack_restored_seconds"] == 23


def test_api_calls_count_the_watch_window_without_the_simulator():
    spells = figures.state_intervals(RESTORE_EVENTS)
    result = figures.api_calls(REQUESTS, spells, LEDGER, 2.0)
    assert result["calls"] == {"DescribeAlarms": 2, "GetMetricData": 2}
    assert result["polls"] == 2 and result["get_metric_data_per_poll"] == 1 and result["calls_per_poll"] == 2
    assert result["calls_per_minute"] == 48  # 4 calls in 5 s
    assert result["expected_polls_per_minute"] == 30


def test_report_renders_partial_results():
    spells = figures.state_intervals(EVENTS)
    release = {
        "run_id": "r1",
        "state": "success",
        "overhead": figures.overhead(RUN, TIS, spells, ["a", "b", "c"], {"b": 10.0}, {}, {}),
        "worker_time": figures.worker_time(RUN, spells, {"b": 10.0}),
        "api_calls": figures.api_calls(REQUESTS, figures.state_intervals(RESTORE_EVENTS), LEDGER, 2.0),
    }
    results = {
        "command": "python bench/run_all.py --quick",
        "machine": {
            "date": "2026-01-01T00:00:00+00:00",
            "cpu": "cpu",
            "cpus": 2,
            "memory_gib": 4.0,
            "os": "Linux",
            "python": "3.11",
            "airflow": "3.3.2",
            "load_average": [1, 1, 1],
            "airflow_schedulers_running": 0,
        },
        "sandbox": {"job_seconds": 2.0, "update_seconds": 2.0},
        "parse_cost": {
            "repeat": 3,
            "baseline": "trivial_dag.py",
            "median_seconds": {"trivial_dag.py": 0.1, "d.py": 0.3},
            "ratio": {"trivial_dag.py": 1.0, "d.py": 3.0},
        },
        "engines": {"LocalExecutor": {"start_seconds": 60, "releases": [release], "long_waits": release}},
        "errors": ["CeleryExecutor stack: BenchError: no PostgreSQL"],
    }
    text = report.render(results)
    assert "| parse cost of `d.py`, × the one-task DAG | 3.00 × |" in text
    assert "| overhead per critical-path task, s (wall − configured waits − approvers' time) | 4.00 |" in text
    assert "## Errors" in text and "no PostgreSQL" in text
    assert report.render({**results, "engines": {}, "parse_cost": None})


def test_marginal_worker_time_compares_the_waiting_tasks_only():
    def result(asked: float, running: float) -> dict:
        return {
            "waits": [
                {"task_id": "hold", "asked_seconds": asked, "running_seconds": running},
                {"task_id": "approval", "asked_seconds": None, "running_seconds": 9.0},
            ]
        }

    marginal = figures.marginal_worker_time(result(106.0, 2.5), [result(6.0, 2.0), result(6.0, 3.0)])
    assert marginal["extra_wait_seconds"] == 100 and marginal["extra_worker_seconds"] == 0
    assert marginal["worker_seconds_per_extra_wait_second"] == 0
    assert figures.marginal_worker_time(result(6.0, 1.0), []) is None


def test_a_retried_task_counts_from_its_first_try_and_its_retry_delay_apart():
    events = [
        event("a", "running", 1),
        event("a", "up_for_retry", 2),
        event("a", "running", 5),
        event("a", "success", 6),
    ]
    tis = {"a": {"start_date": iso(5), "end_date": iso(6), "queued_when": iso(4.5), "state": "success"}}
    run = {"start_date": iso(0), "end_date": iso(6)}
    result = figures.overhead(run, tis, figures.state_intervals(events), ["a"], {}, {}, {})
    step = result["critical_path"][0]
    assert (step["tries"], step["gap"], step["running"], step["retry_delay"]) == (2, 1, 2, 3)
    assert step["to_queued"] is None


# ------------------------------------------------------------------------- Airflow's own floor
# The release above (a, b deferring for 10 s, c) plus an approval: a, b, g (awaiting input 3 s), c.
FLOOR_EVENTS = [
    *EVENTS[1:7],  # a and b
    event("g", "running", 19),
    event("g", "awaiting_input", 20),
    event("g", "running", 24),
    event("g", "success", 25),
    event("c", "running", 26),
    event("c", "success", 27),
]


def log_entry(at: float, text: str, **extra) -> dict:
    return {"timestamp": iso(at), "event": text, **extra}


def test_release_shape_says_how_each_task_on_the_path_parked():
    spells = figures.state_intervals(
        [*FLOOR_EVENTS, event("b", "deferred", 17.5), event("b", "running", 17.8)]
    )
    shape = figures.release_shape(["a", "b", "g", "c"], spells, 1.0)
    assert shape["defer_seconds"] == 1.0
    assert [(t["kind"], t["parks"], t["mirrors"]) for t in shape["tasks"]] == [
        ("run", 0, "a"),
        ("deferred", 2, "b"),
        ("awaiting_input", 1, "g"),
        ("run", 0, "c"),
    ]
    ids = ["t01_run", "t02_deferred", "t03_awaiting_input", "t04_run"]
    assert figures.floor_waits(shape, ids) == {"t02_deferred": 2.0}


def test_resumptions_cost_their_handoff_and_the_resumed_process():
    spells = figures.state_intervals(FLOOR_EVENTS)
    tis = {
        t: {"start_date": iso(s), "end_date": iso(e), "state": "success"}
        for t, s, e in (("a", 1, 3), ("b", 4, 18), ("g", 19, 25), ("c", 26, 27))
    }
    run = {"start_date": iso(0), "end_date": iso(28)}
    found = figures.overhead(run, tis, spells, ["a", "b", "g", "c"], {"b": 10.0}, {"g": 3.0}, {})
    costs = figures.resumptions(found["critical_path"], spells)
    # b parked 12 s for 10 asked: 2 s hand-off, then 1 s running; g parked 4 s for a 3 s answer
    assert costs["deferred"] == {
        "resumptions": 1,
        "handoff_seconds": 2.0,
        "resumed_running_seconds": 1.0,
        "handoff_per_resumption_seconds": 2.0,
        "cost_per_resumption_seconds": 3.0,
    }
    assert costs["awaiting_input"]["handoff_per_resumption_seconds"] == 1.0
    assert costs["awaiting_input"]["cost_per_resumption_seconds"] == 2.0


def test_process_segments_split_each_task_process_by_its_log_markers():
    spells = figures.state_intervals(FLOOR_EVENTS)["b"]
    entries = [
        log_entry(3.9, "::group::Pre Execute"),
        log_entry(4.3, "Worker startup parse complete", dag_file_parse_ms=120),
        log_entry(4.5, "::endgroup::"),
        log_entry(4.9, "Pausing task as DEFERRED. "),
        log_entry(10, "trigger fired"),  # the triggerer's lines, between the two processes
        log_entry(17.1, "::group::Pre Execute"),
        log_entry(17.2, "Worker startup parse complete", dag_file_parse_ms=100),
        log_entry(17.6, "::endgroup::"),
        log_entry(17.7, "Done. Returned value was: None"),
        log_entry(17.75, "::group::Post Execute"),
        log_entry(17.9, "::endgroup::"),
    ]
    found = figures.process_segments(entries, spells)
    assert found == [
        {
            "start_to_parsed": 0.3,
            "before_execute": 0.2,
            "execute": 0.4,
            "after_execute": 0.1,
            "parse_ms": 120,
        },
        {
            "start_to_parsed": 0.2,
            "before_execute": 0.4,
            "execute": 0.1,
            "after_execute": 0.3,
            "parse_ms": 100,
        },
    ]
    segments = figures.path_segments(
        ["b", "c"], {"b": entries, "c": []}, figures.state_intervals(FLOOR_EVENTS)
    )
    assert segments["processes"] == 2 and segments["running_spells"] == 3
    assert segments["totals"] == {
        "start_to_parsed": 0.5,
        "before_execute": 0.6,
        "execute": 0.5,
        "after_execute": 0.4,
    }
    assert segments["per_task"][1] == {
        "task_id": "c",
        "processes": 0,
        "start_to_parsed": 0,
        "before_execute": 0,
        "execute": 0,
        "after_execute": 0,
        "parse_ms": None,
    }


def side(overhead: float, tasks: int, *, net: float | None = None, running: float = 0.0, **split) -> dict:
    base = {"gaps_between_tasks": 0.0, "resume_handoffs": 0.0, "retry_delays": 0.0, "after_last_task": 0.0}
    return {
        "overhead": {
            "wall_seconds": overhead + 10,
            "overhead_seconds": overhead,
            "net_overhead_seconds": overhead if net is None else net,
            "critical_path_tasks": tasks,
            "overhead_per_task_seconds": round(overhead / tasks, 3),
            "net_overhead_per_task_seconds": round((overhead if net is None else net) / tasks, 3),
            "split": {
                **base,
                **split,
                "running": running,
                "waits": 10.0,
                "running_median_per_task": 0.5,
                "gap_median_upstream_end_to_queued": 0.1,
                "gap_median_queued_to_running": 0.05,
            },
        },
        "resumptions": {"deferred": {"resumptions": 4}},
    }


def test_floor_comparison_gives_ratios_and_the_floors_cost_per_parked_wait():
    release = side(36.0, 26, net=32.0)
    shaped, chain = side(24.0, 26), side(8.0, 26)
    found = figures.floor_comparison(release, shaped, chain)
    assert found["ratio_to_shaped_floor"] == 1.5
    assert found["net_ratio_to_shaped_floor"] == 1.33
    assert found["ratio_to_chain_floor"] == 4.5
    assert found["per_task_ratio_to_chain_floor"] == 4.5
    # (24 - 8) s over the shaped floor's 4 parked waits
    assert found["floor_cost_per_parked_wait_seconds"] == 4.0
    assert found["release"]["overhead_per_task_seconds"] == round(36 / 26, 3)
    assert "ours" not in found  # no task-log parts to split by
    assert figures.floor_comparison(release, None, chain)["ratio_to_chain_floor"] == 4.5
    assert "floor_cost_per_parked_wait_seconds" not in figures.floor_comparison(release, None, chain)


def test_ours_split_puts_the_largest_difference_first_and_adds_up():
    totals = {"start_to_parsed": 0.0, "before_execute": 0.0, "execute": 0.0, "after_execute": 0.0}
    release = side(32.0, 26, running=14.0, gaps_between_tasks=6.0, resume_handoffs=11.0, after_last_task=1.0)
    release["segments"] = {
        "totals": {**totals, "start_to_parsed": 4.0, "before_execute": 3.0, "execute": 6.0}
    }
    floor = side(20.0, 26, running=5.0, gaps_between_tasks=5.0, resume_handoffs=9.5, after_last_task=0.5)
    floor["segments"] = {"totals": {**totals, "start_to_parsed": 2.5, "before_execute": 2.0, "execute": 0.3}}
    rows = figures.floor_comparison(release, floor, None)["ours"]
    assert rows[0]["part"].startswith("execute") and rows[0]["ours_seconds"] == 5.7
    assert [r["ours_seconds"] for r in rows] == sorted((r["ours_seconds"] for r in rows), reverse=True)
    # running 14 s, of which the markers bound 13 s; the floor's 5 s, 4.8 bound
    unbound = next(r for r in rows if r["part"].startswith("running, not bounded"))
    assert (unbound["release_seconds"], unbound["floor_seconds"]) == (1.0, 0.2)
    assert round(sum(r["ours_seconds"] for r in rows), 3) == 32.0 - 20.0


def test_step_medians_keep_the_first_runs_order():
    found = figures.step_medians(
        [{"parse": 0.1, "context": 0.3}, {"parse": 0.3, "context": 0.1}, {"parse": 0.2}]
    )
    assert list(found["median_seconds"]) == ["parse", "context"]
    assert found["median_seconds"] == {"parse": 0.2, "context": 0.2}
    assert found["total_median_seconds"] == 0.4 and found["runs"] == 3
