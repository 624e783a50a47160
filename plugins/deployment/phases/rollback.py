"""Phase 10, ``rollback``: undo what a failed release changed, verify, page.

Wiring (in the DAG): every task of phases 3-8 is upstream of :func:`rollback_group`'s
first task ``rollback.plan`` (trigger rule ``one_failed``, so it starts on the first
failure; a failure in phase 1 or 2 reaches it as ``upstream_failed`` and the plan then
finds nothing changed). When nothing was changed, ``plan`` skips and so does the whole
group: nothing is touched and nobody is paged. ``record_outcome``
(:mod:`deployment.phases.outcome`) then ends the run.

The same step tasks serve the manual ``rollback_production`` DAG, whose first task
(:mod:`deployment.phases.manual_rollback`) writes the ``rollback.plan`` section from the chosen
backup instead of this run's record.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import TaskGroup, TriggerRule, get_current_context

from deployment.gate.proof import prove_rollback_requester
from deployment.rollback import notices
from deployment.rollback.notices import rolled_back_version, summary
from deployment.rollback.ownership import refuse_foreign_production
from deployment.run_context import failed_release_tasks, run_config, run_ledger, task_states
from deployment.tasks import task

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig
    from deployment.ledger import Ledger


GROUP_ID = "rollback"
# Every rollback task is safe to rerun in any state, so a lost worker, scheduler or API server is
# simply retried, with backoff (5, 10, 20, 40 s) long enough to outlast a component's restart.
STEP_RETRIES = {"retries": 4, "retry_delay": timedelta(seconds=5), "retry_exponential_backoff": 2.0}


# ---------------------------------------------------------------------- helpers
def _step(section: str, action):
    """Run ``action(cfg, ledger, plan, context)`` and record its result as ``rollback.<section>``."""
    from deployment.ledger import now_iso

    context = get_current_context()
    cfg = run_config(context)
    ledger = run_ledger(cfg, context)
    plan = ledger.read("rollback.plan")
    if plan is None:
        raise RuntimeError(f"{ledger.uri('rollback.plan')} is missing: the plan task did not record one")
    started = now_iso()
    try:
        result = action(cfg, ledger, plan, context)
    except Exception as err:
        failure = {
            "status": "failed",
            "started_at": started,
            "failed_at": now_iso(),
            "error": str(err)[:2000],
        }
        ledger.write(f"rollback.{section}", failure)
        raise
    ledger.write(f"rollback.{section}", {"started_at": started, "finished_at": now_iso(), **result})
    return result


# ------------------------------------------------------------------------ tasks
@task(task_id="plan", trigger_rule=TriggerRule.ONE_FAILED, **STEP_RETRIES)
def plan_rollback() -> dict[str, Any]:
    """Decide from the record and from what is live now what to undo; skip the group when nothing changed.

    Planned anew every time it runs, for the current attempt: a second failure after a
    rerun from ``validate_infrastructure`` is undone from the world as it is, not from
    what the first rollback found.
    """
    from airflow.sdk.exceptions import AirflowSkipException

    from deployment.guards import current_attempt
    from deployment.ledger import now_iso
    from deployment.rollback.plan import live_differences, plan_from_record

    context = get_current_context()
    cfg = run_config(context)
    ledger = run_ledger(cfg, context)
    record = ledger.record()
    attempt = current_attempt(ledger)
    previous = record.get("rollback.plan") or {}
    backup = record.get("backup") or {}
    live = live_differences(cfg, backup) if backup else None
    refuse_foreign_production(cfg, ledger, record, live, attempt)
    plan = plan_from_record(cfg, record, live)
    plan["attempt"] = attempt
    plan["failed_tasks"] = failed_release_tasks(task_states(context))
    same_attempt = int(previous.get("attempt") or 1) == attempt and previous.get("needed") is not None
    plan["started_at"] = previous["started_at"] if same_attempt else now_iso()
    plan["rolled_back_version"] = ledger.version
    ledger.write("rollback.plan", plan)
    if not plan["needed"]:
        ledger.write(
            "rollback",
            {
                "needed": False,
                "status": "not_needed",
                "reasons": plan["reasons"],
                "attempt": attempt,
                "failed_tasks": plan["failed_tasks"],
                "decided_at": now_iso(),
            },
        )
        raise AirflowSkipException("; ".join(plan["reasons"]))
    return {"undo": plan["undo"], "stable_colour": plan["stable_colour"], "attempt": attempt}


@task(task_id="last_resort_traffic", trigger_rule=TriggerRule.ALL_FAILED, **STEP_RETRIES)
def last_resort_task() -> dict[str, Any]:
    """No plan could be made: all traffic back on the colour live before the release; page on-call."""
    from deployment.backup.restore_point import backup_version, dynamodb_backups
    from deployment.ledger import now_iso
    from deployment.notifications.base import send_once
    from deployment.rollback.plan import last_resort_colour
    from deployment.rollback.steps import restore_traffic, summarize
    from deployment.traffic import router_for
    from deployment.traffic.api_alias import rollback_versions

    context = get_current_context()
    cfg = run_config(context)
    ledger = run_ledger(cfg, context)
    record = ledger.record()
    try:
        live = router_for(cfg).live_colour()
    except Exception:  # noqa: BLE001 - the record and the backup may still name the colour
        live = None
    colour = last_resort_colour(record, live)
    if colour is None:
        raise RuntimeError(
            "neither the record, the backup nor the router names the colour live before "
            "the release: put traffic back by hand"
        )
    backup = record.get("backup") or {}
    api = rollback_versions(cfg, backup, colour, (record.get("infrastructure") or {}).get("api"))
    traffic = restore_traffic(cfg, colour, api=api)
    plan = {
        "needed": True,
        "undo": {"traffic": True, "stack": True, "frontend": True},
        "stable_colour": colour,
        "previous_version": backup_version(cfg, backup) if backup else None,
        "dynamodb_backups": dynamodb_backups(backup),
        "reasons": [
            "the rollback plan could not be made: traffic put back as a last resort; the "
            "stack and the idle branch must be checked by hand"
        ],
    }
    failed = failed_release_tasks(task_states(context))
    section = {
        **summarize(plan, {"traffic": {"status": "done", **traffic}}, failed),
        "attempt": _attempt(ledger),
        "last_resort": {"colour": colour, **traffic},
        "failed_checks": ["plan"],
        "finished_at": now_iso(),
    }
    ledger.write("rollback", section)
    values = {
        "cfg": cfg,
        "summary": section,
        "version": ledger.version,
        "run_id": context["run_id"],
        "reason": None,
        "url": _run_url(cfg, context),
    }
    for channel, send in (
        ("page_oncall_slack", notices.slack_notice),
        ("incident_email", notices.email_notice),
    ):
        send_once(
            ledger,
            f"rollback.notice.a{section['attempt']}.{channel}.last_resort",
            lambda send=send: send(cfg, values),
        )
    return {"colour": colour, "changed": traffic["changed"]}


def _attempt(ledger: Ledger) -> int:
    from deployment.guards import current_attempt

    return current_attempt(ledger)


def _not_needed(what: str) -> dict[str, Any]:
    return {"status": "not_needed", "detail": f"the record shows no change to {what}"}


@task(task_id="restore_traffic", pre_execute=prove_rollback_requester, **STEP_RETRIES)
def restore_traffic_task() -> dict[str, Any]:
    """All traffic back to the stable colour: the first, fastest step."""

    def action(cfg, ledger, plan, context):
        from deployment.rollback.steps import restore_traffic

        if not plan["undo"]["traffic"]:
            return _not_needed("traffic (Route 53 untouched)")
        return {"status": "done", **restore_traffic(cfg, plan["stable_colour"], api=plan.get("api"))}

    return _step("traffic", action)


@task(
    task_id="restore_stack",
    trigger_rule=TriggerRule.ALL_DONE_MIN_ONE_SUCCESS,
    pre_execute=prove_rollback_requester,
    **STEP_RETRIES,
)
def restore_stack_task() -> dict[str, Any]:
    """The stack back to the backed-up template and parameters (cancel / continue / change set)."""

    def action(cfg, ledger, plan, context):
        from deployment.rollback.stack import restore_stack

        if not plan["undo"]["stack"]:
            return _not_needed("the stack")
        restored = restore_stack(
            cfg, plan["backup"], context["run_id"], attempt=int(plan.get("attempt") or 1), ledger=ledger
        )
        # ``status`` is the step's (summarize() reads it); the stack's own is kept as ``stack_status``.
        return {**restored, "stack_status": restored["status"], "status": "done"}

    return _step("stack", action)


@task(
    task_id="restore_frontend",
    trigger_rule=TriggerRule.ALL_DONE_MIN_ONE_SUCCESS,
    pre_execute=prove_rollback_requester,
    **STEP_RETRIES,
)
def restore_frontend_task() -> dict[str, Any]:
    """The idle Amplify branch's variables back, a build still running on it stopped."""

    def action(cfg, ledger, plan, context):
        from deployment.rollback.steps import restore_frontend

        if not plan["undo"]["frontend"]:
            return _not_needed("the frontend")
        return {
            "status": "done",
            **restore_frontend(cfg, plan["backup"], plan["idle_colour"], plan.get("stable_colour")),
        }

    return _step("frontend", action)


