"""The release's phases in the order they run: the one list deploy_production's task groups, the
phase durations (the record's ``metrics`` section and CloudWatch), the Deployments view, the demo
and the tests follow.

A measured phase ends with the last write of its record ``section`` (see ``phase_metrics``). Its
``measured_as`` name (a key of ``metrics.phases``, a bar of the Deployments view's timeline) and
its ``metric`` name are read by dashboards and by the view: they are a contract, never renamed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Phase:
    group_id: str
    doc: str
    measured_as: str | None = None
    section: str | None = None
    metric: str | None = None


PHASES: tuple[Phase, ...] = (
    Phase(
        "pre_deployment_validation",
        "Staging evidence, the verified build and the deployment plan with its change-set preview.",
        measured_as="pre_deployment_validation",
        section="plan",
        metric="PreDeploymentValidationDuration",
    ),
    Phase(
        "approval_gate",
        "Approvers other than the author, then the wait timer; re-verified before the first change.",
        measured_as="approval_wait",
        section="approvals",
        metric="ApprovalWaitDuration",
    ),
    Phase(
        "backup",
        "The stack's template and parameters, DynamoDB backups and the live Amplify branch, kept.",
        measured_as="backup",
        section="backup",
        metric="BackupDuration",
    ),
    Phase(
        "validate_infrastructure",
        "SAM transform, cfn-lint, and the change set compared with the approved plan.",
        measured_as="infrastructure_validation",
        section="validation",
        metric="InfrastructureValidationDuration",
    ),
    Phase(
        "deploy_infrastructure",
        "The validated change set executed, no new alarm before or after.",
        measured_as="infrastructure",
        section="infrastructure",
        metric="InfrastructureDuration",
    ),
    Phase(
        "deploy_frontend",
        "The idle colour's Amplify branch released, then traffic shifted to it step by step, judged.",
        measured_as="frontend",
        section="frontend",
        metric="FrontendDuration",
    ),
    Phase(
        "smoke_tests",
        "The configured smoke checks against production.",
        measured_as="smoke_tests",
        section="smoke_tests",
        metric="SmokeTestsDuration",
    ),
    Phase(
        "monitoring",
        "Production watched for timings.monitoring_seconds after the release.",
        measured_as="monitoring",
        section="monitoring",
        metric="MonitoringDuration",
    ),
    Phase(
        "notify",
        "The healthy release announced; it records the phase durations, so it is not measured itself.",
    ),
)
# The phases measured from the record, in order; the first starts at ``conf.started_at``.
MEASURED: tuple[Phase, ...] = tuple(phase for phase in PHASES if phase.measured_as)
GROUP_IDS: tuple[str, ...] = tuple(phase.group_id for phase in PHASES)
# The whole release, from ``conf.started_at`` to the measurement.
TOTAL, TOTAL_METRIC = "total", "TotalDuration"
