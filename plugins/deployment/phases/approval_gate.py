"""Phase 2, the approval gate: announced, two approvals, recorded, the wait timer, re-verified.

``announce_start`` → ``first_approval`` → ``second_approval`` → ``record_approvals`` →
``wait_timer`` → ``verify_gate``. ``announce_start`` posts "deployment started" with the
plan (and any emergency flags) to the team channel. Each request tells its approvers
(Slack mention, email, Required Actions link). The wait timer is deferrable (no worker
slot while it waits; a window already over ends at once) and ends at the last approval plus
``timings.wait_timer_seconds``; marking it failed cancels the release before anything has
changed. ``verify_gate`` re-checks the answers read from Airflow just before the first change,
so no hand-marked task or hand-written XCom opens the gate, then opens the release's scheduled
maintenance on the status page (in progress; its id in the record, so a rerun reuses it;
``notify`` or the rollback completes it). ``verify_gate`` is the visible summary, not the lock:
every task that changes production proves the gate again itself (``deployment.gate.proof``).
Beside the requests, ``remind_approvers`` (deferred: no worker slot, no task process per look)
reminds whoever a request still waits for once half the gate's time has gone, and ends as soon
as the gate is decided; it is off the gate's path, and the run's outcome waits for it.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import TaskGroup, TriggerRule, chain, get_current_context
from airflow.sdk.bases.notifier import BaseNotifier

from deployment.gate.approval import ReleaseApprovalOperator
from deployment.gate.approvers import APPROVAL_GROUP_ID, APPROVAL_TASKS
from deployment.gate.proof import prove_gate
from deployment.gate.timers import ApprovalReminderOperator, WaitTimerSensor
from deployment.tasks import task

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig

GROUP_ID = APPROVAL_GROUP_ID
# The gate's exit: the first change follows it, never the reminder beside the requests.
GATE_TASK_ID = f"{GROUP_ID}.verify_gate"
# The task log: the Task SDK's RuntimeTaskInstance (context["ti"]) has no ``log``.
log = logging.getLogger(__name__)
NOTICE_RETRIES = 3


class ApprovalNeeded(BaseNotifier):
    """Called by the HITL operator once its request exists: tells the assigned approvers."""

    def notify(self, context: Any) -> None:
        from deployment.gate.approvers import SECTION
        from deployment.notifications.messages import approval_needed
        from deployment.run_context import release

        rel = release(context)
        op, ti = context["task"], context["ti"]
        entry = (rel.ledger.read(SECTION) or {}).get(op.task_id) or {}
        link = op.generate_link_to_ui_from_context(
            context=context, base_url=rel.cfg.notifications.ui_base_url
        )
        try:
            approval_needed(
                rel.cfg,
                rel.ledger,
                version=rel.version,
                task_id=op.task_id,
                key=f"try{ti.try_number}",
                assigned=[u["name"] for u in op.assigned_users],  # usernames (ids are the auth manager's)
                deadline=entry.get("deadline", "unknown"),
                link=link,
                run_id=rel.run_id,
            )
        except Exception as err:  # the request stands in Required Actions; the record shows the failure
            log.warning("could not tell the approvers of %s: %s", op.task_id, err)


def _gate_check(context: Any, approval_ids: list[str]) -> dict[str, Any]:
    from deployment.gate.approval import verify_gate
    from deployment.gate.approvers import SECTION, plan_digest
    from deployment.run_context import release

    rel = release(context)
    section = rel.ledger.read(SECTION) or {}
    return verify_gate(
        rel.cfg, section, approval_ids, rel.run_id, plan_digest(rel.ledger.read_text("plan", "md"))
    )


def group_doc(config: DeploymentConfig) -> str:
    """The group's doc in the UI, with the configuration's numbers."""
    from deployment.docs import duration

    a, t = config.approvals, config.timings
    return (
        f"**Phase 2, approval gate:** {a.required} of the {len(a.approvers)} configured approvers "
        "approve in *Required Actions*; not the author, the person who triggered the run, nor the rc "
        "creator.\n\n"
        f"- Deadline: {duration(t.approval_timeout_seconds)} from the first request; whoever has not "
        f"answered is reminded after {duration(t.approval_timeout_seconds // 2)}.\n"
        f"- Wait timer: {duration(t.wait_timer_seconds)} after the last approval. Mark "
        f"`{GROUP_ID}.wait_timer` failed to cancel the release.\n"
        "- `verify_gate` proves the answers again just before the first change.\n\n"
        "A rejection, the deadline or a cancel fails the run with nothing changed: trigger a new run "
        "(a rejection sticks through clears). If `verify_gate` refused because a manual rollback was "
        "running, clear it once that rollback has finished."
    )


def approval_gate_group(config: DeploymentConfig) -> TaskGroup:
    from deployment.docs import duration

    if config.approvals.required > len(APPROVAL_TASKS):
        raise ValueError(
            f"approvals.required is at most {len(APPROVAL_TASKS)}, got {config.approvals.required}"
        )
    with TaskGroup(
        group_id=GROUP_ID,
        tooltip=f"{config.approvals.required} distinct approvers (not the author, the triggering "
        "person or the rc creator), one deadline, the wait timer, re-verified",
        doc_md=group_doc(config),
    ) as group:

        @task(task_id="announce_start", retries=NOTICE_RETRIES, retry_delay=timedelta(seconds=5))
        def announce_start() -> dict[str, Any]:
            """Deployment started, with the plan and any emergency flags, to the team channel."""
            from deployment.notifications.base import render, run_url, send_once
            from deployment.notifications.messages import active_flags
            from deployment.notifications.slack import send_slack
            from deployment.run_context import release

            context = get_current_context()
            rel = release(context)
            conf = {**rel.params, "emergency": rel.emergency}
            text = render(
                "slack_started.md.j2",
                cfg=rel.cfg,
                conf=conf,
                plan=rel.ledger.read_text("plan", "md"),
                emergency=active_flags(rel.emergency),
                url=run_url(rel.cfg, context["ti"].dag_id, rel.run_id),
            )
            slack = send_once(
                rel.ledger, "notifications.started", lambda: send_slack(rel.cfg.connections.slack_team, text)
            )
            return {"slack": slack.get("status")}

        approvals = []
        for number, name in enumerate(APPROVAL_TASKS[: config.approvals.required], 1):
            approvals.append(
                ReleaseApprovalOperator(
                    task_id=name,
                    approval_number=number,
                    prior_approval_task_ids=[a.task_id for a in approvals],
                    response_timeout=config.timings.approval_timeout,
                    notifiers=[ApprovalNeeded()],
                    doc_md=f"Approval {number} of {config.approvals.required}: Approve or Reject in "
                    "Required Actions or with PATCH .../hitlDetails.",
                )
            )
        approval_ids = [a.task_id for a in approvals]

        @task(task_id="record_approvals")
        def record_approvals() -> dict[str, Any]:
            """Who approved and when (read from Airflow) into ``approvals.result``; announces the window."""
            from deployment.gate.approvers import record_answer
            from deployment.ledger import APPROVAL_RESULT_KEY
            from deployment.notifications.announce import announce_team
            from deployment.notifications.base import slack_escape
            from deployment.run_context import release

            context = get_current_context()
            rel = release(context)
            result = _gate_check(context, approval_ids)
            record_answer(rel.ledger, APPROVAL_RESULT_KEY, result)
            names = " and ".join(slack_escape(a["name"] or a["id"]) for a in result["approvers"])
            try:
                announce_team(
                    rel.cfg,
                    f"Release {rel.version} approved by {names}. Deploying after "
                    f"{result['wait_until']} unless cancelled: mark {group.child_id('wait_timer')} "
                    f"failed in run {rel.run_id}.",
                )
            except Exception as err:  # the window still runs; the record already holds the approvals
                log.warning("could not announce the wait timer: %s", err)
            return result

        remind = ApprovalReminderOperator(
            task_id="remind_approvers",
            approval_task_ids=approval_ids,
            # How often the deferred wait looks whether the gate was decided (in the triggerer).
            poll_interval=max(
                config.timings.poll_interval_seconds, min(300, config.timings.approval_timeout_seconds // 100)
            ),
            retries=2,
            retry_delay=timedelta(seconds=5),
            doc_md=ApprovalReminderOperator.__doc__,
        )

        @task(
            task_id="verify_gate",
            retries=0,
            trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS,
            pre_execute=prove_gate,
        )
        def verify_gate() -> dict[str, Any]:
            """The gate's visible summary before the first change: proven from Airflow's HITL records
            (as every changing task proves it again itself), and no manual rollback running (one may
            start while the release waits for approval). Marking it successful opens nothing."""

            from deployment.gate.approvers import VERIFIED_KEY, record_answer
            from deployment.guards import refuse_concurrent_run
            from deployment.ledger import now_iso
            from deployment.notifications.statuspage import open_maintenance
            from deployment.run_context import release
            from deployment.run_contract import ROLLBACK_DAG_ID

            context = get_current_context()
            refuse_concurrent_run(context["ti"], ROLLBACK_DAG_ID, then=f"Then clear {GATE_TASK_ID} to go on.")
            result = _gate_check(context, approval_ids)
            rel = release(context)
            record_answer(rel.ledger, VERIFIED_KEY, {"at": now_iso(), **result})
            # The gate is open: production is about to change, so the status page says so (a
            # scheduled maintenance, in progress until notify or the rollback completes it).
            try:
                maintenance = open_maintenance(rel.cfg, rel.ledger, rel.version).get("incident_id")
            except Exception as err:  # a status page that cannot be told never holds the release
                log.warning("could not open the status page maintenance: %s", err)
                maintenance = None
            return {
                "approvers": [a["id"] for a in result["approvers"]],
                "plan_digest": result["plan_digest"],
                "statuspage_maintenance": maintenance,
            }

        recorded = record_approvals()
        wait_timer = WaitTimerSensor(
            task_id="wait_timer",
            target_time=f"{{{{ ti.xcom_pull(task_ids='{recorded.operator.task_id}')['wait_until'] }}}}",
            doc_md=f"The cancellation window, {duration(config.timings.wait_timer_seconds)} after the last "
            "approval; fail this task to cancel the release.",
        )
        started, verified = announce_start(), verify_gate()
        chain(started, *approvals, recorded, wait_timer, verified)
        started >> remind
    return group