@task(task_id="verify", trigger_rule=TriggerRule.ALL_DONE_MIN_ONE_SUCCESS, **STEP_RETRIES)
def verify_task() -> dict[str, Any]:
    """Stack equals the backup, smoke tests pass on the stable colour, metrics healthy."""

    def action(cfg, ledger, plan, context):
        from datetime import datetime

        from deployment.rollback.steps import verify
        from deployment.run_contract import emergency_flags

        traffic = ledger.read("rollback.traffic") or {}
        since = datetime.fromisoformat(traffic["restored_at"]) if traffic.get("restored_at") else None
        return {
            "status": "done",
            **verify(
                cfg,
                plan["backup"],
                plan.get("stable_colour"),
                check_stack=plan["undo"]["stack"],
                since=since,
                ignore_alarms=emergency_flags(context["params"])["ignore_alarms"],
                api=plan.get("api"),
            ),
        }

    result = _step("verify", action)
    if not result["verified"]:
        raise RuntimeError(f"rollback not verified: {', '.join(result['failed_checks'])} failed")
    return result


@task(task_id="record_rollback", trigger_rule=TriggerRule.ALL_DONE_MIN_ONE_SUCCESS, **STEP_RETRIES)
def record_rollback_task() -> dict[str, Any]:
    """Write the ``rollback`` section: what failed, when, what was undone, verification."""
    from deployment.ledger import now_iso

    context = get_current_context()
    cfg = run_config(context)
    ledger = run_ledger(cfg, context)
    section = {
        **summary(ledger),
        "finished_at": now_iso(),
        "started_at": (ledger.read("rollback.plan") or {}).get("started_at"),
    }
    ledger.write("rollback", section)
    return {"status": section["status"], "verified": section["verified"]}


