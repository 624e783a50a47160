"""A task resumed without its trigger's event, or with an empty one, fails with a clear error before
it reads or writes anything."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from airflow.sdk.exceptions import AirflowException

from deployment.gate.approval import ReleaseApprovalOperator
from deployment.gate.timers import ApprovalReminderOperator
from deployment.operators.amplify import AmplifyReleaseOperator
from deployment.operators.analysis import MonitorReleaseOperator, TrafficShiftOperator
from deployment.operators.cloudformation import ExecuteChangeSetOperator
from deployment.phases.monitoring import GuardedMonitorOperator
from deployment.triggers.events import resumed_event

# Each operator's method its trigger resumes, on no context at all: the check comes first.
RESUMES = {
    "execute_change_set": lambda: ExecuteChangeSetOperator(task_id="t").execute_complete,
    "start_amplify_job": lambda: AmplifyReleaseOperator(task_id="t").execute_complete,
    "shift_traffic": lambda: TrafficShiftOperator(task_id="t", weight=10).execute_complete,
    "monitor": lambda: MonitorReleaseOperator(task_id="t").execute_complete,
    "guarded_monitor": lambda: GuardedMonitorOperator(task_id="t").execute_complete,
    "approval": lambda: (
        ReleaseApprovalOperator(
            task_id="t", approval_number=1, response_timeout=timedelta(hours=1)
        ).execute_complete
    ),
    "reminder": lambda: (
        ApprovalReminderOperator(task_id="t", approval_task_ids=["a"], poll_interval=1).resume
    ),
}
# Those that read the event's status: an empty event lacks it.
READ_STATUS = ("execute_change_set", "start_amplify_job", "shift_traffic", "monitor", "guarded_monitor")


@pytest.mark.parametrize("name", RESUMES)
def test_a_missing_event_is_a_clear_error(name):
    with pytest.raises(AirflowException, match="Trigger error: event is None"):
        RESUMES[name]()({}, None)


@pytest.mark.parametrize("name", READ_STATUS)
def test_an_empty_event_is_a_clear_error(name):
    with pytest.raises(AirflowException, match=r"Trigger error: the event \{\} has no status"):
        RESUMES[name]()({}, {})


def test_an_event_with_what_the_task_reads_is_passed_on():
    event = {"status": "success", "stack_status": "UPDATE_COMPLETE"}
    assert resumed_event(event, "status") is event
    moment = datetime(2026, 12, 1, 20, 0, tzinfo=UTC)  # a DateTimeTrigger resumes with its moment
    assert resumed_event(moment) is moment
    with pytest.raises(AirflowException, match="has no chosen_options, responded_by_user"):
        resumed_event({"params_input": {}}, "chosen_options", "responded_by_user")
