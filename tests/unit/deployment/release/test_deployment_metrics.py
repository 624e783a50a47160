"""Phase durations from the record's section times, published to CloudWatch once per run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from deployment.release import phase_metrics as dm
from deployment.release.phase_registry import MEASURED

T0 = datetime(2026, 1, 2, 3, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_each_phase_runs_from_the_previous_boundary():
    boundaries = {
        "plan": {"started": None, "ended": at(2)},
        "approvals": {"started": None, "ended": at(62)},
        "backup": {"started": None, "ended": at(64)},
        "validation": {"started": None, "ended": at(65)},
        "infrastructure": {"started": at(66), "ended": at(75)},
        "frontend": {"started": None, "ended": at(90)},
        "smoke_tests": {"started": None, "ended": at(93)},
    }
    phases = dm.phase_durations(T0, boundaries, at(100))
    assert phases["approval_wait"]["seconds"] == 3600
    assert phases["infrastructure"]["seconds"] == 540  # its own started_at wins
    assert phases["frontend"]["seconds"] == 900
    assert phases["monitoring"] is None  # skipped: no section, no duration
    assert phases["total"]["seconds"] == 6000


def test_metric_data_carries_application_and_environment(cfg):
    data = dm.metric_data(cfg, {"total": {"seconds": 12.5}, "monitoring": None}, T0)
    assert [d["MetricName"] for d in data] == ["TotalDuration"]
    assert {d["Name"]: d["Value"] for d in data[0]["Dimensions"]} == {
        "Application": cfg.application,
        "Environment": cfg.environment,
    }
    assert data[0]["Unit"] == "Seconds"


def test_record_metrics_measures_the_record_and_publishes_once(cfg, aws, ledger):
    ledger.write(
        "conf",
        {"version": ledger.version, "started_at": (datetime.now(UTC) - timedelta(seconds=30)).isoformat()},
    )
    ledger.write("plan", {"ok": True})
    ledger.write("approvals", {"approvals": []})
    first = dm.record_metrics(cfg, ledger, outcome="succeeded")
    assert first["phases"]["approval_wait"]["seconds"] >= 0
    assert 29 <= first["phases"]["total"]["seconds"] < 120
    expected = {"PreDeploymentValidationDuration", "ApprovalWaitDuration", "TotalDuration"}
    assert set(first["published"]) == expected
    assert ledger.read("metrics")["published_at"] == first["published_at"]
    again = dm.record_metrics(cfg, ledger, outcome="succeeded")
    assert again["skipped"] is True
    cloudwatch = aws["session"].client("cloudwatch")
    listed = cloudwatch.list_metrics(Namespace=cfg.metrics.deployment_namespace)["Metrics"]
    assert {m["MetricName"] for m in listed} == set(first["published"])
    stats = cloudwatch.get_metric_statistics(
        Namespace=cfg.metrics.deployment_namespace,
        MetricName="TotalDuration",
        Dimensions=[
            {"Name": "Application", "Value": cfg.application},
            {"Name": "Environment", "Value": cfg.environment},
        ],
        StartTime=datetime.now(UTC) - timedelta(hours=1),
        EndTime=datetime.now(UTC) + timedelta(minutes=1),
        Period=3600,
        Statistics=["SampleCount"],
    )
    assert sum(p["SampleCount"] for p in stats["Datapoints"]) == 1


def test_the_recorded_phase_and_metric_names_stay_what_dashboards_and_the_view_read():
    """``metrics.phases``' keys and the CloudWatch metric names are read outside the DAG: renaming
    one in the phase registry breaks the dashboards and the Deployments view."""
    assert [(p.group_id, p.measured_as, p.section, p.metric) for p in MEASURED] == [
        ("pre_deployment_validation", "pre_deployment_validation", "plan", "PreDeploymentValidationDuration"),
        ("approval_gate", "approval_wait", "approvals", "ApprovalWaitDuration"),
        ("backup", "backup", "backup", "BackupDuration"),
        (
            "validate_infrastructure",
            "infrastructure_validation",
            "validation",
            "InfrastructureValidationDuration",
        ),
        ("deploy_infrastructure", "infrastructure", "infrastructure", "InfrastructureDuration"),
        ("deploy_frontend", "frontend", "frontend", "FrontendDuration"),
        ("smoke_tests", "smoke_tests", "smoke_tests", "SmokeTestsDuration"),
        ("monitoring", "monitoring", "monitoring", "MonitoringDuration"),
    ]
    assert dm.METRIC_NAMES["total"] == "TotalDuration"
