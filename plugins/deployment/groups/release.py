"""The run's opening task: check the conf against config and open the deployment record."""

from __future__ import annotations

from typing import Any

from airflow.sdk import get_current_context

from deployment.tasks import task


def release_info(params: dict[str, Any], run_id: str) -> dict[str, Any]:
    from deployment.run_contract import emergency_flags

    return {
        "version": params["version"],
        "commit_sha": params["commit_sha"],
        "author": params["author"],
        "emergency": emergency_flags(params),
        "run_id": run_id,
    }


def record_release():
    """Write the ``conf`` section of the deployment record: who releases what, and any emergency flags."""

    @task(task_id="record_release", doc_md=record_release.__doc__)
    def _record_release() -> dict[str, Any]:
        from deployment.config import load_config
        from deployment.ledger import Ledger, now_iso
        from deployment.run_contract import check_emergency_allowed

        context = get_current_context()
        cfg = load_config()
        triggered_by = context["dag_run"].triggering_user_name
        check_emergency_allowed(cfg.emergency_users, context["params"], triggered_by)
        info = release_info(context["params"], context["run_id"])
        ledger = Ledger(cfg, info["version"], info["run_id"])
        existing = ledger.read("conf")
        info["started_at"] = existing["started_at"] if existing else now_iso()
        info["environment"] = cfg.environment
        ledger.write("conf", info)
        return info

    return _record_release()


OPEN_ATTEMPT_TASK_ID = "open_attempt"


def open_attempt():
    """Start an attempt (one pass through the changing phases) once production is checked unchanged.

    Wire it after ``validate_infrastructure`` and before ``deploy_infrastructure``, so that
    clearing ``validate_infrastructure`` with its downstream tasks opens a new attempt.
    """

    @task(task_id=OPEN_ATTEMPT_TASK_ID, retries=0, doc_md=open_attempt.__doc__)
    def _open_attempt() -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from deployment.guards import ProductionChanged
        from deployment.guards import open_attempt as start
        from deployment.operators._common import release

        context = get_current_context()
        rel = release(context)
        try:
            return start(rel.cfg, rel.ledger, int(context["ti"].try_number))
        except ProductionChanged as err:
            raise AirflowFailException(str(err)) from err

    return _open_attempt()
