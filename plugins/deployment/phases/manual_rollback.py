"""``rollback_production``'s own tasks: its plan (the requester proven, what is live read again at
each try) and its outcome; the restore steps are the ``rollback`` group's."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import TriggerRule, get_current_context

from deployment.gate.proof import prove_rollback_requester
from deployment.run_context import run_config, run_ledger
from deployment.tasks import task

if TYPE_CHECKING:
    pass
from deployment.run_contract import OUTCOME_TASK_ID


# -------------------------------------------------------------- manual rollback
@task(task_id="plan", pre_execute=prove_rollback_requester)
def manual_plan_task() -> dict[str, Any]:
    """Refuse while a release past its approval gate runs (one still waiting for approval is refused
    at its gate while this rollback runs), then choose the target version and its backup and record
    the plan of the manual rollback, made again from what is live on every run of this task: a run
    cleared after production moved on undoes nothing that it did not ask to undo."""
    from airflow.sdk.exceptions import AirflowFailException

    from deployment.aws.cloudformation import deployed_version
    from deployment.guards import refuse_concurrent_run
    from deployment.rollback.manual import manual_plan
    from deployment.run_contract import RELEASE_DAG_ID

    context = get_current_context()
    refuse_concurrent_run(context["ti"], RELEASE_DAG_ID, past_gate_only=True)
    cfg = run_config(context)
    ledger = run_ledger(cfg, context)
    params, requested_by = context["params"], context["dag_run"].triggering_user_name
    first = ledger.read("rollback.plan")
    live = deployed_version(cfg)
    if first and live not in (first["rolled_back_version"], first["previous_version"]):
        why = (
            f"production runs {live} now, not {first['rolled_back_version']} that this rollback was asked "
            f"to undo (nor its target {first['previous_version']}): nothing was changed; trigger a new "
            "rollback if production must go back again"
        )
        ledger.write("rollback.refused", {"reason": why, "live_version": live})
        raise AirflowFailException(why)
    target = params.get("target_version") or (first or {}).get("previous_version")
    plan = manual_plan(cfg, target, params["reason"], requested_by)
    ledger.write("rollback.plan", plan)
    return {
        "target": plan["previous_version"],
        "from": plan["rolled_back_version"],
        "stable_colour": plan["stable_colour"],
    }


@task(task_id=OUTCOME_TASK_ID, trigger_rule=TriggerRule.ALL_DONE)
def manual_outcome_task() -> dict[str, Any]:
    """Write ``outcome`` of the manual rollback; fail the run unless production is back and verified."""
    from airflow.sdk.exceptions import AirflowFailException

    from deployment.ledger import now_iso
    from deployment.release.summary import record_summary

    context = get_current_context()
    cfg = run_config(context)
    ledger = run_ledger(cfg, context)
    plan = ledger.read("rollback.plan") or {}
    rollback = ledger.read("rollback") or {}
    status = "rolled_back" if rollback.get("status") == "rolled_back" else "failed"
    outcome = {
        "version": plan.get("rolled_back_version"),
        "previous_version": plan.get("previous_version"),
        "run_id": context["run_id"],
        "dag_id": context["ti"].dag_id,
        "status": status,
        "finished_at": now_iso(),
        "reason": context["params"].get("reason"),
        "requested_by": getattr(context.get("dag_run"), "triggering_user_name", None),
        "rollback_status": rollback.get("status"),
    }
    ledger.write("outcome", outcome)
    record_summary(ledger, outcome)  # for the Deployments view; logs and goes on if it cannot
    if status != "rolled_back":
        raise AirflowFailException(
            f"manual rollback to {plan.get('previous_version') or 'the target'} did not complete: "
            f"{rollback.get('status') or 'no rollback section'}; not undone: {rollback.get('not_undone')}"
        )
    return outcome
