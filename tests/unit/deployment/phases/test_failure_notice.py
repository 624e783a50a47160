""" "Deployment failed" for a release that stopped before changing anything, and only then."""

from __future__ import annotations

import pytest
from _fixtures_notify import statuspage  # noqa: F401,F811 - fixture
from _release import PARAMS, RUN_ID, VERSION, RunTI
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowSkipException
from airflow.sdk.execution_time.context import set_current_context

from deployment.config import load_config
from deployment.phases.notify import announce_failure


def _run(states: dict[str, str]):
    with DAG("deploy_production", schedule=None):
        task = announce_failure()
    ti = RunTI(states)
    with set_current_context({"params": PARAMS, "run_id": RUN_ID, "ti": ti, "task_instance": ti}):
        return task.operator.python_callable()


def _announce_start(states: dict[str, str]):
    from deployment.phases.approval_gate import approval_gate_group

    with DAG("deploy_production", schedule=None) as dag:
        approval_gate_group(load_config())
    ti = RunTI(states)
    with set_current_context({"params": PARAMS, "run_id": RUN_ID, "ti": ti, "task_instance": ti}):
        return dag.get_task("approval_gate.announce_start").python_callable()


def test_a_rejection_is_announced_with_its_cause_and_the_page_restored(cfg, record, slack, statuspage):  # noqa: F811
    record.write_text("plan", "# Deployment plan: v1.1.0\n", "md")
    _announce_start({})  # "deployment started"; the status page is told only once the gate opens
    page, component = cfg.notifications.statuspage_page_id, cfg.notifications.statuspage_component_id
    assert statuspage.recorder.list() == []
    record.write(
        "approvals",
        {
            "approval_gate.first_approval": {
                "decision": "rejected",
                "user_id": "carol",
                "user_name": "<!channel> Carol",
            }
        },
    )
    result = _run({"approval_gate.first_approval": "failed", "backup.backup_stack": "upstream_failed"})
    started, message = slack.recorder.list()
    assert "Deployment started" in started["text"]
    text = message["text"]
    assert "did not reach sandbox" in text and "Nothing in production was changed" in text
    assert "approval_gate.first_approval rejected by &lt;!channel&gt; Carol" in message["text"]
    assert "<!channel>" not in message["text"]
    assert result["cause"].startswith("failed: approval_gate.first_approval, backup.backup_stack")
    assert record.read("notifications.statuspage_maintenance") is None  # nothing to complete
    assert (
        statuspage.recorder.list() == [] and statuspage.components(page)[component]["status"] == "operational"
    )
    _run({"approval_gate.first_approval": "failed"})  # a retry sends nothing more
    assert len(slack.recorder.list()) == 2


def test_a_failure_after_the_gate_completes_its_maintenance(cfg, record, slack, statuspage):  # noqa: F811
    from deployment.notifications.statuspage import open_maintenance

    open_maintenance(cfg, record, VERSION)  # what verify_gate does as the gate opens
    page, component = cfg.notifications.statuspage_page_id, cfg.notifications.statuspage_component_id
    assert statuspage.components(page)[component]["status"] == "under_maintenance"
    _run({"backup.backup_stack": "failed"})
    assert record.read("notifications.statuspage_maintenance")["status"] == "completed"
    [maintenance] = statuspage.incidents(page)
    assert (
        maintenance["status"] == "completed"
        and "failed before changing production" in (maintenance["incident_updates"][0]["body"])
    )
    assert statuspage.components(page)[component]["status"] == "operational"


@pytest.mark.parametrize(
    ("states", "rollback"),
    [
        ({"notify.slack_team": "failed"}, None),
        ({"smoke_tests.content_creation": "failed"}, {"status": "rolled_back"}),
    ],
    ids=["healthy-release", "changed-production"],
)
def test_nothing_is_announced_otherwise(cfg, record, slack, states, rollback):
    if rollback:
        record.write("rollback", rollback)
    with pytest.raises(AirflowSkipException):
        _run(states)
    assert slack.recorder.list() == []
