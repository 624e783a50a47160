"""The CloudWatch alarms around the infrastructure deploy: a baseline before it, nothing new after.

``execute_change_set`` takes the baseline before it executes and checks again once the stack
update is complete; both write the ``infrastructure`` section of the deployment record.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig
    from deployment.ledger import Ledger

SECTION = "infrastructure"


class AlarmsFiring(RuntimeError):
    """Alarms in ALARM where none may be."""


def alarms_baseline(cfg: DeploymentConfig, ledger: Ledger, emergency: dict[str, Any]) -> dict[str, Any]:
    """Record the alarms firing before the deploy and the pre-release traffic; raise on unexpected alarms."""
    from deployment.aws.cloudwatch_metrics import baseline, cloudwatch_client, firing_alarms
    from deployment.judge.canary import split_alarms
    from deployment.ledger import now_iso

    existing = ledger.read(SECTION) or {}
    if existing.get("changed") and "alarms_before" in existing:
        # The stack was already changed by this run: alarms now are not a pre-deploy baseline.
        return existing
    firing = firing_alarms(cloudwatch_client(cfg.connections.aws, cfg.region), cfg.alarms.prefix)
    ignored = sorted(emergency.get("ignore_alarms") or [])
    unexpected = list(split_alarms([a["name"] for a in firing], ignored)[0])
    section = {
        **existing,
        "alarms_before": firing,
        "alarms_checked_at": now_iso(),
        "alarms_override": (
            {
                "ignore_alarms": ignored,
                "reason": emergency.get("reason", ""),
                "firing_and_ignored": [a["name"] for a in firing if a["name"] in ignored],
            }
            if ignored
            else None
        ),
        "alarms_blocking": unexpected,
        "traffic_baseline": existing.get("traffic_baseline") or baseline(cfg),
    }
    ledger.write(SECTION, section)
    if unexpected:
        raise AlarmsFiring(
            f"{len(unexpected)} alarm(s) already in ALARM before the infrastructure deploy: "
            f"{', '.join(unexpected)}. Resolve them, or rerun with emergency.ignore_alarms listing them "
            "and a reason."
        )
    return section


def alarms_after(
    cfg: DeploymentConfig, ledger: Ledger, emergency: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Fail on any alarm in ALARM now that was not in the baseline, unless ``ignore_alarms`` lists it.

    ``ignore_alarms`` means here what it means in every watch (``analysis.split_alarms``): the
    run's ``emergency`` flags when given, else those the baseline recorded for this run.
    """
    from deployment.aws.cloudwatch_metrics import cloudwatch_client, firing_alarms
    from deployment.judge.canary import split_alarms
    from deployment.ledger import now_iso

    section = ledger.read(SECTION) or {}
    if "alarms_before" not in section:
        raise AlarmsFiring(f"no alarms baseline in {ledger.uri(SECTION)}: the deploy has not taken it")
    if emergency is not None:
        ignore = list(emergency.get("ignore_alarms") or [])
    else:
        ignore = list((section.get("alarms_override") or {}).get("ignore_alarms") or [])
    before = {a["name"] for a in section["alarms_before"]}
    firing = firing_alarms(cloudwatch_client(cfg.connections.aws, cfg.region), cfg.alarms.prefix)
    breaching, ignored = split_alarms([a["name"] for a in firing if a["name"] not in before], ignore)
    new = [a for a in firing if a["name"] in breaching]
    section.update(
        alarms_after=firing,
        new_alarms=new,
        new_alarms_ignored=list(ignored),
        alarms_after_checked_at=now_iso(),
    )
    ledger.write(SECTION, section)
    if new:
        details = "; ".join(f"{a['name']} ({a['reason']})" for a in new)
        raise AlarmsFiring(f"{len(new)} alarm(s) went to ALARM during the infrastructure deploy: {details}")
    return {"alarms_after": [a["name"] for a in firing], "new_alarms": []}
