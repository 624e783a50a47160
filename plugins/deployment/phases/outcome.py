"""The release's last task, ``record_outcome``: the run's state is the release's. It reads the phases'
records and the rollback's, writes the outcome and the per-phase metrics, and fails the run when
the release was rolled back or refused."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import TriggerRule, get_current_context

from deployment.run_context import failed_release_tasks, run_config, run_ledger, task_states
from deployment.run_contract import OUTCOME_TASK_ID
from deployment.tasks import task

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig


# ---------------------------------------------------------------------- outcome
def outcome_of(failed: list[str], rollback: dict[str, Any] | None) -> str:
    """``succeeded`` if no release task failed; ``rolled_back`` when undone and verified; else ``failed``."""
    if not failed:
        return "succeeded"
    if rollback and rollback.get("status") == "rolled_back":
        return "rolled_back"
    return "failed"


def finalize_task(config: DeploymentConfig):
    """The run's last task (``all_done``): writes ``outcome``, fails the run unless the release succeeded."""

    @task(task_id=OUTCOME_TASK_ID, trigger_rule=TriggerRule.ALL_DONE)
    def record_outcome() -> dict[str, Any]:
        """Write the ``outcome`` section; fail the run when the release failed or was rolled back."""
        import logging

        from airflow.sdk.exceptions import AirflowFailException

        from deployment.backup.restore_point import backup_version
        from deployment.guards import current_attempt, release_problems
        from deployment.ledger import now_iso
        from deployment.release.phase_metrics import record_metrics
        from deployment.release.summary import record_summary

        context = get_current_context()
        cfg = run_config(context)
        ledger = run_ledger(cfg, context)
        states = task_states(context)
        failed = failed_release_tasks(states)
        attempt = current_attempt(ledger)
        rollback = ledger.read("rollback")
        if rollback and int(rollback.get("attempt") or 1) != attempt:
            rollback = None  # an earlier attempt's rollback: the last attempt is what this run reports
        status = outcome_of(failed, rollback)
        not_live = release_problems(cfg, ledger) if status == "succeeded" else []
        if not_live:
            status = "failed"  # nothing that is not live is reported as released
        backup = ledger.read("backup") or {}
        notification_failures = sorted(
            t for t, s in states.items() if t.startswith("notify.") and s == "failed"
        )
        outcome = {
            "version": ledger.version,
            "run_id": context["run_id"],
            "dag_id": context["ti"].dag_id,
            "status": status,
            "finished_at": now_iso(),
            "previous_version": backup_version(cfg, backup) if backup else None,
            "failed_tasks": failed,
            "rollback_status": (rollback or {}).get("status"),
            "notification_failures": notification_failures,
            "attempt": attempt,
            "attempts": len(ledger.read("attempts") or []) or 1,
            "not_live": not_live,
        }
        ledger.write("outcome", outcome)
        record_summary(ledger, outcome)  # for the Deployments view; logs and goes on if it cannot
        if status != "succeeded":
            try:
                record_metrics(cfg, ledger, outcome=status)
            except Exception:  # the durations are a report; the outcome above is what matters
                logging.getLogger(__name__).exception("could not record the deployment metrics")
            raise AirflowFailException(
                f"release {ledger.version} {status.replace('_', ' ')}: failed tasks {', '.join(failed)}; "
                f"rollback {outcome['rollback_status'] or 'not run'}"
                + (f"; not live: {'; '.join(not_live)}" if not_live else "")
            )
        return outcome

    return record_outcome()
