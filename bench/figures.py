"""The benchmark figures, computed from what a finished run left behind. Pure: no I/O, no clock.

Inputs are what the REST API, the deployment record and the sandbox serve:

- task instances (``GET .../taskInstances``) and the DAG's tasks (``GET /dags/{id}/tasks``,
  for ``downstream_task_ids``);
- the audit log (``GET /eventLogs?run_id=...``): the Execution API writes one event per
  state a task reports (``running`` when a try or a resumption starts, then ``deferred``,
  ``awaiting_input``, ``success``, ``failed``...). A TI's ``start_date`` survives its
  deferrals and its ``duration`` is ``end_date - start_date``, deferred time included, so
  the events are the only record of how long a task was actually ``running``;
- the human-in-the-loop requests (``created_at``, ``responded_at``);
- the sandbox's AWS request log (``service``, ``action``, ``time``) and the traffic
  simulator's ticks, whose AWS calls go to the same endpoint and are told apart by action.

Times are Unix seconds (floats) once parsed.
"""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# Event names the Execution API writes for task states; anything else in the audit log is ignored.
TASK_STATE_EVENTS = frozenset(
    {
        "running",
        "deferred",
        "awaiting_input",
        "success",
        "failed",
        "skipped",
        "up_for_retry",
        "up_for_reschedule",
        "upstream_failed",
        "removed",
        "scheduled",
    }
)
PARKED = frozenset({"deferred", "awaiting_input"})
# AWS calls the sandbox's traffic simulator makes on every tick (and the pipeline never makes
# while a metric watch is deferred): they are subtracted from the request log.
SIMULATOR_ACTIONS = frozenset(
    {"PutMetricData", "SetAlarmState", "ListResourceRecordSets", "ListHostedZonesByName"}
)


def ts(value: str | float | datetime | None) -> float | None:
    """An ISO-8601 string, datetime or Unix time as Unix seconds; None stays None."""
    if value is None or isinstance(value, float | int):
        return None if value is None else float(value)
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def is_traffic_write(request: Mapping[str, Any]) -> bool:
    """A served change of the split: Route 53's ChangeResourceRecordSets, or the front door's
    KeyValueStore UpdateKeys (``POST /key-value-stores/{arn}/keys``)."""
    if request["status"] >= 400:
        return False
    if request["service"] == "cloudfront-keyvaluestore":
        return request["action"].startswith("POST /key-value-stores/")
    return route53_action(request["service"], request["action"]) == "ChangeResourceRecordSets"


def api_action(service: str, action: str) -> str:
    """A request log entry's action as AWS names it: Route 53 and the KeyValueStore API are REST,
    so the request log names their calls by method and path."""
    if service == "cloudfront-keyvaluestore":
        return kvs_action(action)
    return route53_action(service, action)


def kvs_action(action: str) -> str:
    """The front door's KeyValueStore calls (``/key-value-stores/{arn}[/keys[/{key}]]``) by name."""
    method, _, path = action.partition(" ")
    # the ARN is logged decoded (``arn:...:key-value-store/<id>``, one slash) or percent-encoded
    match = re.match(r"^/key-value-stores/(?:arn:[^/]+/[^/]+|[^/]+)(/keys)?(/[^/]+)?/?$", path)
    if match is None or (match.group(2) and not match.group(1)):
        return action
    depth = 1 + bool(match.group(1)) + bool(match.group(2))
    names = {
        (1, "GET"): "DescribeKeyValueStore",
        (2, "GET"): "ListKeys",
        (2, "POST"): "UpdateKeys",
        (3, "GET"): "GetKey",
        (3, "PUT"): "PutKey",
        (3, "DELETE"): "DeleteKey",
    }
    return names.get((depth, method), action)


def route53_action(service: str, action: str) -> str:
    """Route 53 is REST-XML, so the request log names its calls by method and path; name them as AWS does."""
    if service != "route53" or " " not in action:
        return action
    method, path = action.split(" ", 1)
    path = path.rstrip("/")
    if path.endswith("/rrset"):
        return "ChangeResourceRecordSets" if method == "POST" else "ListResourceRecordSets"
    if "/change/" in path:
        return "GetChange"
    if path.endswith("/hostedzonesbyname"):
        return "ListHostedZonesByName"
    return action


# --------------------------------------------------------------------------- task states over time
@dataclass(frozen=True)
class Interval:
    task_id: str
    state: str
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return max(self.end - self.start, 0.0)


