"""What the release's triggers share: boto3 clients and calls, kept off the event loop."""

from __future__ import annotations

import asyncio
from typing import Any


def _client(hook_class: type, aws_conn_id: str, region_name: str) -> Any:
    return hook_class(aws_conn_id=aws_conn_id, region_name=region_name).conn


async def client_in_thread(hook_class: type, aws_conn_id: str, region_name: str) -> Any:
    """The hook's boto3 client, built in a thread (building it reads the Airflow connection)."""
    return await asyncio.to_thread(_client, hook_class, aws_conn_id, region_name)


async def call(method: Any, *args: Any, **kwargs: Any) -> Any:
    """A synchronous call, run in a thread so the triggerer's event loop keeps serving other triggers."""
    return await asyncio.to_thread(method, *args, **kwargs)
