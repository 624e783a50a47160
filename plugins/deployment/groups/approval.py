"""Phase 2, the approval gate: two approvals, the record of who and when, the wait timer.

``first_approval`` → ``second_approval`` → ``record_approvals`` → ``wait_timer``.
The wait timer is deferrable (no worker slot) and ends at the second approval
plus ``timings.wait_timer_seconds``; marking it failed (or failing the run) in
the UI during the window cancels the release before anything has changed.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.sensors.date_time import DateTimeSensorAsync
from airflow.sdk import TaskGroup, chain, get_current_context, task

from deployment.approval import ReleaseApprovalOperator

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig

GROUP_ID = "approval_gate"
# The task log: the Task SDK's RuntimeTaskInstance (context["ti"]) has no ``log``.
log = logging.getLogger(__name__)
APPROVAL_TASKS = ("first_approval", "second_approval", "third_approval", "fourth_approval")


def approval_gate_group(config: DeploymentConfig) -> TaskGroup:
    if config.approvals.required > len(APPROVAL_TASKS):
        raise ValueError(
            f"approvals.required is at most {len(APPROVAL_TASKS)}, got {config.approvals.required}"
        )
    with TaskGroup(
        group_id=GROUP_ID,
        tooltip=f"{config.approvals.required} distinct approvers (not the author), then the wait timer",
    ) as group:
        approvals = []
        for number, name in enumerate(APPROVAL_TASKS[: config.approvals.required], 1):
            approvals.append(
                ReleaseApprovalOperator(
                    task_id=name,
                    approval_number=number,
                    prior_approval_task_ids=[a.task_id for a in approvals],
                    response_timeout=config.timings.approval_timeout,
                    doc_md=f"Approval {number} of {config.approvals.required}: Approve or Reject in "
                    "Required Actions or with PATCH .../hitlDetails.",
                )
            )
        approval_ids = [a.task_id for a in approvals]

        @task(task_id="record_approvals")
        def record_approvals() -> dict[str, Any]:
            """Who approved and when into the ``approvals`` section; announces the cancellation window."""
            from deployment.announce import announce_team
            from deployment.approval import RESULT_KEY, record_answer, summarize_approvals
            from deployment.config import load_config
            from deployment.ledger import Ledger

            context = get_current_context()
            cfg = load_config()
            params = context["params"]
            answers = context["ti"].xcom_pull(task_ids=approval_ids)
            result = summarize_approvals(cfg, params["author"], answers, approval_ids)
            record_answer(Ledger(cfg, params["version"], context["run_id"]), RESULT_KEY, result)
            names = " and ".join(a["name"] or a["id"] for a in result["approvers"])
            try:
                announce_team(
                    cfg,
                    f"Release {params['version']} approved by {names}. Deploying after "
                    f"{result['wait_until']} unless cancelled: mark {group.child_id('wait_timer')} "
                    f"failed in run {context['run_id']}.",
                )
            except Exception as err:  # the window still runs; the record already holds the approvals
                log.warning("could not announce the wait timer: %s", err)
            return result

        recorded = record_approvals()
        wait_timer = DateTimeSensorAsync(
            task_id="wait_timer",
            target_time=f"{{{{ ti.xcom_pull(task_ids='{recorded.operator.task_id}')['wait_until'] }}}}",
            doc_md="The cancellation window after the last approval; fail this task to cancel the release.",
        )
        chain(*approvals, recorded, wait_timer)
    return group
