"""The waits around the approvals: the wait timer after the second answer (a window to cancel in)
and the reminder of approvers who have not answered."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.sensors.date_time import DateTimeSensorAsync
from airflow.sdk import BaseOperator, timezone

from deployment.guards import TERMINAL

if TYPE_CHECKING:
    pass
from deployment.gate.approvers import GATE_KEY, SECTION, now_utc


# ------------------------------------------------------------------ the wait timer
class WaitTimerSensor(DateTimeSensorAsync):
    """The cancellation window after the last approval: deferred (no worker slot) until it closes.

    A window already closed when the task starts (``timings.wait_timer_seconds`` 0, or used up
    while the approvals were recorded) ends the task at once instead of handing it to the
    triggerer and back, which costs a release about three seconds. (Airflow's own
    ``start_from_trigger`` would skip the worker, but on Airflow 3.3.2 the triggerer renders the
    template without the run's conf, fails the release's required params, and its trigger
    runner dies.)
    """

    def execute(self, context: Any) -> None:
        if timezone.utcnow() >= self._moment:
            self.log.info("The cancellation window closed at %s: nothing to wait for", self._moment)
            return
        super().execute(context)


# ------------------------------------------------------------------ the reminder
class ApprovalReminderOperator(BaseOperator):
    """Remind whoever a request still waits for, once, when half the gate's time has gone.

    Deferred the whole time (no worker slot, no task process per look): first, briefly, until
    the first request exists and the gate's deadline is in the record; then until half the
    gate's time (:class:`~deployment.triggers.gate_reminder.GateReminderTrigger`, a
    ``DateTimeTrigger`` that also ends as soon as every approval task has finished). It then
    sends each open request's reminder (Slack and email, once per request: the record keeps
    what was sent) and ends; a gate decided before then ends it with no message.
    """

    ui_color = "#fff3cd"

    def __init__(self, *, approval_task_ids: Sequence[str], poll_interval: float, **kwargs: Any) -> None:
        """
        :param approval_task_ids: the gate's approval tasks: an open request of one of them is
            reminded, and all of them finished ends the task with no message.
        :param poll_interval: seconds between two looks at those tasks' states while deferred, and
            the short wait before the first request exists.
        """
        super().__init__(**kwargs)
        self.approval_task_ids = list(approval_task_ids)
        self.poll_interval = float(poll_interval)

    def execute(self, context: Any) -> dict[str, Any]:
        return self._next(context)

    def resume(self, context: Any, event: Any = None) -> dict[str, Any]:
        """After a wait: a gate decided meanwhile ends the task; otherwise look again. The gate's
        trigger resumes with ``{"decided": ...}``; the short look's ``DateTimeTrigger`` with its moment."""
        from deployment.triggers.events import resumed_event

        event = resumed_event(event)
        if isinstance(event, dict) and event.get("decided"):
            return {"reminded": []}
        return self._next(context)

    def _wait(self, until: datetime, context: Any, gate: bool) -> None:
        from airflow.providers.standard.triggers.temporal import DateTimeTrigger

        from deployment.triggers.gate_reminder import GateReminderTrigger

        trigger = (
            GateReminderTrigger(
                until,
                dag_id=context["ti"].dag_id,
                run_id=context["run_id"],
                task_ids=self.approval_task_ids,
                poll_interval=self.poll_interval,
            )
            if gate
            else DateTimeTrigger(moment=until)
        )
        self.defer(trigger=trigger, method_name="resume")

    def _next(self, context: Any) -> dict[str, Any]:
        from deployment.notifications.messages import approval_needed, required_actions_url
        from deployment.run_context import release, task_states

        states = task_states(context)
        if all(states.get(t) in TERMINAL for t in self.approval_task_ids):
            return {"reminded": []}
        rel = release(context)
        section = rel.ledger.read(SECTION) or {}
        gate = section.get(GATE_KEY)
        now = now_utc()
        if not gate:  # the first request is not made yet: look again shortly
            self._wait(now + timedelta(seconds=self.poll_interval), context, gate=False)
        first, deadline = (datetime.fromisoformat(gate[k]) for k in ("first_requested_at", "deadline"))
        half = first + (deadline - first) / 2
        if now < half:
            self._wait(half, context, gate=True)
        waiting = [t for t in self.approval_task_ids if states.get(t) == "awaiting_input"]
        if not waiting:  # between two requests: the next one is being made
            self._wait(now + timedelta(seconds=self.poll_interval), context, gate=False)
        reminded = []
        for task_id in waiting:
            entry = section.get(task_id) or {}
            try:
                approval_needed(
                    rel.cfg,
                    rel.ledger,
                    version=rel.version,
                    task_id=task_id,
                    key="reminder",
                    assigned=entry.get("eligible", []),
                    deadline=gate["deadline"],
                    link=required_actions_url(rel.cfg, context["ti"].dag_id, rel.run_id, task_id),
                    run_id=rel.run_id,
                    reminder=True,
                )
                reminded.append(task_id)
            except Exception as err:  # a reminder that cannot be sent must not stop the release
                self.log.warning("could not remind the approvers of %s: %s", task_id, err)
        return {"reminded": reminded}
