"""Phase 6, deploy frontend: blue/green on two Amplify branches behind the traffic router.

- ``start_amplify_job`` first prepares the idle branch: the live colour is the one the
  router sends traffic to; the other (idle) colour's branch gets the release's environment
  variables (its other variables are kept). It writes ``frontend.live_colour_before`` /
  ``target_colour``; a rerun reuses them, so a half-shifted state never flips the choice.
  Then a RELEASE job on the idle branch (found again on a rerun), waited for in the
  triggerer; FAILED/CANCELLED fail at once with the job's reason.
- ``shift_traffic_<weight>``, one per ``traffic.steps``: set both weights in one batch,
  then hold for ``hold_seconds`` while the metric analysis runs every poll interval; a
  breach fails the step at once. A step held for 0 s (the 100 % step) is not watched: the
  monitoring phase watches the release from there. ``frontend.traffic_moved: true`` is
  written before the first weight change (the rollback restores traffic when it is set).
  A step whose worker was lost is retried (``STEP_RETRIES``); a breach is not.
- Every task here proves the approval gate itself before it runs and before each resumption
  (:func:`deployment.gate.proof.prove_gate`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from airflow.sdk import TaskGroup

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig

GROUP_ID = "deploy_frontend"
STEP_RETRIES = 2
STEP_RETRY_DELAY = timedelta(seconds=5)


def step_task_id(weight: int) -> str:
    return f"shift_traffic_{weight}"


def step_hold(config: DeploymentConfig, hold_seconds: int) -> str:
    """How long a step is watched: its hold, and never less than one poll of its own."""
    from deployment.docs import duration

    poll = config.timings.poll_interval_seconds
    return duration(hold_seconds) if hold_seconds >= poll else f"one poll ({duration(poll)})"


def group_doc(config: DeploymentConfig) -> str:
    """The group's doc in the UI, with the configuration's numbers."""
    from deployment.docs import duration, number

    t = config.thresholds
    steps = " → ".join(f"{s.weight} % for {step_hold(config, s.hold_seconds)}" for s in config.traffic.steps)
    return (
        "**Phase 6, deploy frontend:** the release is built on the idle colour's Amplify branch (up to "
        f"{duration(config.timings.amplify_timeout_seconds)}), then traffic moves to it: {steps}.\n\n"
        f"Each step is judged every {duration(config.timings.poll_interval_seconds)} on the new colour's "
        f"requests: error rate under {number(t.error_rate_percent)} % and at most "
        f"{number(t.error_rate_margin_percent)} points above the stable colour's; latency p95 under "
        f"{number(t.latency_p95_ms)} ms and at most {number(t.latency_margin_percent)} % above the stable "
        f"colour's, p99 under {number(t.latency_p99_ms)} ms; no alarm firing.\n\n"
        "A breach puts all traffic back on the stable colour at once and fails the step; the `rollback` "
        "group undoes the rest. Every sample is in the `frontend` record. To deploy again, clear from "
        "`validate_infrastructure` with its downstream tasks."
    )


def deploy_frontend_group(config: DeploymentConfig) -> TaskGroup:
    from deployment.gate.proof import prove_gate
    from deployment.operators.amplify import AmplifyReleaseOperator
    from deployment.operators.analysis import TrafficShiftOperator

    with TaskGroup(
        group_id=GROUP_ID,
        tooltip="Build the idle colour on Amplify, then shift traffic "
        + " → ".join(f"{s.weight} %" for s in config.traffic.steps)
        + " with the metric analysis watching each step",
        doc_md=group_doc(config),
    ) as group:
        previous = AmplifyReleaseOperator(
            task_id="start_amplify_job", pre_execute=prove_gate, doc_md=AmplifyReleaseOperator.__doc__
        )
        for step in config.traffic.steps:
            shift = TrafficShiftOperator(
                task_id=step_task_id(step.weight),
                weight=step.weight,
                pre_execute=prove_gate,
                # A lost worker or a Route 53 error mid-step is retried (the step is idempotent and
                # keeps its earlier attempt); a metric breach fails at once (MetricsUnhealthy).
                retries=STEP_RETRIES,
                retry_delay=STEP_RETRY_DELAY,
                doc_md=f"Send {step.weight} % of traffic to the new colour, then hold it for "
                f"{step_hold(config, step.hold_seconds)} while the metric analysis runs (a breach fails "
                "at once).\n\n" + (TrafficShiftOperator.__doc__ or ""),
            )
            previous >> shift
            previous = shift
    return group
