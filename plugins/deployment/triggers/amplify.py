"""Wait for an Amplify job without holding a worker slot; FAILED/CANCELLED end it with the job's reason."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from airflow.triggers.base import TriggerEvent

from deployment.triggers._base import FieldsTrigger, call, client_in_thread


class AmplifyJobTrigger(FieldsTrigger):
    """Poll ``get_job`` until ``SUCCEED``; ``FAILED``/``CANCELLED`` (or the deadline) yield an error."""

    fields = ("app_id", "branch_name", "job_id", "aws_conn_id", "region_name", "poll_interval", "deadline")

    def __init__(
        self,
        *,
        app_id: str,
        branch_name: str,
        job_id: str,
        aws_conn_id: str,
        region_name: str,
        poll_interval: float,
        deadline: float,
    ) -> None:
        super().__init__()
        self.app_id = app_id
        self.branch_name = branch_name
        self.job_id = job_id
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.poll_interval = poll_interval
        self.deadline = deadline

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from deployment.aws.amplify import FAILED, SUCCEEDED, job_state
        from deployment.hooks.aws import AmplifyHook

        where = f"Amplify job {self.job_id} on {self.app_id}/{self.branch_name}"
        base = {"job_id": self.job_id, "branch": self.branch_name}
        try:
            client = await client_in_thread(AmplifyHook, self.aws_conn_id, self.region_name)
            while True:
                status, reason = await call(job_state, client, self.app_id, self.branch_name, self.job_id)
                if status == SUCCEEDED:
                    yield TriggerEvent({**base, "status": "success", "job_status": status})
                    return
                if status in FAILED:
                    yield TriggerEvent(
                        {**base, "status": "error", "job_status": status, "message": f"{where}: {reason}"}
                    )
                    return
                if time.time() >= self.deadline:
                    message = f"{where} still {status} at the deadline (timings.amplify_timeout_seconds)"
                    yield TriggerEvent({**base, "status": "error", "job_status": status, "message": message})
                    return
                self.log.info("%s is %s; next check in %ss", where, status, self.poll_interval)
                await asyncio.sleep(self.poll_interval)
        except Exception as err:  # a client error must end the wait with its reason, not hang the task
            yield TriggerEvent(
                {
                    **base,
                    "status": "error",
                    "job_status": None,
                    "message": f"{where}: {type(err).__name__}: {err}",
                }
            )