def state_intervals(
    events: Iterable[Mapping[str, Any]], until: float | None = None
) -> dict[str, list[Interval]]:
    """Per task, the ``running``/``deferred``/``awaiting_input`` spells from the audit log.

    Each spell runs from its event to the task's next state event. A parked spell
    (deferred, awaiting input) therefore includes the resumption's queueing and process
    start up to the next ``running``. A spell still open at the end runs to ``until``.
    """
    by_task: dict[str, list[tuple[float, int, str]]] = defaultdict(list)
    for order, event in enumerate(events):
        name, task_id = event.get("event"), event.get("task_id")
        if task_id and name in TASK_STATE_EVENTS:
            by_task[task_id].append((ts(event["when"]), event.get("event_log_id", order), name))
    spells: dict[str, list[Interval]] = {}
    for task_id, rows in by_task.items():
        rows.sort()
        found = []
        for (start, _, state), following in zip(rows, [*rows[1:], None], strict=True):
            if state not in ("running", *PARKED):
                continue
            end = following[0] if following else until
            if end is not None:
                found.append(Interval(task_id, state, start, end))
        spells[task_id] = found
    return spells


def seconds_in(spells: Mapping[str, Sequence[Interval]], states: Iterable[str]) -> dict[str, float]:
    wanted = set(states)
    return {
        task: round(sum(i.seconds for i in found if i.state in wanted), 3) for task, found in spells.items()
    }


def concurrency_peak(spells: Mapping[str, Sequence[Interval]], state: str = "running") -> int:
    """The most tasks in ``state`` at one moment."""
    edges = sorted(
        (point, delta)
        for found in spells.values()
        for i in found
        if i.state == state
        for point, delta in ((i.start, 1), (i.end, -1))
    )
    peak = current = 0
    for _, delta in edges:
        current += delta
        peak = max(peak, current)
    return peak


# ------------------------------------------------------------------------------- critical path
def upstream_map(tasks: Iterable[Mapping[str, Any]]) -> dict[str, list[str]]:
    upstream: dict[str, list[str]] = defaultdict(list)
    for task in tasks:
        upstream.setdefault(task["task_id"], [])
        for child in task.get("downstream_task_ids") or []:
            upstream[child].append(task["task_id"])
    return dict(upstream)


def critical_path(
    upstream: Mapping[str, Sequence[str]], tis: Mapping[str, Mapping[str, Any]], last: str
) -> list[str]:
    """The chain of tasks that gated ``last``: from it, repeatedly the upstream that finished last."""
    path = [last]
    current = last
    while True:
        ended = [
            (ts(tis[u]["end_date"]), u)
            for u in upstream.get(current, ())
            if u in tis and tis[u].get("end_date")
        ]
        if not ended:
            return path[::-1]
        current = max(ended)[1]
        path.append(current)


