"""Wait for a stack update without holding a worker slot; fail fast on any failed or rollback state."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from airflow.triggers.base import TriggerEvent

from deployment.triggers._base import FieldsTrigger, call, client_in_thread

DONE = "UPDATE_COMPLETE"
MAX_EVENTS = 20


def is_failed(status: str) -> bool:
    """Whether a stack status means the update failed or is being rolled back."""
    return status.endswith("_FAILED") or "ROLLBACK" in status


def failure_events(cloudformation: Any, stack_name: str, since: str | None) -> list[dict[str, Any]]:
    """The stack's failed resource events since ``since`` (ISO), newest first: what explains the failure."""
    cutoff = datetime.fromisoformat(since) if since else None
    found: list[dict[str, Any]] = []
    for page in cloudformation.get_paginator("describe_stack_events").paginate(StackName=stack_name):
        for event in page["StackEvents"]:  # newest first
            if cutoff and event["Timestamp"] < cutoff:
                return found
            if event.get("ResourceStatus", "").endswith("_FAILED") or (
                "ROLLBACK" in event.get("ResourceStatus", "") and event.get("ResourceStatusReason")
            ):
                found.append(
                    {
                        "logical_id": event.get("LogicalResourceId"),
                        "type": event.get("ResourceType"),
                        "status": event.get("ResourceStatus"),
                        "reason": event.get("ResourceStatusReason", ""),
                        "timestamp": event["Timestamp"].isoformat(),
                    }
                )
                if len(found) >= MAX_EVENTS:
                    return found
    return found


class StackUpdateTrigger(FieldsTrigger):
    """Poll ``describe_stacks`` until ``UPDATE_COMPLETE``; on ``*_FAILED``/``*ROLLBACK*`` yield the reasons.

    :param since: ISO timestamp the update started at; failure events before it are not reported.
    :param deadline: epoch seconds after which the wait ends with a timeout error.
    """

    fields = ("stack_name", "aws_conn_id", "region_name", "poll_interval", "deadline", "since")

    def __init__(
        self,
        *,
        stack_name: str,
        aws_conn_id: str,
        region_name: str,
        poll_interval: float,
        deadline: float,
        since: str | None = None,
    ) -> None:
        super().__init__()
        self.stack_name = stack_name
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.poll_interval = poll_interval
        self.deadline = deadline
        self.since = since

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow.providers.amazon.aws.hooks.cloud_formation import CloudFormationHook

        try:
            client = await client_in_thread(CloudFormationHook, self.aws_conn_id, self.region_name)
            while True:
                stack = (await call(client.describe_stacks, StackName=self.stack_name))["Stacks"][0]
                status = stack["StackStatus"]
                if status == DONE:
                    yield TriggerEvent(
                        {"status": "success", "stack_status": status, "stack_id": stack["StackId"]}
                    )
                    return
                if is_failed(status):
                    events = await call(failure_events, client, self.stack_name, self.since)
                    reasons = "; ".join(f"{e['logical_id']}: {e['reason']}" for e in events if e["reason"])
                    yield TriggerEvent(
                        {
                            "status": "error",
                            "stack_status": status,
                            "message": f"stack {self.stack_name} is {status}: "
                            f"{reasons or stack.get('StackStatusReason') or 'no reason given'}",
                            "events": events,
                        }
                    )
                    return
                if time.time() >= self.deadline:
                    yield TriggerEvent(
                        {
                            "status": "error",
                            "stack_status": status,
                            "message": f"stack {self.stack_name} still {status} at the deadline "
                            f"(timings.stack_timeout_seconds)",
                            "events": [],
                        }
                    )
                    return
                self.log.info(
                    "Stack %s is %s; next check in %ss", self.stack_name, status, self.poll_interval
                )
                await asyncio.sleep(self.poll_interval)
        except Exception as err:  # a client error must end the wait with its reason, not hang the task
            yield TriggerEvent(
                {
                    "status": "error",
                    "stack_status": None,
                    "message": f"{type(err).__name__}: {err}",
                    "events": [],
                }
            )
