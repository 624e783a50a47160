"""The event a deferred task resumes with, checked before the task reads it."""

from __future__ import annotations

from typing import Any

from airflow.providers.amazon.aws.utils import validate_execute_complete_event
from airflow.sdk.exceptions import AirflowException


def resumed_event(event: Any, *keys: str) -> Any:
    """``event`` as its trigger sent it; a clear error when there is none or it lacks one of ``keys``.

    The provider's ``validate_execute_complete_event`` refuses only a missing event (None): an
    empty mapping passes it, and would then fail as a bare ``KeyError`` or, worse, read as an
    answer. So the keys the task reads without a default are checked here too.
    """
    validate_execute_complete_event(event)
    missing = [key for key in keys if key not in event]
    if missing:
        raise AirflowException(f"Trigger error: the event {event!r} has no {', '.join(missing)}")
    return event
