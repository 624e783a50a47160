"""A rollback owns only its attempt: it undoes production only while production runs what the
attempt put there.

A run may be retried long after its rollback (clear ``validate_infrastructure`` with its
downstream tasks, as the README advises), and by then another release may be live. The
record's flags (``infrastructure.changed``, ``frontend.traffic_moved``) say what some attempt of
this run once changed, not what production runs now, so before the automatic rollback plans
anything it compares what is live with what this run put there:

- the stack: when it differs from the backup, it must run this release's version, and the
  template this attempt's update left (``infrastructure.stack_template_sha256``, recorded when
  the update completed);
- the traffic: when it is not all on the stable colour, the colour that carries it must be
  this run's target colour, and that branch must still serve this run's Amplify job.

Anything else is another release's doing: the rollback changes nothing, and says why.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig
    from deployment.ledger import Ledger


def template_sha256(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()


def live_ownership_state(cfg: DeploymentConfig, record: dict[str, Any]) -> dict[str, Any]:
    """What production runs now, as far as ownership needs it."""
    from deployment.aws import cloudformation as cf
    from deployment.aws.amplify import client
    from deployment.backup.take import latest_succeeded_job
    from deployment.traffic import router_for

    stack = cf.live_stack(cfg)
    target = (record.get("frontend") or {}).get("target_colour")
    job = None
    if target in cfg.amplify.branches:
        job = latest_succeeded_job(client(cfg), cfg.amplify.app_id, cfg.amplify.branches[target])
    return {
        "weights": router_for(cfg).weights(),
        "stack_version": stack["parameters"].get(cfg.stack.version_parameter),
        "stack_template_sha256": template_sha256(stack["template_body"]),
        "target_job_id": (job or {}).get("jobId"),
    }


def foreign_changes(
    version: str, record: dict[str, Any], live: dict[str, Any], stack_differs: bool, stable: str | None
) -> list[str]:
    """Why production no longer runs what this run put there (empty when it does, or runs the backup).

    :param stack_differs: whether the live stack differs from the backup.
    :param stable: the colour live before the release.
    """
    infrastructure = record.get("infrastructure") or {}
    frontend = record.get("frontend") or {}
    reasons = []
    if stack_differs:
        if live["stack_version"] != version:
            reasons.append(
                f"the stack runs {live['stack_version']}, neither the backup's version nor {version}"
            )
        elif infrastructure.get("stack_template_sha256") and (
            live["stack_template_sha256"] != infrastructure["stack_template_sha256"]
        ):
            reasons.append(
                f"the stack's template ({live['stack_template_sha256'][:12]}) is not the one this run's "
                f"update left ({infrastructure['stack_template_sha256'][:12]}): another update ran since"
            )
    carrying = sorted(
        colour for colour, weight in (live.get("weights") or {}).items() if weight and colour != stable
    )
    if carrying:
        target = frontend.get("target_colour")
        our_job = (frontend.get("amplify_job") or {}).get("job_id")
        if carrying != [target]:
            reasons.append(f"traffic goes to {carrying}, not to this run's target colour {target}")
        elif our_job and live.get("target_job_id") and str(live["target_job_id"]) != str(our_job):
            reasons.append(
                f"the {target} branch serves Amplify job {live['target_job_id']}, not this run's job "
                f"{our_job}: another release built it since"
            )
    return reasons


def refuse_foreign_production(
    cfg: DeploymentConfig, ledger: Ledger, record: dict[str, Any], live: dict[str, Any] | None, attempt: int
) -> None:
    """Skip the whole rollback, changing nothing, when production runs another release's changes
    (``deployment.rollback.ownership``); the record and the run's outcome say why."""
    from airflow.sdk.exceptions import AirflowSkipException

    from deployment.backup.restore_point import backup_live_colour
    from deployment.ledger import now_iso

    if live is None:
        return
    stable = (record.get("frontend") or {}).get("live_colour_before") or backup_live_colour(record["backup"])
    state = live_ownership_state(cfg, record)
    foreign = foreign_changes(ledger.version, record, state, bool(live["stack_differences"]), stable)
    if not foreign:
        return
    why = (
        f"production no longer runs what run {ledger.run_id} put there ({'; '.join(foreign)}): "
        "the rollback changed nothing. Roll back by hand (rollback_production) if production must change."
    )
    refusal = {"needed": False, "refused": True, "reasons": foreign, "live": state, "attempt": attempt}
    ledger.write("rollback.plan", {**refusal, "decided_at": now_iso()})
    ledger.write("rollback", {**refusal, "status": "refused", "detail": why, "decided_at": now_iso()})
    raise AirflowSkipException(why)
