"""Wait, without a worker slot, until half the approval gate's time has gone or the gate is decided.

The time wait is the standard provider's ``DateTimeTrigger`` (its ``moment``, its loop), and
between its sleeps the approval tasks' states are read the way the standard provider's
``WorkflowTrigger`` reads them in Airflow 3 (``RuntimeTaskInstance.get_task_states`` through
the triggerer's supervisor). Whichever comes first ends the wait:

- every approval task finished: ``{"decided": True}``, and nobody is reminded;
- the moment reached: ``{"decided": False}``, and the task resumes to send the reminder.

A failed state read (the API server restarting) is logged and the wait goes on by the clock:
the reminder is then still sent on time, and the task re-reads the states when it resumes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import datetime

from airflow.providers.standard.triggers.temporal import DateTimeTrigger
from airflow.triggers.base import TriggerEvent

from deployment.guards import TERMINAL
from deployment.triggers._base import FieldsTrigger

log = logging.getLogger(__name__)


class GateReminderTrigger(FieldsTrigger, DateTimeTrigger):
    """``DateTimeTrigger`` at ``moment`` that also ends once ``task_ids`` of ``run_id`` all finished."""

    fields = ("moment", "dag_id", "run_id", "task_ids", "poll_interval")

    def __init__(
        self,
        moment: datetime,
        *,
        dag_id: str,
        run_id: str,
        task_ids: list[str],
        poll_interval: float,
    ) -> None:
        super().__init__(moment=moment)
        self.dag_id = dag_id
        self.run_id = run_id
        self.task_ids = list(task_ids)
        self.poll_interval = float(poll_interval)

    async def states(self) -> dict[str, str]:
        """The approval tasks' states now, ``{task_id: state}``."""
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance
        from asgiref.sync import sync_to_async

        found = await sync_to_async(RuntimeTaskInstance.get_task_states)(
            dag_id=self.dag_id, task_ids=self.task_ids, run_ids=[self.run_id]
        )
        return {task_id: str(state) for task_id, state in (found.get(self.run_id) or {}).items()}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow.providers.common.compat.sdk import timezone

        while True:
            try:
                states = await self.states()
            except Exception as err:  # the API server away: keep to the clock, look again later
                log.warning("could not read the approval tasks' states: %s", err)
            else:
                if self.task_ids and all(states.get(t) in TERMINAL for t in self.task_ids):
                    yield TriggerEvent({"decided": True, "states": states})
                    return
            remaining = (self.moment - timezone.utcnow()).total_seconds()
            if remaining <= 0:
                yield TriggerEvent({"decided": False, "moment": self.moment.isoformat()})
                return
            await asyncio.sleep(min(self.poll_interval, remaining))
