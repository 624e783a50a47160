"""The run summary (deployment.release.summary): built from the captured records, written by the last task.

``build`` is checked on the records real sandbox releases wrote (``tests/unit/deployments_view/captured``);
``record_outcome`` and the manual rollback's last task are run as tasks of the real DAG code
(moto, the Amplify emulator), and ``release_notes`` against the GitHub emulator.
"""

from __future__ import annotations

import json
import logging

import pytest
from _release import PREVIOUS, RUN_ID, VERSION
from airflow.sdk import DAG
from airflow.sdk.execution_time.context import set_current_context
from test_notifications import CONF, repo  # noqa: F401 - fixture
from test_reruns_tasks import _approved, _run

from deployment.release import summary as release_summary
from deployment.release.phase_metrics import parse_time
from deployment.release.summary import build
from tests.unit.deployment.rollback.test_reruns import _release_live, _take_backup
from tests.unit.deployments_view.test_deployments_view_api import BREACH, MANUAL, RUNS, SUCCESS, SUMMARIES


def _built(run_id: str) -> dict:
    folder, run = run_id.split("/")
    return build(RUNS[run_id], folder, run)


def _read_summary(cfg, moto, folder: str, run: str) -> dict | None:
    from deployment.ledger import run_key

    key = release_summary.key(cfg.artifacts.prefix, folder, run_key(run))
    s3 = moto.client("s3")
    try:
        return json.loads(s3.get_object(Bucket=cfg.artifacts.bucket, Key=key)["Body"].read())
    except s3.exceptions.NoSuchKey:
        return None


# --------------------------------------------------------------- build, on real records
def test_a_successful_release_summarised_from_its_sections():
    sections = RUNS[SUCCESS]
    summary = _built(SUCCESS)
    assert summary["id"] == SUCCESS and summary["kind"] == "release" and summary["outcome"] == "succeeded"
    assert summary["version"] == "v1.1.0" and summary["commit"] == sections["conf"]["commit_sha"]
    assert summary["author"] == sections["conf"]["author"] and summary["previous_version"] == "v1.0.0"
    assert [a["id"] for a in summary["approvers"]] == [
        a["id"] for a in sections["approvals"]["result"]["approvers"]
    ]
    assert summary["started_at"] == sections["conf"]["started_at"]
    assert summary["finished_at"] == sections["outcome"]["finished_at"]
    assert summary["duration_seconds"] > 0
    assert parse_time(summary["live_at_100"]) == parse_time(
        sections["frontend"]["steps"]["100"]["applied_at"]
    )
    assert summary["breach_at"] is None and summary["restore"] is None
    links = summary["links"]
    assert links["run_id"] == sections["outcome"]["run_id"] and links["dag_id"] == "deploy_production"
    assert links["amplify_job"]["job_id"] == sections["frontend"]["amplify_job"]["job_id"]
    assert links["stack_id"].startswith("arn:aws:cloudformation:")
    json.dumps(summary)  # what is written to S3


def test_a_breach_summarised_with_its_times_to_restore():
    summary = _built(BREACH)
    assert summary["outcome"] == "rolled_back" and summary["live_at_100"] is None
    breach = parse_time(summary["breach_at"])
    first_step = RUNS[BREACH]["frontend"]["steps"]["10"]
    breached = [v for v in first_step["watch"]["verdicts"] if v["outcome"] == "breach"]
    assert breach == min(parse_time(v["sample"]["end"]) for v in breached)
    restore = summary["restore"]
    assert restore["from"] == summary["breach_at"]
    assert 0 < restore["to_traffic_back"] <= restore["to_verified"]
    # the watch put traffic back itself; the rollback's traffic step found it back later
    restored = parse_time(first_step["traffic_restored"]["at"])
    assert parse_time(restore["traffic_back_at"]) == restored
    assert restored < parse_time(RUNS[BREACH]["rollback"]["steps"]["traffic"]["finished_at"])
    assert restore["to_traffic_back"] == round((restored - breach).total_seconds(), 3)


def test_a_manual_rollback_summarised_from_its_plan_and_outcome():
    summary = _built(MANUAL)
    outcome = RUNS[MANUAL]["outcome"]
    assert summary["kind"] == "manual_rollback" and summary["commit"] is None
    assert summary["version"] == outcome["previous_version"] == "v1.0.0"
    assert summary["rolled_back_version"] == outcome["version"] == "v1.1.0"
    assert summary["author"] == outcome["requested_by"] == "alice" and summary["reason"] == outcome["reason"]
    assert summary["links"]["dag_id"] == "rollback_production"
    assert summary["restore"]["from"] == summary["started_at"] and summary["restore"]["to_verified"] > 0


