"""What the release's triggers share: their serialization, and boto3 clients and calls kept off the
event loop."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from airflow.triggers.base import BaseTrigger


class FieldsTrigger(BaseTrigger):
    """A trigger that serializes the fields it names in ``fields``.

    Each field is a constructor keyword argument kept under the same attribute name, so
    ``serialize()`` gives ``("<module>.<Class>", {field: value})`` and the triggerer rebuilds the
    trigger from those kwargs. The path is the class's own: a trigger stored in the database is
    loaded by it, so a class keeps its module and name.
    """

    fields: ClassVar[tuple[str, ...]] = ()

    def serialize(self) -> tuple[str, dict[str, Any]]:
        cls = type(self)
        return f"{cls.__module__}.{cls.__qualname__}", {name: getattr(self, name) for name in self.fields}


def _client(hook_class: type, aws_conn_id: str, region_name: str) -> Any:
    return hook_class(aws_conn_id=aws_conn_id, region_name=region_name).conn


async def client_in_thread(hook_class: type, aws_conn_id: str, region_name: str) -> Any:
    """The hook's boto3 client, built in a thread (building it reads the Airflow connection)."""
    return await asyncio.to_thread(_client, hook_class, aws_conn_id, region_name)


async def call(method: Any, *args: Any, **kwargs: Any) -> Any:
    """A synchronous call, run in a thread so the triggerer's event loop keeps serving other triggers."""
    return await asyncio.to_thread(method, *args, **kwargs)
