"""Phase 6, deploy frontend: blue/green on two Amplify branches behind weighted Route 53 records.

- ``prepare_idle_branch``: the live colour is the one the weights send traffic to; the
  other (idle) colour's branch gets the release's environment variables (its other
  variables are kept). Writes ``frontend.live_colour_before`` / ``target_colour``; a rerun
  reuses them, so a half-shifted state never flips the choice.
- ``start_amplify_job``: a RELEASE job on the idle branch (found again on a rerun), waited
  for in the triggerer; FAILED/CANCELLED fail at once with the job's reason.
- ``shift_traffic_<weight>``, one per ``traffic.steps``: set both weights in one batch,
  then hold for ``hold_seconds`` while the metric analysis runs every poll interval; a
  breach fails the step at once. ``frontend.traffic_moved: true`` is written before the
  first weight change (the rollback restores traffic when it is set). A step whose worker
  was lost is retried (``STEP_RETRIES``); a breach is not.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import TaskGroup, get_current_context

from deployment.tasks import task

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig
    from deployment.ledger import Ledger

GROUP_ID = "deploy_frontend"
SECTION = "frontend"
STEP_RETRIES = 2
STEP_RETRY_DELAY = timedelta(seconds=5)


def step_task_id(weight: int) -> str:
    return f"shift_traffic_{weight}"


def prepare_idle(cfg: DeploymentConfig, ledger: Ledger, version: str) -> dict[str, Any]:
    """Choose the target colour (once per run) and set the release's variables on its branch."""
    from deployment import amplify
    from deployment.ledger import now_iso
    from deployment.router import TrafficRoutingError, other, router_for

    section = ledger.read(SECTION) or {}
    client = amplify.client(cfg)
    if section.get("target_colour"):
        live, target = section["live_colour_before"], section["target_colour"]
    else:
        current = router_for(cfg).weights()
        serving = [colour for colour, weight in current.items() if weight > 0]
        if len(serving) != 1:
            raise TrafficRoutingError(
                f"traffic is not at rest on one colour (weights {current}): another release is in flight "
                "or was not rolled back; restore one colour to 100 before releasing"
            )
        live = serving[0]
        target = other(live)
        live_branch = client.get_branch(appId=cfg.amplify.app_id, branchName=cfg.amplify.branches[live])[
            "branch"
        ]
        section.update(
            live_colour_before=live,
            target_colour=target,
            target_branch=cfg.amplify.branches[target],
            version_before=(live_branch.get("environmentVariables") or {}).get(cfg.amplify.version_variable),
            version=version,
            chosen_at=now_iso(),
        )
    prepared = amplify.prepare_branch(cfg, target, version, amplify=client)
    section["prepared"] = {**prepared, "at": now_iso()}
    ledger.write(SECTION, section)
    return {"live_colour_before": live, "target_colour": target, "variables_changed": prepared["changed"]}


def deploy_frontend_group(config: DeploymentConfig) -> TaskGroup:
    from deployment.operators.amplify import AmplifyReleaseOperator
    from deployment.operators.analysis import TrafficShiftOperator

    with TaskGroup(
        group_id=GROUP_ID,
        tooltip="Build the idle colour on Amplify, then shift traffic "
        + " → ".join(f"{s.weight} %" for s in config.traffic.steps)
        + " with the metric analysis watching each step",
        doc_md=__doc__,
    ) as group:

        @task(task_id="prepare_idle_branch")
        def prepare_idle_branch() -> dict[str, Any]:
            """The live colour from the Route 53 weights; the release's variables on the idle branch."""
            from deployment.operators._common import release

            rel = release(get_current_context())
            return prepare_idle(rel.cfg, rel.ledger, rel.version)

        previous = prepare_idle_branch() >> AmplifyReleaseOperator(
            task_id="start_amplify_job", doc_md=AmplifyReleaseOperator.__doc__
        )
        for step in config.traffic.steps:
            shift = TrafficShiftOperator(
                task_id=step_task_id(step.weight),
                weight=step.weight,
                # A lost worker or a Route 53 error mid-step is retried (the step is idempotent and
                # keeps its earlier attempt); a metric breach fails at once (MetricsUnhealthy).
                retries=STEP_RETRIES,
                retry_delay=STEP_RETRY_DELAY,
                doc_md=f"Send {step.weight} % of traffic to the new colour, then hold it for the step's "
                "configured time while the metric analysis runs (a breach fails at once).\n\n"
                + (TrafficShiftOperator.__doc__ or ""),
            )
            previous >> shift
            previous = shift
    return group