# ------------------------------------------------------------------------ 2. orchestration overhead
def configured_waits(timings: Mapping[str, Any], steps: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """The waits a release's config asks for: wait timer, each traffic step's hold, monitoring."""
    waits = {"approval_gate.wait_timer": float(timings["wait_timer_seconds"])}
    for step in steps:
        waits[f"deploy_frontend.shift_traffic_{step['weight']}"] = float(step["hold_seconds"])
    waits["monitoring.watch_metrics"] = float(timings["monitoring_seconds"])
    return waits


def imposed_waits(
    configured: Mapping[str, float], wait_until: float | None, timer_started: float | None
) -> dict[str, float]:
    """The configured waits as the run felt them.

    The wait timer counts from the last approval, so the second approval's resumption and
    ``record_approvals`` run inside its window: only what is left of it when the timer task
    starts held the run up. Holds and monitoring sleep their full length after deferring.
    """
    imposed = dict(configured)
    timer = "approval_gate.wait_timer"
    if timer in imposed and wait_until is not None and timer_started is not None:
        imposed[timer] = round(max(wait_until - timer_started, 0.0), 3)
    return imposed


def approval_waits(hitl: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """Seconds from each human-in-the-loop request to its answer (the approver's time, not Airflow's)."""
    return {
        task: round(ts(d["responded_at"]) - ts(d["created_at"]), 3)
        for task, d in hitl.items()
        if d.get("responded_at") and d.get("created_at")
    }


def overhead(
    run: Mapping[str, Any],
    tis: Mapping[str, Mapping[str, Any]],
    spells: Mapping[str, Sequence[Interval]],
    path: Sequence[str],
    waits: Mapping[str, float],
    approvals: Mapping[str, float],
    emulated: Mapping[str, float],
) -> dict[str, Any]:
    """Wall time of the run less what it was asked to wait, per task on the critical path.

    ``emulated`` are the sandbox's stand-ins for external work (a stack update, an Amplify
    build) on the critical path: reported as such, and subtracted for the ``net`` figure.
    Along the path the wall time is split into: the gaps between a task's gating upstream
    ending and the task's first ``running`` (scheduler, executor, process start), time
    ``running`` (our code and the task process's own start-up: it parses the DAG file),
    time parked beyond the configured wait (triggerer hand-off, polls' own calls, resume),
    and the waits themselves.
    """
    wall = ts(run["end_date"]) - ts(run["start_date"])
    asked = sum(waits.get(t, 0.0) for t in path)
    human = sum(approvals.get(t, 0.0) for t in path)
    emulated_on_path = sum(emulated.get(t, 0.0) for t in path)
    steps = []
    previous_end = ts(run["start_date"])
    for task_id in path:
        ti = tis[task_id]
        start, end = ts(ti.get("start_date")), ts(ti.get("end_date"))
        found = spells.get(task_id, [])
        running = sum(i.seconds for i in found if i.state == "running")
        parked = sum(i.seconds for i in found if i.state in PARKED)
        tries = sum(1 for i in found if i.state == "running") - sum(1 for i in found if i.state in PARKED)
        # the first try's start: a retried task's start_date is its last try's
        first = min((i.start for i in found), default=start)
        gap = (first - previous_end) if first is not None else (end - previous_end if end else 0.0)
        queued = ts(ti.get("queued_when"))
        # A resumed or retried task's queued_when is its last queueing's; only a task that ran once
        # without parking tells how its gap split between the scheduler's decision and the executor.
        if (
            queued is not None
            and first is not None
            and not parked
            and tries == 1
            and previous_end <= queued <= first
        ):
            to_queued, queued_to_running = queued - previous_end, first - queued
        else:
            to_queued = queued_to_running = None
        wait = waits.get(task_id, 0.0) + approvals.get(task_id, 0.0) + emulated.get(task_id, 0.0)
        inside = (end - first) if first is not None and end is not None else 0.0
        steps.append(
            {
                "task_id": task_id,
                "state": ti.get("state"),
                "tries": max(tries, 1),
                "gap": round(gap, 3),
                "to_queued": _round(to_queued),
                "queued_to_running": _round(queued_to_running),
                "running": round(running, 3),
                "parked": round(parked, 3),
                "wait": round(wait, 3),
                # parked beyond the wait: triggerer pick-up, the polls' own calls, requeue and restart
                "handoff": round(max(parked - wait, 0.0), 3) if parked else 0.0,
                # neither running nor parked: the delays between a failed try and its retry
                "retry_delay": round(max(inside - running - parked, 0.0), 3) if tries > 1 else 0.0,
            }
        )
        if end is not None:
            previous_end = end
    overhead_s = wall - asked - human
    count = len(path)
    return {
        "wall_seconds": round(wall, 3),
        "configured_waits_seconds": round(asked, 3),
        "approval_wait_seconds": round(human, 3),
        "emulated_external_seconds": round(emulated_on_path, 3),
        "overhead_seconds": round(overhead_s, 3),
        "net_overhead_seconds": round(overhead_s - emulated_on_path, 3),
        "critical_path_tasks": count,
        "overhead_per_task_seconds": round(overhead_s / count, 3),
        "net_overhead_per_task_seconds": round((overhead_s - emulated_on_path) / count, 3),
        "split": {
            "gaps_between_tasks": round(sum(s["gap"] for s in steps), 3),
            "gap_median_upstream_end_to_queued": median(s["to_queued"] for s in steps),
            "gap_median_queued_to_running": median(s["queued_to_running"] for s in steps),
            "running_median_per_task": median(s["running"] for s in steps),
            "running": round(sum(s["running"] for s in steps), 3),
            "resume_handoffs": round(sum(s["handoff"] for s in steps), 3),
            "retry_delays": round(sum(s["retry_delay"] for s in steps), 3),
            "waits": round(asked + human + emulated_on_path, 3),
            "after_last_task": round(wall - (previous_end - ts(run["start_date"])), 3),
        },
        "critical_path": steps,
    }


# --------------------------------------------------------------------------- 4. worker time
def worker_time(
    run: Mapping[str, Any], spells: Mapping[str, Sequence[Interval]], waits: Mapping[str, float | None]
) -> dict[str, Any]:
    """Worker-seconds ``running`` over the run's wall time, and how each waiting task spent its wait.

    ``waits`` names every task expected to wait, with the seconds it was asked to wait when the
    config says (None for an approval or an external job): such a task must have been parked,
    for at least those seconds. A task asked to wait 0 s has no wait to park; one that parked
    without being expected to is listed too.
    """
    wall = ts(run["end_date"]) - ts(run["start_date"])
    running = seconds_in(spells, ["running"])
    parked = seconds_in(spells, PARKED)
    waiting_tasks = {t for t, found in spells.items() if any(i.state in PARKED for i in found)}
    per_wait = []
    for task_id in sorted(waiting_tasks | {t for t, asked in waits.items() if t in spells and asked != 0}):
        states = sorted({i.state for i in spells[task_id]} - {"running"})
        asked = waits.get(task_id)
        per_wait.append(
            {
                "task_id": task_id,
                "parked_as": states,
                "asked_seconds": asked,
                "parked_seconds": parked.get(task_id, 0.0),
                "running_seconds": running.get(task_id, 0.0),
                # the wait was spent parked (deferred / awaiting input), not in a worker
                "wait_not_running": bool(states) and (asked is None or parked.get(task_id, 0.0) >= asked),
            }
        )
    total = sum(running.values())
    longest = max(
        ((i.seconds, i.task_id) for f in spells.values() for i in f if i.state == "running"),
        default=(0.0, None),
    )
    return {
        "wall_seconds": round(wall, 3),
        "worker_seconds_running": round(total, 3),
        "worker_fraction": round(total / wall, 4) if wall else None,
        "parked_seconds": round(sum(parked.values()), 3),
        "peak_running_tasks": concurrency_peak(spells),
        "longest_running_spell": {"task_id": longest[1], "seconds": round(longest[0], 3)},
        "every_wait_parked": all(w["wait_not_running"] for w in per_wait),
        "waits": per_wait,
        "running_by_task": dict(sorted(running.items(), key=lambda kv: -kv[1])),
    }


def marginal_worker_time(
    long: Mapping[str, Any], short: Sequence[Mapping[str, Any]]
) -> dict[str, Any] | None:
    """What longer waits cost in worker time: the waiting tasks' extra ``running`` per extra second asked.

    ``long`` and each of ``short`` are ``worker_time`` results of the same release with long
    and with short configured waits. Only the tasks that wait (timer, holds, monitoring) are
    compared, so the rest of the release, whose running time follows the machine's load,
    does not blur the figure; near 0 means a longer wait holds no worker for longer.
    """
    asked_short: dict[str, list[float]] = defaultdict(list)
    running_short: dict[str, list[float]] = defaultdict(list)
    for result in short:
        for w in result["waits"]:
            if w["asked_seconds"] is not None:
                asked_short[w["task_id"]].append(w["asked_seconds"])
                running_short[w["task_id"]].append(w["running_seconds"])
    tasks = []
    for w in long["waits"]:
        task_id = w["task_id"]
        if w["asked_seconds"] is None or task_id not in asked_short:
            continue
        tasks.append(
            {
                "task_id": task_id,
                "extra_asked_seconds": round(w["asked_seconds"] - median(asked_short[task_id]), 3),
                "extra_running_seconds": round(w["running_seconds"] - median(running_short[task_id]), 3),
            }
        )
    extra_asked = sum(t["extra_asked_seconds"] for t in tasks)
    if not tasks or extra_asked <= 0:
        return None
    extra_running = sum(t["extra_running_seconds"] for t in tasks)
    return {
        "extra_wait_seconds": round(extra_asked, 3),
        "extra_worker_seconds": round(extra_running, 3),
        "worker_seconds_per_extra_wait_second": round(extra_running / extra_asked, 4),
        "tasks": tasks,
    }


# -------------------------------------------------------------------------- 3. time to restore
def restore(
    fault_at: float,
    poll_interval: float,
    requests: Iterable[Mapping[str, Any]],
    ledger: Mapping[str, Any],
    spells: Mapping[str, Sequence[Interval]],
    watched: str,
    stable_colour: str | None = None,
) -> dict[str, Any]:
    """From the fault's start to the router back on the stable colour, and to the rollback verified.

    The router's moment is the first write of the split the sandbox served after the fault
    (:func:`is_traffic_write`: the front door's KeyValueStore ``UpdateKeys``, or Route 53's
    ``ChangeResourceRecordSets``; the traffic step's own write came before it; the key
    ``restore_traffic_running_to_route53_change`` keeps its name for older results); the verification's is the
    ``rollback.verify`` section's ``verified_at``. The chain between them is read from the
    watched step's verdicts and the task events.
    """
    changes = sorted(r["time"] for r in requests if is_traffic_write(r) and r["time"] >= fault_at)
    traffic_at = changes[0] if changes else None
    verify = ledger.get("rollback.verify") or {}
    verified_at = ts(verify.get("verified_at"))
    breach_at = None
    for verdict in _verdicts(ledger, watched):
        end = ts(verdict["sample"]["end"])
        if verdict["outcome"] == "breach" and end is not None and end + 1 >= fault_at:
            breach_at = end
            break

    def first(task_id: str, state: str, after: float) -> float | None:
        times = [i.start for i in spells.get(task_id, []) if i.state == state and i.start >= after]
        return min(times) if times else None

    def ended(task_id: str) -> float | None:
        found = spells.get(task_id, [])
        return max(i.end for i in found) if found else None

    plan_running = first("rollback.plan", "running", fault_at)
    restore_running = first("rollback.restore_traffic", "running", fault_at)
    restored_by_watch = ts((_watch_record(ledger, watched).get("traffic_restored") or {}).get("at"))
    chain = {
        "fault_to_breach_poll": _delta(fault_at, breach_at),
        "breach_poll_to_traffic_restored_by_the_watch": _delta(breach_at, restored_by_watch),
        "breach_poll_to_step_failed": _delta(breach_at, ended(watched)),
        "step_failed_to_rollback_plan_running": _delta(ended(watched), plan_running),
        "plan_running_to_restore_traffic_running": _delta(plan_running, restore_running),
        "restore_traffic_running_to_route53_change": _delta(restore_running, traffic_at),
    }
    to_traffic, to_verified = _delta(fault_at, traffic_at), _delta(fault_at, verified_at)
    rollback = ledger.get("rollback") or {}
    # The API canary's alias: back on the previous version in the watch's own restore (one
    # UpdateAlias), against the stack's restore by CloudFormation, which ends rollback.stack.
    restored_change = (_watch_record(ledger, watched).get("traffic_restored") or {}).get("change") or {}
    api_at = ts((restored_change.get("api") or {}).get("at"))
    stack_at = ts((ledger.get("rollback.stack") or {}).get("finished_at"))
    return {
        "watched_task": watched,
        "poll_interval_seconds": poll_interval,
        "fault_to_traffic_restored_seconds": to_traffic,
        "fault_to_api_alias_restored_seconds": _delta(fault_at, api_at),
        "fault_to_stack_restored_seconds": _delta(fault_at, stack_at),
        "fault_to_rollback_verified_seconds": to_verified,
        "traffic_restored_in_polls": round(to_traffic / poll_interval, 2) if to_traffic is not None else None,
        "verified_in_polls": round(to_verified / poll_interval, 2) if to_verified is not None else None,
        "chain": chain,
        "rollback_status": rollback.get("status"),
        "verified": verify.get("verified"),
        "stable_colour": stable_colour or rollback.get("stable_colour"),
        "undone": rollback.get("undone"),
        "restore_stack_running_seconds": round(
            sum(i.seconds for i in spells.get("rollback.restore_stack", []) if i.state == "running"), 3
        ),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _delta(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else round(end - start, 3)


def _watch_record(ledger: Mapping[str, Any], task_id: str) -> Mapping[str, Any]:
    """What the deployment record holds for a watched task: its step, or the monitoring section."""
    if task_id.startswith("deploy_frontend.shift_traffic_"):
        weight = task_id.rsplit("_", 1)[1]
        return ((ledger.get("frontend") or {}).get("steps") or {}).get(weight) or {}
    if task_id == "monitoring.watch_metrics":
        return ledger.get("monitoring") or {}
    return {}


def _verdicts(ledger: Mapping[str, Any], task_id: str) -> list[dict[str, Any]]:
    """The metric verdicts the deployment record holds for a watched task."""
    return list((_watch_record(ledger, task_id).get("watch") or {}).get("verdicts") or [])


# ------------------------------------------------------------------------------- 5. AWS calls
def api_calls(
    requests: Sequence[Mapping[str, Any]],
    spells: Mapping[str, Sequence[Interval]],
    ledger: Mapping[str, Any],
    poll_interval: float,
) -> dict[str, Any]:
    """AWS calls per minute while each metric watch was deferred, the simulator's calls excluded."""
    windows = []
    for task_id, found in sorted(spells.items()):
        if not (
            task_id.startswith("deploy_frontend.shift_traffic_") or task_id == "monitoring.watch_metrics"
        ):
            continue
        for spell in found:
            if spell.state != "deferred":
                continue
            calls: dict[str, int] = defaultdict(int)
            for r in requests:
                action = api_action(r["service"], r["action"])
                if spell.start <= r["time"] < spell.end and action not in SIMULATOR_ACTIONS:
                    calls[action] += 1
            polls = len(_verdicts(ledger, task_id))
            minutes = spell.seconds / 60
            windows.append(
                {
                    "task_id": task_id,
                    "seconds": round(spell.seconds, 3),
                    "polls": polls,
                    "calls": dict(calls),
                    "calls_per_minute": round(sum(calls.values()) / minutes, 2) if minutes else None,
                    "get_metric_data_per_poll": round(calls.get("GetMetricData", 0) / polls, 2)
                    if polls
                    else None,
                }
            )
    seconds = sum(w["seconds"] for w in windows)
    totals: dict[str, int] = defaultdict(int)
    for w in windows:
        for action, count in w["calls"].items():
            totals[action] += count
    polls = sum(w["polls"] for w in windows)
    minutes = seconds / 60 if seconds else None
    return {
        "poll_interval_seconds": poll_interval,
        "watched_seconds": round(seconds, 3),
        "polls": polls,
        "calls": dict(sorted(totals.items())),
        "calls_per_minute": round(sum(totals.values()) / minutes, 2) if minutes else None,
        "get_metric_data_per_minute": round(totals.get("GetMetricData", 0) / minutes, 2) if minutes else None,
        "get_metric_data_per_poll": round(totals.get("GetMetricData", 0) / polls, 3) if polls else None,
        "calls_per_poll": round(sum(totals.values()) / polls, 3) if polls else None,
        "expected_polls_per_minute": round(60 / poll_interval, 2),
        "windows": windows,
    }


def median(values: Iterable[float | None]) -> float | None:
    found = [v for v in values if v is not None]
    return round(statistics.median(found), 3) if found else None


# ------------------------------------------------------------------- 6. Airflow's own floor
# The task runner's log lines that bound the parts of a task process (Airflow 3.3's task_runner).
PARSED_MARK = "Worker startup parse complete"
PRE_EXECUTE_END_MARK = "::endgroup::"
EXECUTE_END_MARKS = (
    "Done. Returned value",
    "::group::Post Execute",
    "Pausing task as DEFERRED",
    "Pausing task as AWAITING_INPUT",
)
SEGMENTS = ("start_to_parsed", "before_execute", "execute", "after_execute")


def release_shape(
    path: Sequence[str], spells: Mapping[str, Sequence[Interval]], defer_seconds: float
) -> dict[str, Any]:
    """The shape of a release's critical path for the floor DAG: per task, how it parked and how often.

    A task that parked is ``deferred`` or ``awaiting_input`` (its first parked state), ``parks``
    times (its parked spells of that state); every other task ``run``s once.
    """
    tasks = []
    for task_id in path:
        parked = [i.state for i in spells.get(task_id, []) if i.state in PARKED]
        kind = parked[0] if parked else "run"
        tasks.append({"kind": kind, "parks": parked.count(kind), "mirrors": task_id})
    return {"tasks": tasks, "defer_seconds": defer_seconds}


def floor_waits(shape: Mapping[str, Any], task_ids: Sequence[str]) -> dict[str, float]:
    """The waits the floor DAG asks for: each deferral's trivial wait, by the floor's task id."""
    seconds = float(shape["defer_seconds"])
    return {
        task_id: seconds * spec["parks"]
        for task_id, spec in zip(task_ids, shape["tasks"], strict=True)
        if spec["kind"] == "deferred"
    }


def resumptions(
    steps: Sequence[Mapping[str, Any]], spells: Mapping[str, Sequence[Interval]]
) -> dict[str, Any]:
    """What each resumption of a parked task cost, by how it parked.

    ``steps`` are :func:`overhead`'s ``critical_path``. A resumption costs its hand-off (parked
    beyond the wait: the triggerer or the answer, the scheduler's requeue, the executor, the new
    process up to its ``running``) and the resumed process's own ``running``.
    """
    found: dict[str, dict[str, float]] = {}
    for step in steps:
        spells_of = sorted(spells.get(step["task_id"], []), key=lambda i: i.start)
        parked = [i for i in spells_of if i.state in PARKED]
        if not parked:
            continue
        kind = parked[0].state
        resumed = [
            b.seconds
            for a, b in zip(spells_of, spells_of[1:], strict=False)
            if a.state in PARKED and b.state == "running"
        ]
        slot = found.setdefault(
            kind, {"resumptions": 0, "handoff_seconds": 0.0, "resumed_running_seconds": 0.0}
        )
        slot["resumptions"] += len(parked)
        slot["handoff_seconds"] += step["handoff"]
        slot["resumed_running_seconds"] += sum(resumed)
    for slot in found.values():
        n = slot["resumptions"]
        slot["handoff_seconds"] = round(slot["handoff_seconds"], 3)
        slot["resumed_running_seconds"] = round(slot["resumed_running_seconds"], 3)
        slot["handoff_per_resumption_seconds"] = round(slot["handoff_seconds"] / n, 3)
        slot["cost_per_resumption_seconds"] = round(
            (slot["handoff_seconds"] + slot["resumed_running_seconds"]) / n, 3
        )
    return found


def process_segments(
    entries: Sequence[Mapping[str, Any]], spells: Sequence[Interval]
) -> list[dict[str, Any]]:
    """Each task process of one task, split by its log's markers within its ``running`` spell.

    ``start_to_parsed``: from ``running`` (the Execution API's) to "Worker startup parse complete"
    (the startup message, the DAG file's parse; ``parse_ms`` is the parse alone, as the task
    runner measured it); ``before_execute``: to the first "::endgroup::" (the context, templates,
    ``pre_execute`` hooks); ``execute``: to "Done. Returned value", "::group::Post Execute" or
    "Pausing task as ..." (the operator's own work); ``after_execute``: to the next state the
    task reported (XCom push, post-execute, listeners, the state sent).
    """
    marks = sorted(
        (ts(e["timestamp"]), str(e.get("event", "")), e) for e in entries if e.get("timestamp") is not None
    )
    running = [i for i in spells if i.state == "running"]
    found = []
    for at, event, entry in marks:
        if not event.startswith(PARSED_MARK):
            continue
        spell = next((i for i in running if i.start <= at <= i.end), None)
        if spell is None:
            continue
        pre_end = next((t for t, e, _ in marks if t >= at and e.startswith(PRE_EXECUTE_END_MARK)), None)
        done = None
        if pre_end is not None:
            done = next(
                (t for t, e, _ in marks if pre_end <= t <= spell.end and e.startswith(EXECUTE_END_MARKS)),
                None,
            )
        if pre_end is None or done is None or pre_end > spell.end:
            continue
        found.append(
            {
                "start_to_parsed": round(at - spell.start, 3),
                "before_execute": round(pre_end - at, 3),
                "execute": round(done - pre_end, 3),
                "after_execute": round(spell.end - done, 3),
                "parse_ms": entry.get("dag_file_parse_ms"),
            }
        )
    return found


def path_segments(
    path: Sequence[str],
    logs: Mapping[str, Sequence[Mapping[str, Any]]],
    spells: Mapping[str, Sequence[Interval]],
) -> dict[str, Any]:
    """The parts of every task process along the critical path, from the task logs: per task, totals
    along the path, and the median per process."""
    per_task = []
    processes = []
    for task_id in path:
        found = process_segments(logs.get(task_id) or [], spells.get(task_id, []))
        processes.extend(found)
        row: dict[str, Any] = {"task_id": task_id, "processes": len(found)}
        for name in SEGMENTS:
            row[name] = round(sum(p[name] for p in found), 3)
        row["parse_ms"] = median(p["parse_ms"] for p in found)
        per_task.append(row)
    running = sum(1 for t in path for i in spells.get(t, []) if i.state == "running")
    return {
        "processes": len(processes),
        "running_spells": running,
        "totals": {name: round(sum(p[name] for p in processes), 3) for name in SEGMENTS},
        "median_per_process": {name: median(p[name] for p in processes) for name in SEGMENTS},
        "parse_ms_median": median(p["parse_ms"] for p in processes),
        "per_task": per_task,
    }


def _side(result: Mapping[str, Any]) -> dict[str, Any]:
    o = result["overhead"]
    return {
        "wall_seconds": o["wall_seconds"],
        "waits_seconds": o["split"]["waits"],
        "overhead_seconds": o["overhead_seconds"],
        "net_overhead_seconds": o["net_overhead_seconds"],
        "critical_path_tasks": o["critical_path_tasks"],
        "overhead_per_task_seconds": o["overhead_per_task_seconds"],
        "net_overhead_per_task_seconds": o["net_overhead_per_task_seconds"],
        "running_median_per_task": o["split"]["running_median_per_task"],
        "gap_median_upstream_end_to_queued": o["split"]["gap_median_upstream_end_to_queued"],
        "gap_median_queued_to_running": o["split"]["gap_median_queued_to_running"],
        "resumptions": result.get("resumptions") or {},
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def floor_comparison(
    release: Mapping[str, Any], shaped: Mapping[str, Any] | None, chain: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The release's overhead against Airflow's floor for its shape and for a plain chain.

    Each argument holds an ``overhead`` (:func:`overhead`), ``resumptions`` (:func:`resumptions`)
    and, for the release and the shaped floor, ``segments`` (:func:`path_segments`). The ratios
    are the release's overhead over each floor's (the floor asks no external work, so its
    overhead is its net overhead). ``ours`` splits the release's net overhead beyond the shaped
    floor's into the parts both were measured in, largest first.
    """
    sides = {"release": _side(release)}
    for name, found in (("shaped_floor", shaped), ("chain_floor", chain)):
        if found:
            sides[name] = _side(found)
    rel = sides["release"]
    result: dict[str, Any] = {**sides}
    for name in ("shaped_floor", "chain_floor"):
        if name in sides:
            floor = sides[name]
            result[f"ratio_to_{name}"] = _ratio(rel["overhead_seconds"], floor["overhead_seconds"])
            result[f"net_ratio_to_{name}"] = _ratio(rel["net_overhead_seconds"], floor["overhead_seconds"])
            result[f"per_task_ratio_to_{name}"] = _ratio(
                rel["overhead_per_task_seconds"], floor["overhead_per_task_seconds"]
            )
    if "shaped_floor" in sides and "chain_floor" in sides:
        shaped_s, chain_s = sides["shaped_floor"], sides["chain_floor"]
        parks = sum(r["resumptions"] for r in shaped_s["resumptions"].values())
        result["floor_cost_per_parked_wait_seconds"] = (
            round((shaped_s["overhead_seconds"] - chain_s["overhead_seconds"]) / parks, 3) if parks else None
        )
    if shaped and release.get("segments") and shaped.get("segments"):
        result["ours"] = ours_split(release, shaped)
    return result


def ours_split(release: Mapping[str, Any], floor: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The release's net overhead beyond the floor's, part by part, largest first."""
    rel_o, floor_o = release["overhead"]["split"], floor["overhead"]["split"]
    rel_s, floor_s = release["segments"]["totals"], floor["segments"]["totals"]
    parts = {
        "gaps between tasks (scheduler, executor)": (
            rel_o["gaps_between_tasks"],
            floor_o["gaps_between_tasks"],
        ),
        "resume hand-offs beyond the waits": (rel_o["resume_handoffs"], floor_o["resume_handoffs"]),
        "retry delays": (rel_o["retry_delays"], floor_o["retry_delays"]),
        "after the last task": (rel_o["after_last_task"], floor_o["after_last_task"]),
    }
    labels = {
        "start_to_parsed": "task start to DAG parsed",
        "before_execute": "before execute (context, pre_execute: the gate proof)",
        "execute": "execute (our work: config, run context, record, hooks, clients, AWS)",
        "after_execute": "after execute (XCom, post-execute, the state sent)",
    }
    for key, label in labels.items():
        parts[label] = (rel_s[key], floor_s[key])
    # running time the logs did not bound (a process whose markers were missing)
    rel_unsplit = rel_o["running"] - sum(rel_s.values())
    floor_unsplit = floor_o["running"] - sum(floor_s.values())
    parts["running, not bounded by log markers"] = (rel_unsplit, floor_unsplit)
    rows = [
        {
            "part": label,
            "release_seconds": round(r, 3),
            "floor_seconds": round(f, 3),
            "ours_seconds": round(r - f, 3),
        }
        for label, (r, f) in parts.items()
    ]
    return sorted(rows, key=lambda row: -row["ours_seconds"])


def step_medians(runs: Sequence[Mapping[str, float]]) -> dict[str, Any]:
    """Per step (in the first run's order), the median of its seconds over ``runs``, and their sum."""
    steps = list(runs[0]) if runs else []
    medians = {step: median(r.get(step) for r in runs) for step in steps}
    return {
        "runs": len(runs),
        "median_seconds": medians,
        "total_median_seconds": round(sum(v for v in medians.values() if v is not None), 3),
        "each_run": [dict(r) for r in runs],
    }
