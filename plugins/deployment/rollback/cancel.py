"""A run or task marked failed by hand while traffic was moved: all of it back on the stable colour,
recorded and announced once per attempt."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deployment.config import Colour, DeploymentConfig
    from deployment.ledger import Ledger

from deployment.rollback.steps import restore_traffic

log = logging.getLogger(__name__)
# One restore at a time in a process: the cancel listener hears a run's cancel more than once, and two
# restorers reading the record together lost the first one's (what production served before it).
_RESTORING = threading.Lock()


# ---------------------------------------------------------------- cancellation
def _after_earlier(earlier: dict[str, Any] | None, section: dict[str, Any]) -> dict[str, Any]:
    """The cancellation record once ``section`` is done: a restore that follows an earlier one of the
    same run and attempt (the listener's later look found a move of a task not yet killed) is
    listed after it, and the record keeps what production served when the cancel began."""
    same = ("run_id", "attempt")
    if not earlier or [earlier.get(k) for k in same] != [section[k] for k in same]:
        return section
    keys = ("observed_at", "weights_before", "api_alias_before", "traffic", "restored_at")
    restores = [{k: earlier.get(k) for k in keys}, *earlier.get("later_restores", [])]
    restores.append({k: section[k] for k in keys})
    # Two restorers may run together (the listener's looks): the first to look, not to write, saw it.
    first, *later = sorted(restores, key=lambda r: r.get("observed_at") or r.get("restored_at") or "")
    return {**earlier, **first, "later_restores": later}


def restore_after_cancel(
    cfg: DeploymentConfig,
    run_id: str,
    task_id: str,
    stable: Colour,
    *,
    split_only: bool = True,
    ledger: Ledger | None = None,
) -> dict | None:
    """A task (or its run) was marked failed by hand while traffic was moved: all of it back on ``stable``.

    Called from the watch trigger's ``on_kill``, which Airflow runs when a user acts on a
    deferred task (mark failed, clear, mark success), not on a triggerer restart: there nothing
    happens unless both colours carry traffic (``split_only``). The cancel listener
    (``deployment.rollback.cancel_listener``) restores whatever is not all on ``stable``. What was done goes
    to the ``cancellation`` section and the team channel (once per attempt).
    """
    with _RESTORING:  # one restore at a time in this process
        from deployment.guards import current_attempt
        from deployment.ledger import find_run, now_iso
        from deployment.notifications.base import send_once
        from deployment.traffic import router_for
        from deployment.traffic.api_alias import api_versions, serves_only
        from deployment.traffic.router import full

        observed_at = now_iso()
        current = router_for(cfg).weights()
        traffic = None
        if not ((split_only and min(current.values()) == 0) or current == full(stable)):
            traffic = restore_traffic(cfg, stable)  # viewers first, before the record is even looked up
        ledger = ledger or find_run(cfg, run_id)  # find_run lists every record: callers that have it pass it
        versions = api_versions(cfg, ledger) if ledger is not None else None
        alias = serves_only(cfg, versions, stable) if versions is not None else None
        if alias is not None and not alias["ok"] and (alias["state"]["weights"] or not split_only):
            traffic = restore_traffic(cfg, stable, api=versions.to_dict())
        if traffic is None:
            return None
        section = {
            "task_id": task_id,
            "run_id": run_id,
            "stable_colour": stable,
            "observed_at": observed_at,
            "weights_before": current,
            "api_alias_before": alias["state"] if alias is not None else None,
            "traffic": traffic,
            "restored_at": now_iso(),
        }
        if ledger is None:
            log.warning("no record of run %s: traffic restored to %s, not recorded", run_id, stable)
            return section
        section["attempt"] = current_attempt(ledger)
        ledger.write("cancellation", _after_earlier(ledger.read("cancellation"), section))

        def announce() -> dict[str, Any]:
            from deployment.notifications.announce import announce_team

            announce_team(
                cfg,
                f":rotating_light: {cfg.application} {ledger.version}: {task_id} was cancelled "
                f"while traffic was {current}; all traffic is back on {stable} "
                f"(run {run_id}).",
            )
            return {"colour": stable}

        try:
            send_once(ledger, f"cancellation.notice.a{section['attempt']}", announce)
        except Exception:  # the traffic is back, which is what matters; the notice failure is recorded
            log.exception("could not announce the cancellation")
        return section
