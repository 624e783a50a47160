"""Phase 1's tasks, each called with a task context, against moto, the GitHub emulator and Slack."""

from __future__ import annotations

import pytest
from _release import AUTHOR, RUN_ID, VERSION
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from airflow.sdk.execution_time.context import set_current_context

from deployment.phases.pre_deployment_validation import RESULT_KEY, pre_deployment_validation_group

V = "pre_deployment_validation"


class FakeTI:
    def __init__(self) -> None:
        self.xcoms: dict[tuple[str, str], object] = {}
        self.task_id = ""

    def xcom_push(self, key, value):
        self.xcoms[(self.task_id, key)] = value

    def xcom_pull(self, task_ids, key="return_value"):
        return self.xcoms.get((task_ids, key))


@pytest.fixture
def run(cfg):
    """Call a task of the group with a context holding ``params``; the XComs persist across calls."""
    with DAG("phase_1", schedule=None) as dag:
        pre_deployment_validation_group(cfg)
    ti = FakeTI()

    def call(task: str, params: dict):
        ti.task_id = f"{V}.{task}"
        context = {"params": params, "run_id": RUN_ID, "ti": ti, "task_instance": ti}
        with set_current_context(context):
            return dag.get_task(ti.task_id).python_callable()

    call.ti = ti
    return call


def _params(sha, version=VERSION, **emergency):
    return {"version": version, "commit_sha": sha, "author": AUTHOR, "emergency": emergency}


@pytest.fixture
def healthy_staging(monkeypatch):
    health = {
        "ok": True,
        "error_rate_percent": 0.1,
        "latency_ms": 120.0,
        "verdict": "healthy",
        "detail": "error rate 0.10 % < 1 %, latency 120 ms < 1000 ms",
    }
    monkeypatch.setattr("deployment.aws.cloudwatch_metrics.staging_health", lambda cfg: health)
    return health


def test_branch_runs_the_checks_or_the_skip(run):
    checks = run("choose_checks", _params("a" * 40))
    assert checks == [f"{V}.check_rc_release", f"{V}.check_staging_workflow", f"{V}.check_staging_metrics"]
    forced = run("choose_checks", _params("a" * 40, force_deploy=True, reason="security patch now"))
    assert forced == f"{V}.skip_checks"


def test_checks_pass_then_plan(cfg, aws, github, healthy_staging, run, ledger):
    params = _params(github["sha"])
    for check in ("check_rc_release", "check_staging_workflow", "check_staging_metrics"):
        assert run(check, params)["ok"] is True
    assert run("record_checks", params) == {"passed": True}
    checks = ledger.read("staging_checks")
    assert checks["passed"] is True
    assert checks["checks"]["staging_metrics"]["latency_ms"] == 120.0
    markdown = run("generate_plan", params)
    assert markdown == ledger.read_text("plan", "md")
    plan = ledger.read("plan")
    assert plan["release"]["previous_version"] == "v1.0.0" and plan["release"]["live_colour"] == "blue"
    assert plan["checks"] == checks
    assert plan["change_set"]["name"].startswith("release-v1-1-0-plan-")


def test_failed_checks_fail_each_and_are_all_recorded(cfg, aws, github, monkeypatch, run, ledger):
    monkeypatch.setattr(
        "deployment.aws.cloudwatch_metrics.staging_health",
        lambda cfg: (_ for _ in ()).throw(RuntimeError("CloudWatch down")),
    )
    github["emulator"].add_workflow_run(cfg.github.staging_workflow, github["sha"], conclusion="failure")
    params = _params(github["sha"], version=VERSION)
    with pytest.raises(AirflowFailException, match="staging_workflow failed: .*concluded 'failure'"):
        run("check_staging_workflow", params)
    with pytest.raises(
        AirflowFailException, match="staging_metrics failed: could not read staging metrics: CloudWatch"
    ):
        run("check_staging_metrics", params)
    assert run("check_rc_release", params)["ok"] is True
    with pytest.raises(
        AirflowFailException, match="pre-deployment validation failed: staging_workflow: .*staging_metrics"
    ):
        run("record_checks", params)
    checks = ledger.read("staging_checks")
    assert checks["passed"] is False
    assert {name for name, r in checks["checks"].items() if not r["ok"]} == {
        "staging_workflow",
        "staging_metrics",
    }
    assert run.ti.xcoms[(f"{V}.check_staging_workflow", RESULT_KEY)]["conclusion"] == "failure"


def test_a_check_that_reported_nothing_counts_as_failed(cfg, aws, run, ledger):
    with pytest.raises(AirflowFailException, match="rc_release: .*check_rc_release ended without reporting"):
        run("record_checks", _params("a" * 40))


def test_force_deploy_records_and_announces_the_skip(cfg, aws, slack, run, ledger):
    reason = "security patch for CVE-2026-0001"
    params = _params("b" * 40, force_deploy=True, reason=reason)
    with pytest.raises(AirflowSkipException):
        run("record_checks", params)
    skip = run("skip_checks", params)
    assert skip["skipped"] is True and skip["announced_at"]
    assert ledger.read("staging_checks") == skip
    (message,) = slack.recorder.list()
    assert "pre-deployment validation SKIPPED (force_deploy) by alice" in message["text"]
    assert reason in message["text"]
    run("generate_plan", params)
    assert ledger.read("plan")["risk"]["level"] == "high"  # an emergency flag is high risk
    assert "**Skipped (force_deploy).**" in ledger.read_text("plan", "md")


def test_the_skip_announcement_escapes_the_reason(cfg, aws, slack, run, ledger):
    params = _params("b" * 40, force_deploy=True, reason="<!channel> patch *now* for <https://x.test|CVE>")
    run("skip_checks", params)
    (message,) = slack.recorder.list()
    assert "&lt;!channel&gt; patch" in message["text"] and "<!channel>" not in message["text"]
    assert "<https://x.test|CVE>" not in message["text"]


def test_force_deploy_is_never_silent(cfg, aws, slack, run, ledger):
    slack.faults.add("outage", service="slack")
    params = _params("b" * 40, force_deploy=True, reason="security patch for CVE-2026-0001")
    with pytest.raises(Exception, match="503|service_unavailable"):
        run("skip_checks", params)
    assert ledger.read("staging_checks")["announced_at"] is None


def test_generate_plan_needs_the_checks(cfg, aws, run):
    with pytest.raises(RuntimeError, match="no staging_checks section"):
        run("generate_plan", _params("a" * 40))