def test_each_captured_run_s_summary_is_the_builder_s_of_its_sections():
    """What record_outcome wrote in the real runs is what the view builds for a run without one."""
    assert set(SUMMARIES) == set(RUNS)
    for run_id, stored in SUMMARIES.items():
        assert stored == _built(run_id), run_id


def test_a_run_with_only_its_conf_is_running():
    conf = RUNS[SUCCESS]["conf"]
    summary = build({"conf": conf}, "v1.1.0", "r")
    assert summary["outcome"] == "running" and summary["finished_at"] is None
    assert summary["duration_seconds"] is None and summary["approvers"] == []
    assert build({}, "manual-rollbacks", "r")["started_at"] is None


# ------------------------------------------------------------ written by the last task
def test_record_outcome_writes_the_summary_of_the_run(cfg, aws, ledger, moto):
    _take_backup(cfg, ledger)
    _approved(ledger)
    ledger.write("conf", {**CONF, "run_id": RUN_ID, "started_at": "2026-01-02T09:00:00+00:00"})
    ledger.write(
        "release_notes", {"previous_version": PREVIOUS, "first_commit_at": "2026-01-01T08:00:00+00:00"}
    )
    _release_live(cfg, aws, ledger)

    outcome = _run(cfg, "record_outcome", {"monitoring.watch_metrics": "success"})

    summary = _read_summary(cfg, moto, VERSION, RUN_ID)
    assert summary is not None and summary["outcome"] == outcome["status"] == "succeeded"
    assert summary["finished_at"] == outcome["finished_at"] and summary["version"] == VERSION
    assert summary["first_commit_at"] == "2026-01-01T08:00:00+00:00"
    assert summary["triggered_at"] == "2026-01-02T09:00:00+00:00"
    sections = {name: ledger.read(name) for name in release_summary.SECTIONS}
    assert summary == build(
        {k: v for k, v in sections.items() if v is not None}, VERSION, ledger.prefix.rsplit("/", 1)[1]
    )


def test_a_summary_that_cannot_be_written_changes_no_outcome(cfg, aws, ledger, moto, monkeypatch, caplog):
    _take_backup(cfg, ledger)
    _release_live(cfg, aws, ledger)

    def broken(*args, **kwargs):
        raise ValueError("summary builder broke")

    monkeypatch.setattr(release_summary, "build", broken)
    with caplog.at_level(logging.ERROR, logger="deployment.release.summary"):
        outcome = _run(cfg, "record_outcome", {"monitoring.watch_metrics": "success"})
    assert outcome["status"] == "succeeded" and ledger.read("outcome")["status"] == "succeeded"
    assert _read_summary(cfg, moto, VERSION, RUN_ID) is None
    assert "could not write the summary" in caplog.text


class _Ti:
    dag_id = "rollback_production"


def test_the_manual_rollback_writes_its_summary(cfg, moto):
    from airflow.sdk.exceptions import AirflowFailException

    from deployment.ledger import Ledger
    from deployment.phases.manual_rollback import manual_outcome_task
    from deployment.run_context import MANUAL_RECORD_FOLDER

    run_id = "manual__unit"
    ledger = Ledger(cfg, MANUAL_RECORD_FOLDER, run_id)
    plan = RUNS[MANUAL]["rollback.plan"]
    ledger.write("rollback.plan", plan)
    ledger.write("rollback", {**RUNS[MANUAL]["rollback"], "status": "failed"})
    with DAG("rollback_production", schedule=None) as dag:
        manual_outcome_task()
    params = {"reason": "conversion dropped", "requested_by": "alice"}
    with set_current_context({"params": params, "run_id": run_id, "ti": _Ti()}):
        with pytest.raises(AirflowFailException):
            dag.get_task("record_outcome").python_callable()
    summary = _read_summary(cfg, moto, MANUAL_RECORD_FOLDER, run_id)
    assert summary["kind"] == "manual_rollback" and summary["outcome"] == "failed"
    assert summary["version"] == plan["previous_version"] and summary["author"] == "alice"
    assert summary["reason"] == "conversion dropped" and summary["restore"] is None


# ------------------------------------------------------------------------ release notes
def test_release_notes_record_the_first_commit_time(cfg, repo):  # noqa: F811 - the fixture
    from deployment.notifications import github

    repo.add_commits([{"message": "Early fix", "date": "2025-12-30T07:00:00Z"}], tag="v1.1.1")
    notes = github.release_notes(cfg, {**CONF, "version": "v1.1.1"}, "v1.0.0")
    assert notes["commits"] == 3
    assert parse_time(notes["first_commit_at"]) == parse_time("2025-12-30T07:00:00Z")
    assert github.release_notes(cfg, CONF, None)["first_commit_at"] is None
