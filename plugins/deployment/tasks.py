"""The TaskFlow decorator every phase builds its Python tasks with.

Airflow unrolls a task's result into one XCom per key, beside ``return_value``, whenever the
function is annotated to return a mapping, and each of those is an Execution API call of its own:
one release wrote 224 XComs for 64 tasks. The phases hand data to each other through the
deployment record, never through an XCom key, so here a task's result is one XCom.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import task as _airflow_task


def task(**kwargs: Any):
    """``airflow.sdk.task(**kwargs)`` whose result is pushed once, as ``return_value``."""
    kwargs.setdefault("multiple_outputs", False)
    return _airflow_task(**kwargs)


# A branch returns task ids, never a mapping: Airflow's own decorator.
task.branch = _airflow_task.branch
