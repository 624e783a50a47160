"""The automatic rollback's plan: what this attempt changed, from the record, and what is live.

Only what the record says was changed is undone: traffic when ``frontend.traffic_moved``, the
stack when ``infrastructure.changed`` (or the infrastructure phase started and the live stack no
longer equals the backup), the idle branch when the frontend phase started. Data is never
restored: the DynamoDB backups stay in the record for a person to restore from."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig

from deployment.backup.restore_point import (
    RollbackError,
    backup_live_colour,
    backup_version,
    dynamodb_backups,
    load_backed_up_stack,
)
from deployment.rollback.stack import stack_differences
from deployment.traffic.router import COLOURS


# ---------------------------------------------------------------------- the plan
def plan_from_record(
    cfg: DeploymentConfig, record: dict[str, Any], live: dict[str, Any] | None = None
) -> dict[str, Any]:
    """What to undo, decided from the deployment record and from what is live now.

    ``live`` (:func:`live_differences`) is production as it is when the plan is made:
    traffic not all on the stable colour, or a stack that differs from the backup, is
    undone whatever the record says, so a second attempt is planned from the world and
    not from the first attempt's notes. ``undo`` holds ``traffic``, ``stack`` and
    ``frontend`` flags; ``needed`` is False when nothing was changed (a failure in
    validation, approval, backup or before the change set ran), and then nothing is
    touched and nobody is paged.
    """
    from deployment.traffic.api_alias import rollback_versions
    from deployment.traffic.router import full, other

    backup = record.get("backup") or {}
    infrastructure = record.get("infrastructure") or {}
    frontend = record.get("frontend") or {}
    live = live or {}
    stable = frontend.get("live_colour_before") or backup_live_colour(backup)
    reasons = []
    traffic_off = bool(live.get("weights")) and stable in COLOURS and live["weights"] != full(stable)
    api = rollback_versions(cfg, backup, stable, infrastructure.get("api"))
    alias = live.get("api_alias")
    alias_off = bool(api and alias) and alias != {"version": api["previous"], "weights": {}}
    traffic_off = traffic_off or alias_off
    undo = {
        "traffic": bool(frontend.get("traffic_moved")) or traffic_off,
        "stack": bool(infrastructure.get("changed")) or bool(live.get("stack_differences")),
        "frontend": bool(frontend),
    }
    if frontend.get("traffic_moved"):
        reasons.append("frontend.traffic_moved: the weights were changed")
    if traffic_off and not alias_off:
        reasons.append(f"live now: traffic is {live['weights']}, not all on {stable}")
    if alias_off:
        reasons.append(f"live now: the API alias serves {alias}, not version {api['previous']} alone")
    if infrastructure.get("changed"):
        reasons.append("infrastructure.changed: the change set was executed")
    if live.get("stack_differences"):
        reasons.append("live now: the stack differs from the backup: " + "; ".join(live["stack_differences"]))
    if undo["frontend"]:
        reasons.append("the frontend phase started: the idle branch may have new variables or a build")
    if any(undo.values()) and not backup:
        raise RollbackError(
            "the record shows production was changed but has no backup section: nothing to restore from; "
            "restore by hand"
        )
    if undo["traffic"] and stable not in COLOURS:
        raise RollbackError("traffic was moved but neither frontend nor backup names the stable colour")
    return {
        "needed": any(undo.values()),
        "undo": undo,
        "reasons": reasons or ["nothing was changed: the failure came before any change to production"],
        "stable_colour": stable,
        "idle_colour": other(stable) if stable in COLOURS else frontend.get("target_colour"),
        "backup": backup,
        "api": api,
        "previous_version": backup_version(cfg, backup) if backup else None,
        "dynamodb_backups": dynamodb_backups(backup),
    }


def live_differences(cfg: DeploymentConfig, backup: dict[str, Any]) -> dict[str, Any]:
    """Production now against the backup: the router's weights, the API alias and how the stack differs."""
    from deployment.aws import cloudformation as cf
    from deployment.traffic import router_for
    from deployment.traffic.api_alias import backup_state

    weights = router_for(cfg).weights()
    alias = backup_state(cfg)
    if not (backup.get("stack") or {}).get("template_uri"):
        return {"weights": weights, "api_alias": alias, "stack_differences": []}
    live = cf.live_stack(cfg)
    differences = stack_differences(live, load_backed_up_stack(cfg, backup))
    if live["status"].endswith("_IN_PROGRESS") or live["status"] == "UPDATE_ROLLBACK_FAILED":
        differences.append(f"the stack is {live['status']}")
    return {"weights": weights, "api_alias": alias, "stack_differences": differences}


def last_resort_colour(record: dict[str, Any], live_colour: str | None) -> str | None:
    """The colour live before the release: from the record, else the backup, else the router's."""
    frontend = record.get("frontend") or {}
    for colour in (frontend.get("live_colour_before"), backup_live_colour(record.get("backup") or {})):
        if colour in COLOURS:
            return colour
    return live_colour if live_colour in COLOURS else None
