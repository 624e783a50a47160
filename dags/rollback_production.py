"""rollback_production: put production back on an earlier release, by hand (the spec's rollback.yml).

Thin wiring only: the restore, verify and notice tasks are the ``rollback`` group's.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag

from deployment.config import load_config
from deployment.dag_reuse import reuse_or_build
from deployment.docs import dag_doc
from deployment.phases.manual_rollback import manual_outcome_task, manual_plan_task
from deployment.phases.rollback import rollback_steps
from deployment.run_contract import MIN_REASON_LENGTH, VERSION_PATTERN

CONFIG = load_config()


@dag(
    dag_id="rollback_production",
    schedule=None,
    max_active_runs=1,
    catchup=False,
    params={
        "target_version": Param(
            None,
            type=["null", "string"],
            pattern=VERSION_PATTERN,
            title="Target version",
            description="vMAJOR.MINOR.PATCH to return to; empty: the newest successful release "
            "in the deployment records that is not the one deployed now.",
        ),
        "reason": Param(
            type="string",
            minLength=MIN_REASON_LENGTH,
            title="Reason",
            description=f"Why production is rolled back (at least {MIN_REASON_LENGTH} characters).",
        ),
    },
    tags=["deployment", "rollback", CONFIG.application],
    doc_md=dag_doc("rollback_production"),
    default_args={"owner": "platform", "retries": 0, "retry_delay": timedelta(seconds=5)},
)
def rollback_production():
    plan = manual_plan_task()
    rollback_steps(plan) >> manual_outcome_task()


# Built once where task processes are forked, not in each (deployment.dag_reuse).
DAG = reuse_or_build(__file__, CONFIG, rollback_production)
