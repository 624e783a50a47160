"""deploy_production: one production release, from staging evidence to announcement.

Thin wiring only: each phase is a task group built in ``deployment.phases``.
Every task of the phases that change production (backup to monitoring) feeds
the ``rollback`` group, whose first task fires on the first failure and undoes
only what the deployment record says was changed. ``record_outcome`` is the
only leaf, so the run's state is the release's: a failed notification shows
red on its own task but neither fails a healthy release nor rolls it back.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import chain, dag

from deployment.config import load_config
from deployment.dag_reuse import reuse_or_build
from deployment.docs import dag_doc
from deployment.phases.approval_gate import GATE_TASK_ID, approval_gate_group
from deployment.phases.backup import backup_group
from deployment.phases.deploy_frontend import deploy_frontend_group
from deployment.phases.deploy_infrastructure import deploy_infrastructure_group
from deployment.phases.monitoring import monitoring_group
from deployment.phases.notify import announce_emergency, announce_failure, notify_group
from deployment.phases.outcome import finalize_task
from deployment.phases.pre_deployment_validation import pre_deployment_validation_group
from deployment.phases.release import record_release
from deployment.phases.rollback import rollback_group
from deployment.phases.smoke_tests import smoke_tests_group
from deployment.phases.validate_infrastructure import validate_infrastructure_group
from deployment.run_contract import release_params

CONFIG = load_config()


@dag(
    dag_id="deploy_production",
    schedule=None,
    max_active_runs=1,
    catchup=False,
    params=release_params(),
    tags=["deployment", "production", CONFIG.application],
    doc_md=dag_doc("deploy_production"),
    default_args={"owner": "platform", "retries": 0, "retry_delay": timedelta(seconds=5)},
)
def deploy_production():
    release = record_release()
    emergency = announce_emergency()
    release >> emergency

    changing_phases = [
        backup_group(CONFIG),
        validate_infrastructure_group(CONFIG),
        deploy_infrastructure_group(CONFIG),
        deploy_frontend_group(CONFIG),
        smoke_tests_group(CONFIG),
        monitoring_group(CONFIG),
    ]
    notify = notify_group(CONFIG)
    approval = approval_gate_group(CONFIG)
    chain(release, pre_deployment_validation_group(CONFIG), approval)
    # Production changes only after the verified gate (the group's reminder is no way in).
    chain(approval.children[GATE_TASK_ID], *changing_phases, notify)

    rollback = rollback_group(CONFIG)
    rollback_first = rollback.children["rollback.plan"]
    for phase in changing_phases:
        for phase_task in phase.iter_tasks():
            phase_task >> rollback_first

    # "Deployment failed" runs beside the outcome, not before it: a successful release
    # skips it, and it never changes what the outcome reports.
    [notify, rollback] >> announce_failure()
    # The approval group's reminder ends off the gate's path; the outcome still waits for it.
    [notify, rollback, emergency, approval] >> finalize_task(CONFIG)


# Built once where task processes are forked, not in each (deployment.dag_reuse).
DAG = reuse_or_build(__file__, CONFIG, deploy_production)
