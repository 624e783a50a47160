"""deploy_production: one production release, from staging evidence to announcement.

Thin wiring only: the phases are task groups built in ``deployment.groups``.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import dag

from deployment.config import load_config
from deployment.docs import dag_doc
from deployment.groups.release import record_release
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
    render_template_as_native_obj=False,
)
def deploy_production():
    record_release()


deploy_production()
