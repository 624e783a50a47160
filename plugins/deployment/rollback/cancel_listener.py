"""Cancel at any instant: a release run or task marked failed by hand puts the stable colour back.

The deferred watch's ``on_kill`` restores traffic only while a step holds; a cancel can land
anywhere else (while the weights are written or propagate, between two steps, during the smoke
tests or the monitoring), and a run marked failed as a whole schedules nothing after it, not
even the rollback group. So Airflow's listener hooks, which the API server fires when a user
marks a run or a task failed (``msg`` / ``error`` "... manually set to `failed`"), restore the
traffic from the API server itself whenever this run's attempt has moved traffic and the release
is not yet judged (monitoring healthy or skipped).

The restore runs in a thread, so the user's request is not held, and looks again a few times
for a moment: a task killed by the cancel may have written its weights just after the first
look. It is recorded (``cancellation``) and announced once per attempt.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from airflow.listeners import hookimpl

log = logging.getLogger(__name__)
MANUAL = "manually set to `failed`"
# After the first restore, look again this many seconds later (a killed task's last write).
LOOK_AGAIN_SECONDS = (2.0, 5.0, 10.0)


@hookimpl
def on_dag_run_failed(dag_run: Any, msg: str) -> None:
    if MANUAL in str(msg or ""):
        _restore_in_background(dag_run.dag_id, dag_run.run_id, "the run")


@hookimpl
def on_task_instance_failed(previous_state: Any, task_instance: Any, error: Any) -> None:
    from deployment.run_context import NOT_RELEASE_TASKS

    if (
        previous_state is None
        and MANUAL in str(error or "")
        and not task_instance.task_id.startswith(NOT_RELEASE_TASKS)
    ):
        _restore_in_background(task_instance.dag_id, task_instance.run_id, task_instance.task_id)


def _restore_in_background(dag_id: str, run_id: str, what: str) -> None:
    from deployment.run_contract import RELEASE_DAG_ID

    if dag_id != RELEASE_DAG_ID:
        return
    threading.Thread(
        target=restore_cancelled, args=(run_id, what), name="cancel-restore", daemon=True
    ).start()


def cancelled_stable_colour(record: dict[str, Any]) -> str | None:
    """The colour to put everyone back on, or None when the cancel has nothing to undo: no traffic was
    moved, or the release was judged (its monitoring completed healthy, or was skipped)."""
    frontend, monitoring = record.get("frontend") or {}, record.get("monitoring") or {}
    if not frontend.get("traffic_moved"):
        return None
    if monitoring.get("outcome") == "healthy" or monitoring.get("skipped"):
        return None
    return frontend.get("live_colour_before")


def restore_cancelled(run_id: str, what: str, looks: tuple[float, ...] = LOOK_AGAIN_SECONDS) -> dict | None:
    """Put all traffic back on the stable colour of ``run_id`` if its cancel calls for it."""
    from deployment.config import load_config
    from deployment.ledger import find_run
    from deployment.rollback.cancel import restore_after_cancel

    try:
        cfg = load_config()
        ledger = find_run(cfg, run_id)
        stable = cancelled_stable_colour(ledger.record()) if ledger else None
        if stable is None:
            return None
        restored = restore_after_cancel(cfg, run_id, what, stable, split_only=False, ledger=ledger)
        for delay in looks:
            time.sleep(delay)
            again = restore_after_cancel(cfg, run_id, what, stable, split_only=False, ledger=ledger)
            restored = again or restored
        return restored
    except Exception:  # a listener never fails the user's request; the rollback group restores too
        log.exception("could not restore the traffic of cancelled run %s", run_id)
        return None
