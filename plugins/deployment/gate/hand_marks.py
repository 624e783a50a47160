"""Tamper evidence for the path Airflow's audit log misses: task states set by hand in bulk.

The API server writes an audit-log row for a single task instance's PATCH, a clear and an XCom
write, but none for the bulk task-instance PATCH (``bulk_task_instances``). Every hand change
still fires the listener hooks with ``previous_state=None``, so this listener writes the row
Airflow did not: event ``hand_task_state`` with the new state, for a release run's task. The
proof at the point of change (``deployment.gate.proof``) reads it with the rest of the audit log:
a state set to success or skipped blocks the release, a mark to failed is a cancel. A single
PATCH gets its own row beside Airflow's; both say the same.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from airflow.listeners import hookimpl

log = logging.getLogger(__name__)
EVENT = "hand_task_state"
OWNER = "unknown (a bulk change: Airflow logs no user)"


@hookimpl
def on_task_instance_success(previous_state: Any, task_instance: Any) -> None:
    if previous_state is None:
        _in_background(task_instance, "success")


@hookimpl
def on_task_instance_skipped(previous_state: Any, task_instance: Any) -> None:
    if previous_state is None:
        _in_background(task_instance, "skipped")


def _in_background(task_instance: Any, state: str) -> None:
    """The hooks fire inside the API request's own transaction: on SQLite a second session writing
    now would wait for that transaction's lock, which the request holds until it returns (the
    request hung past its clients' 15 s). A thread writes once the request has committed."""
    from deployment.run_contract import RELEASE_DAG_ID

    if task_instance.dag_id != RELEASE_DAG_ID:
        return
    fields = {
        "dag_id": task_instance.dag_id,
        "run_id": task_instance.run_id,
        "task_id": task_instance.task_id,
        "map_index": getattr(task_instance, "map_index", -1),
        "try_number": getattr(task_instance, "try_number", None),
    }
    threading.Thread(target=record_hand_mark, args=(fields, state), name="hand-mark", daemon=True).start()


def record_hand_mark(fields: dict[str, Any], state: str) -> None:
    """Write the audit-log row of a hand-set state of a release run's task (never raises)."""
    try:
        from airflow.models.log import Log
        from airflow.utils.session import create_session

        with create_session() as session:
            session.add(
                Log(
                    event=EVENT,
                    owner=OWNER,
                    extra=json.dumps({"new_state": state}),
                    **fields,
                )
            )
    except Exception:  # a listener never fails the user's request
        log.exception("could not record the hand-set state of %s", fields["task_id"])
