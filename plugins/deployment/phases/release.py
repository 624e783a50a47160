"""The run's opening task: no manual rollback running, the conf checked against config, the
deployment record opened."""

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
    """Refuse while a manual rollback runs, then write the ``conf`` section of the deployment record
    (who releases what, and any emergency flags) and the ``config`` snapshot every later task of the
    run uses (taken once: a rerun keeps the first)."""

    @task(task_id="record_release", doc_md=record_release.__doc__)
    def _record_release() -> dict[str, Any]:
        from deployment.config import load_config
        from deployment.guards import refuse_concurrent_run
        from deployment.ledger import Ledger, now_iso
        from deployment.run_context import CONFIG_SECTION, config_snapshot, remember_snapshot
        from deployment.run_contract import ROLLBACK_DAG_ID, check_emergency_allowed

        context = get_current_context()
        refuse_concurrent_run(context["ti"], ROLLBACK_DAG_ID)
        cfg = load_config()
        triggered_by = context["dag_run"].triggering_user_name
        check_emergency_allowed(cfg.emergency_users, context["params"], triggered_by)
        info = release_info(context["params"], context["run_id"])
        ledger = Ledger(cfg, info["version"], info["run_id"], context["dag_run"].run_after)
        snapshot = ledger.read(CONFIG_SECTION)
        if snapshot is None:
            snapshot = config_snapshot(cfg)
            ledger.write(CONFIG_SECTION, snapshot)
        remember_snapshot(ledger, snapshot)
        existing = ledger.read("conf")
        info["started_at"] = existing["started_at"] if existing else now_iso()
        info["environment"] = cfg.environment
        ledger.write("conf", info)
        return info

    return _record_release()
