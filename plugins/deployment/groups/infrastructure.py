"""Phase 5, deploy infrastructure: alarms baseline, execute the validated change set, alarms after.

- ``check_alarms_baseline`` records the alarms (named ``alarms.prefix``...) already in
  ALARM and the pre-release request rate (the traffic band of the metric analysis).
  Any alarm firing stops the run unless the run's ``emergency.ignore_alarms`` lists it
  (with a reason); the override is written to the record.
- ``execute_change_set`` executes the change set phase 4 validated (writing
  ``infrastructure.changed: true`` first) and waits for ``UPDATE_COMPLETE`` in the
  triggerer; any failed or rollback state fails at once with the stack events that explain it.
- ``check_alarms_after`` fails on any alarm that went to ALARM since the baseline.

All three write the ``infrastructure`` section of the deployment record, one after another.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import TaskGroup

from deployment.operators._common import current_release
from deployment.tasks import task

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig
    from deployment.ledger import Ledger

GROUP_ID = "deploy_infrastructure"
SECTION = "infrastructure"


class AlarmsFiring(RuntimeError):
    """Alarms in ALARM where none may be."""


def alarms_baseline(cfg: DeploymentConfig, ledger: Ledger, emergency: dict[str, Any]) -> dict[str, Any]:
    """Record the alarms firing before the deploy and the pre-release traffic; raise on unexpected alarms."""
    from deployment.ledger import now_iso
    from deployment.metrics import baseline, cloudwatch_client, firing_alarms

    existing = ledger.read(SECTION) or {}
    if existing.get("changed") and "alarms_before" in existing:
        # The stack was already changed by this run: alarms now are not a pre-deploy baseline.
        return existing
    firing = firing_alarms(cloudwatch_client(cfg.connections.aws, cfg.region), cfg.alarms.prefix)
    ignored = sorted(emergency.get("ignore_alarms") or [])
    unexpected = [a["name"] for a in firing if a["name"] not in ignored]
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


def alarms_after(cfg: DeploymentConfig, ledger: Ledger) -> dict[str, Any]:
    """Fail on any alarm in ALARM now that was not in the baseline."""
    from deployment.ledger import now_iso
    from deployment.metrics import cloudwatch_client, firing_alarms

    section = ledger.read(SECTION) or {}
    if "alarms_before" not in section:
        raise AlarmsFiring(f"no alarms baseline in {ledger.uri(SECTION)}: check_alarms_baseline has not run")
    before = {a["name"] for a in section["alarms_before"]}
    firing = firing_alarms(cloudwatch_client(cfg.connections.aws, cfg.region), cfg.alarms.prefix)
    new = [a for a in firing if a["name"] not in before]
    section.update(alarms_after=firing, new_alarms=new, alarms_after_checked_at=now_iso())
    ledger.write(SECTION, section)
    if new:
        details = "; ".join(f"{a['name']} ({a['reason']})" for a in new)
        raise AlarmsFiring(f"{len(new)} alarm(s) went to ALARM during the infrastructure deploy: {details}")
    return {"alarms_after": [a["name"] for a in firing], "new_alarms": []}


def deploy_infrastructure_group(config: DeploymentConfig) -> TaskGroup:
    from deployment.operators.cloudformation import ExecuteChangeSetOperator

    with TaskGroup(
        group_id=GROUP_ID,
        tooltip="Alarms baseline, execute the validated change set (deferred wait), alarms after",
        doc_md=__doc__,
    ) as group:

        @task(task_id="check_alarms_baseline")
        def check_alarms_baseline() -> dict[str, Any]:
            """Alarms already in ALARM (stop unless ``emergency.ignore_alarms`` overrides, recorded) and
            the pre-release request rate for the traffic band."""
            rel = current_release()
            cfg, ledger, emergency = rel.cfg, rel.ledger, rel.emergency
            section = alarms_baseline(cfg, ledger, emergency)
            return {"alarms_before": [a["name"] for a in section["alarms_before"]]}

        @task(task_id="check_alarms_after")
        def check_alarms_after() -> dict[str, Any]:
            """Any alarm that went to ALARM since the baseline fails the phase."""
            rel = current_release()
            cfg, ledger = rel.cfg, rel.ledger
            return alarms_after(cfg, ledger)

        execute = ExecuteChangeSetOperator(
            task_id="execute_change_set", doc_md=ExecuteChangeSetOperator.__doc__
        )
        check_alarms_baseline() >> execute >> check_alarms_after()
    return group
