"""Airflow's own floor for a release's shape: two DAGs of no-op tasks, loaded only by the bench's stacks.

``bench_floor_shaped`` is a chain with as many tasks as the measured release's critical path,
each parked the way the release's task at that place was: deferred (a ``DateTimeTrigger`` a
moment ahead, as often as the release's task deferred) or awaiting input (an
``ApprovalOperator`` with no assigned users, answered over REST by the bench). Every other task
does nothing. ``bench_floor_chain`` is the same number of no-op tasks, nothing parked.

The shape comes from the release the bench has just measured (``bench/harness.py`` writes it to
the JSON file named by ``BENCH_FLOOR_SHAPE`` and asks the dag-processor to parse this file
again); until then each DAG is one task. Task processes parse this file as they start, as they
parse ``dags/deploy_production.py``, so both DAGs are built from the standard library and
Airflow alone.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.providers.standard.triggers.temporal import DateTimeTrigger
from airflow.sdk import DAG, BaseOperator, chain, task, timezone

SHAPED, CHAIN = "bench_floor_shaped", "bench_floor_chain"
RUN, DEFERRED, AWAITING_INPUT = "run", "deferred", "awaiting_input"


def load_shape() -> dict:
    """``{"tasks": [{"kind": run|deferred|awaiting_input, "parks": n}, ...], "defer_seconds": s}``."""
    path = os.environ.get("BENCH_FLOOR_SHAPE")
    if path and Path(path).is_file():
        return json.loads(Path(path).read_text())
    return {"tasks": [{"kind": RUN, "parks": 0}], "defer_seconds": 1.0}


class TrivialWait(BaseOperator):
    """Defers ``parks`` times in a row, each time for ``seconds`` (``DateTimeTrigger``), then ends."""

    def __init__(self, *, seconds: float, parks: int = 1, **kwargs) -> None:
        super().__init__(**kwargs)
        self.seconds = seconds
        self.parks = parks

    def execute(self, context) -> None:
        self._park(done=0)

    def resume(self, context, event=None, done: int = 1) -> None:
        if done < self.parks:
            self._park(done)

    def _park(self, done: int) -> None:
        moment = timezone.utcnow() + timedelta(seconds=self.seconds)
        self.defer(trigger=DateTimeTrigger(moment=moment), method_name="resume", kwargs={"done": done + 1})


@task
def nothing() -> None:
    """A task that does nothing: a task process, the DAG file's parse, the Execution API calls."""


def build(dag_id: str, shape: dict, parked: bool) -> DAG:
    tasks = shape["tasks"]
    with DAG(
        dag_id=dag_id,
        schedule=None,
        catchup=False,
        max_active_runs=1,
        tags=["bench"],
        doc_md=__doc__,
    ) as dag:
        steps = []
        for i, spec in enumerate(tasks, start=1):
            kind = spec["kind"] if parked else RUN
            task_id = f"t{i:02d}_{kind}"
            if kind == DEFERRED:
                steps.append(
                    TrivialWait(
                        task_id=task_id, seconds=float(shape["defer_seconds"]), parks=int(spec["parks"])
                    )
                )
            elif kind == AWAITING_INPUT:
                steps.append(ApprovalOperator(task_id=task_id, subject=f"floor {task_id}", assigned_users=[]))
            else:
                steps.append(nothing.override(task_id=task_id)())
        chain(*steps)
    return dag


SHAPE = load_shape()
shaped = build(SHAPED, SHAPE, parked=True)
plain = build(CHAIN, SHAPE, parked=False)
