"""The ``rollback.restore_stack`` task records its step as done, whatever status the stack reports.

``restore_stack()`` returns the stack's status (``UPDATE_COMPLETE``) under ``status``; were it
to overwrite the step's ``"done"``, the summary would list the stack as not undone, every
rollback that touched the stack would end ``rollback_incomplete`` and rollback_production would
always fail.
"""

from __future__ import annotations

from _release import RUN_ID, VERSION
from airflow.sdk import DAG
from airflow.sdk.execution_time.context import set_current_context

from deployment.phases.rollback import rollback_group
from deployment.rollback.notices import summary


def test_a_restored_stack_is_recorded_as_undone(cfg, record, monkeypatch):
    plan = {
        "needed": True,
        "undo": {"traffic": False, "stack": True, "frontend": False},
        "backup": {"previous_version": "v1.0.0"},
        "stable_colour": "blue",
        "failed_tasks": [],
    }
    record.write("rollback.plan", plan)
    restored = {
        "status": "UPDATE_COMPLETE",
        "status_before": "UPDATE_COMPLETE",
        "redeployed": True,
        "actions": ["execute_change_set rollback"],
        "change_set": None,
        "differences_found": [],
    }
    monkeypatch.setattr(
        "deployment.rollback.stack.restore_stack", lambda cfg, backup, run_id, **kwargs: restored
    )
    with DAG("rollback_step", schedule=None) as dag:
        rollback_group(cfg)
    context = {"params": {"version": VERSION}, "run_id": RUN_ID}
    with set_current_context(context):
        result = dag.get_task("rollback.restore_stack").python_callable()

    assert result["status"] == "done" and result["stack_status"] == "UPDATE_COMPLETE"
    assert record.read("rollback.stack")["status"] == "done"
    assert summary(record)["undone"] == ["stack"] and summary(record)["not_undone"] == []
