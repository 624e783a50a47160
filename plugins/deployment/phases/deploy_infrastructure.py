"""Phase 5, deploy infrastructure: one task, ``execute_change_set`` (``ExecuteChangeSetOperator``).

- Before executing, the alarms baseline: the alarms (named ``alarms.prefix``...) already in
  ALARM and the pre-release request rate (the traffic band of the metric analysis). Any
  alarm firing stops the run unless the run's ``emergency.ignore_alarms`` lists it (with a
  reason); the override is written to the record.
- It executes the change set phase 4 validated (writing ``infrastructure.changed: true``
  first) and waits for ``UPDATE_COMPLETE`` in the triggerer; any failed or rollback state
  fails at once with the stack events that explain it.
- Once the update is complete, any alarm that went to ALARM since the baseline fails it.

The task proves the approval gate itself before each run or resumption
(:func:`deployment.gate.proof.prove_gate`). All three steps write the ``infrastructure``
section of the deployment record (``deployment.checks.alarms`` holds the two alarm checks).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import TaskGroup

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig

GROUP_ID = "deploy_infrastructure"


def group_doc(config: DeploymentConfig) -> str:
    """The group's doc in the UI, with the configuration's numbers."""
    from deployment.docs import duration

    return (
        f"**Phase 5, deploy infrastructure:** `execute_change_set` executes the change set phase 4 "
        f"validated on stack `{config.stack.name}` and waits, deferred, up to "
        f"{duration(config.timings.stack_timeout_seconds)} for `UPDATE_COMPLETE`.\n\n"
        f"The alarms named `{config.alarms.prefix}*` guard it: one already firing before (unless "
        "`emergency.ignore_alarms` lists it) or one that fires during the update fails the task.\n\n"
        "A failure starts the `rollback` group, which puts the stack back as backed up. The stack "
        "events or the alarm are in the task's log; once fixed, clear from `validate_infrastructure` "
        "with its downstream tasks."
    )


def deploy_infrastructure_group(config: DeploymentConfig) -> TaskGroup:
    from deployment.gate.proof import prove_gate
    from deployment.operators.cloudformation import ExecuteChangeSetOperator

    with TaskGroup(
        group_id=GROUP_ID,
        tooltip="Alarms baseline, execute the validated change set (deferred wait), alarms after",
        doc_md=group_doc(config),
    ) as group:
        ExecuteChangeSetOperator(
            task_id="execute_change_set", pre_execute=prove_gate, doc_md=ExecuteChangeSetOperator.__doc__
        )
    return group