def _urgent(task_id: str, send):
    @task(
        task_id=task_id,
        trigger_rule=TriggerRule.ALL_DONE_MIN_ONE_SUCCESS,
        retries=3,
        retry_delay=timedelta(seconds=5),
        doc_md=send.__doc__,
    )
    def _notice() -> dict[str, Any]:
        from deployment.notifications.base import send_once

        context = get_current_context()
        cfg = run_config(context)
        ledger = run_ledger(cfg, context)
        current = summary(ledger)
        plan = ledger.read("rollback.plan") or {}
        values = {
            "cfg": cfg,
            "summary": current,
            "version": rolled_back_version(ledger, plan),
            "run_id": context["run_id"],
            "reason": plan.get("reason"),
            "url": _run_url(cfg, context),
        }
        # Keyed by attempt and verification state: a second attempt's rollback is announced
        # too, and a rerun after a fix sends the news once more.
        state = "verified" if current["verified"] else "unverified"
        key = f"rollback.notice.a{plan.get('attempt') or 1}.{task_id}.{state}"
        return send_once(ledger, key, lambda: send(cfg, values))

    return _notice()


def _run_url(cfg: DeploymentConfig, context: Any) -> str:
    from deployment.notifications.base import run_url

    return run_url(cfg, context["ti"].dag_id, context["run_id"])


def rollback_steps(plan_task, last_resort=None) -> list:
    """Wire the restore, verify, record and notice tasks after ``plan_task``; returns the leaves."""
    traffic = restore_traffic_task()
    stack = restore_stack_task()
    frontend = restore_frontend_task()
    check = verify_task()
    record = record_rollback_task()
    from deployment.notifications.pagerduty import rollback_page

    urgent = [
        _urgent("page_oncall_slack", notices.slack_notice),
        _urgent("incident_email", notices.email_notice),
        _urgent("statuspage_incident", notices.statuspage_notice),
        _urgent("page_oncall_pagerduty", rollback_page),
    ]
    plan_task >> traffic
    if last_resort is not None:
        plan_task >> last_resort
    [plan_task, traffic] >> stack
    [plan_task, traffic] >> frontend
    [plan_task, stack, frontend] >> check
    [plan_task, check] >> record
    for notice in urgent:
        [plan_task, record] >> notice
    return urgent


def group_doc(config: DeploymentConfig) -> str:
    """The group's doc in the UI, with the configuration's numbers."""
    from deployment.docs import duration

    return (
        "**Phase 10, rollback:** starts on the first failure in backup through monitoring and undoes "
        "what the release changed: all traffic back on the stable colour, stack "
        f"`{config.stack.name}` back to the backup (waited for up to "
        f"{duration(config.timings.stack_timeout_seconds)}), the idle Amplify branch's variables "
        f"restored. Then it verifies (the stack equals the backup, the {len(config.smoke_tests.checks)} "
        "smoke checks pass on the stable colour, the metrics are healthy) and pages on-call. When "
        "nothing was changed it skips and pages nobody.\n\n"
        f"Each step is retried {STEP_RETRIES['retries']} times. A task still failed means production may "
        "be only partly restored: read `rollback` in the record, clear the failed task (every step is "
        "safe to rerun) or trigger `rollback_production`. The run ends failed either way."
    )


def rollback_group(config: DeploymentConfig) -> TaskGroup:
    """The ``rollback`` group; wire ``[every task of phases 3-8] >> group.children["rollback.plan"]``."""
    with TaskGroup(
        group_id=GROUP_ID,
        tooltip="Undo what a failed release changed, verify, page",
        doc_md=group_doc(config),
    ) as tg:
        plan = plan_rollback()
        rollback_steps(plan, last_resort_task())
    return tg
