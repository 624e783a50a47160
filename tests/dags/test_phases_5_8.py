"""Structure of the phase 5-8 task groups, built into a DAG the way deploy_production wires them."""

from __future__ import annotations

import pytest
from airflow.sdk import DAG

from deployment.config import load_config
from deployment.operators.amplify import AmplifyReleaseOperator
from deployment.operators.analysis import MetricsUnhealthy, MonitorReleaseOperator, TrafficShiftOperator
from deployment.operators.cloudformation import ExecuteChangeSetOperator
from deployment.phases.deploy_frontend import deploy_frontend_group
from deployment.phases.deploy_infrastructure import deploy_infrastructure_group
from deployment.phases.monitoring import monitoring_group
from deployment.phases.smoke_tests import smoke_tests_group

CFG = load_config("sandbox")


@pytest.fixture(scope="module")
def dag():
    with DAG("phases_5_8", schedule=None) as dag:
        infra = deploy_infrastructure_group(CFG)
        frontend = deploy_frontend_group(CFG)
        smoke = smoke_tests_group(CFG)
        monitoring = monitoring_group(CFG)
        infra >> frontend >> smoke >> monitoring
    return dag


def downstream(dag, task_id):
    return dag.get_task(task_id).downstream_task_ids


def test_infrastructure_is_one_alarm_guarded_task(dag):
    group = [t.task_id for t in dag.tasks if t.task_id.startswith("deploy_infrastructure.")]
    assert group == ["deploy_infrastructure.execute_change_set"]
    assert isinstance(dag.get_task("deploy_infrastructure.execute_change_set"), ExecuteChangeSetOperator)


def test_frontend_has_one_task_per_traffic_step_in_order(dag):
    steps = [f"deploy_frontend.shift_traffic_{s.weight}" for s in CFG.traffic.steps]
    chain = ["deploy_frontend.start_amplify_job", *steps]
    for upstream, task_id in zip(chain, chain[1:], strict=False):
        assert task_id in downstream(dag, upstream)
    assert isinstance(dag.get_task("deploy_frontend.start_amplify_job"), AmplifyReleaseOperator)
    assert [dag.get_task(s).weight for s in steps] == [10, 50, 100]
    assert all(isinstance(dag.get_task(s), TrafficShiftOperator) for s in steps)


def test_smoke_has_one_task_per_check_then_the_summary(dag):
    checks = {f"smoke_tests.check_{c.name}" for c in CFG.smoke_tests.checks}
    summary = dag.get_task("smoke_tests.record_results")
    assert summary.upstream_task_ids == checks
    assert summary.trigger_rule == "all_done"


def test_groups_are_chained_and_monitoring_is_deferrable(dag):
    assert downstream(dag, "deploy_infrastructure.execute_change_set") == {
        "deploy_frontend.start_amplify_job"
    }
    assert downstream(dag, "deploy_frontend.shift_traffic_100") == {
        f"smoke_tests.check_{c.name}" for c in CFG.smoke_tests.checks
    }
    assert downstream(dag, "smoke_tests.record_results") == {"monitoring.watch_metrics"}
    assert isinstance(dag.get_task("monitoring.watch_metrics"), MonitorReleaseOperator)


def test_every_task_and_group_is_documented(dag):
    for task in dag.tasks:
        assert task.doc_md, task.task_id
    for group_id in ("deploy_infrastructure", "deploy_frontend", "smoke_tests", "monitoring"):
        group = dag.task_group_dict[group_id]
        assert group.doc_md and group.tooltip


def test_template_fields_exist():
    for operator in (
        ExecuteChangeSetOperator(task_id="a"),
        AmplifyReleaseOperator(task_id="b"),
        TrafficShiftOperator(task_id="c", weight=10),
        MonitorReleaseOperator(task_id="d"),
    ):
        for field in operator.template_fields:
            assert hasattr(operator, field), (type(operator).__name__, field)


def test_aws_operators_use_the_configured_connection_and_region_unless_given_theirs():
    for operator in (ExecuteChangeSetOperator(task_id="a"), AmplifyReleaseOperator(task_id="b")):
        assert operator.aws_settings(CFG) == (CFG.connections.aws, CFG.region)
    given = AmplifyReleaseOperator(task_id="c", aws_conn_id="aws_other", region_name="eu-west-3")
    assert given.aws_settings(CFG) == ("aws_other", "eu-west-3")
    # Their triggers build clients from the connection alone: TLS and botocore settings go there.
    with pytest.raises(ValueError, match="connection's extras"):
        ExecuteChangeSetOperator(task_id="d", verify=False)


def test_traffic_steps_retry_a_lost_worker_but_never_a_breach(dag):
    from airflow.sdk.exceptions import AirflowFailException

    for step in CFG.traffic.steps:
        task = dag.get_task(f"deploy_frontend.shift_traffic_{step.weight}")
        assert task.retries == 2 and task.retry_delay.total_seconds() == 5, task.task_id
    # A breach fails the step whatever its retries: a retry would send users to the bad version again.
    assert issubclass(MetricsUnhealthy, AirflowFailException)
