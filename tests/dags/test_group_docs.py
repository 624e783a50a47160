"""Each phase group's doc (``doc_md``, shown in the UI) carries the numbers of the configuration the
DAG was built from: two configurations with different numbers give two different docs."""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk import DAG
from airflow.serialization.serialized_objects import DagSerialization

from deployment.config import DeploymentConfig, load_config
from deployment.docs import duration, number
from deployment.phases import (
    approval_gate,
    backup,
    deploy_frontend,
    deploy_infrastructure,
    monitoring,
    notify,
    pre_deployment_validation,
    rollback,
    smoke_tests,
    validate_infrastructure,
)
from deployment.run_contract import release_params

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
PHASES = {
    pre_deployment_validation.GROUP_ID: (
        pre_deployment_validation,
        pre_deployment_validation.pre_deployment_validation_group,
    ),
    approval_gate.GROUP_ID: (approval_gate, approval_gate.approval_gate_group),
    backup.GROUP_ID: (backup, backup.backup_group),
    validate_infrastructure.GROUP_ID: (
        validate_infrastructure,
        validate_infrastructure.validate_infrastructure_group,
    ),
    deploy_infrastructure.GROUP_ID: (
        deploy_infrastructure,
        deploy_infrastructure.deploy_infrastructure_group,
    ),
    deploy_frontend.GROUP_ID: (deploy_frontend, deploy_frontend.deploy_frontend_group),
    smoke_tests.GROUP_ID: (smoke_tests, smoke_tests.smoke_tests_group),
    monitoring.GROUP_ID: (monitoring, monitoring.monitoring_group),
    notify.GROUP_ID: (notify, notify.notify_group),
    rollback.GROUP_ID: (rollback, rollback.rollback_group),
}
PRODUCTION, SANDBOX = load_config("production"), load_config("sandbox")


def variant(cfg: DeploymentConfig) -> DeploymentConfig:
    """``cfg`` with the numbers production and sandbox share changed: approvals, checks, thresholds."""
    return cfg.model_copy(
        update={
            "approvals": cfg.approvals.model_copy(update={"required": 1}),
            "smoke_tests": cfg.smoke_tests.model_copy(
                update={"checks": cfg.smoke_tests.checks[:2], "timeout_seconds": 7.5}
            ),
            "thresholds": cfg.thresholds.model_copy(
                update={"error_rate_percent": 2.5, "latency_ms": 750.0, "min_requests_per_poll": 11}
            ),
            "stack": cfg.stack.model_copy(update={"name": "other-stack"}),
            "timings": cfg.timings.model_copy(update={"monitoring_seconds": 5400}),
        }
    )


CONFIGS = {"production": PRODUCTION, "sandbox": SANDBOX, "variant": variant(SANDBOX)}


def build(name: str, cfg: DeploymentConfig) -> DAG:
    with DAG(f"group_docs_{name}", schedule=None, params=release_params()) as dag:
        for _, factory in PHASES.values():
            factory(cfg)
    return dag


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def built(request):
    cfg = CONFIGS[request.param]
    return cfg, build(request.param, cfg)


def doc(dag: DAG, group_id: str) -> str:
    text = dag.task_group_dict[group_id].doc_md
    assert text, f"group {group_id} has no doc_md"
    return text


def test_the_configurations_differ_where_the_docs_are_checked():
    # Otherwise the tests below could pass on docs that hard-code production's numbers.
    p, s, v = PRODUCTION, SANDBOX, CONFIGS["variant"]
    assert p.timings.monitoring_seconds != s.timings.monitoring_seconds
    assert p.timings.wait_timer_seconds != s.timings.wait_timer_seconds
    assert p.timings.poll_interval_seconds != s.timings.poll_interval_seconds
    assert p.timings.approval_timeout_seconds != s.timings.approval_timeout_seconds
    assert [t.hold_seconds for t in p.traffic.steps] != [t.hold_seconds for t in s.traffic.steps]
    assert p.thresholds.latency_p95_ms != s.thresholds.latency_p95_ms
    assert p.thresholds.latency_p99_ms != s.thresholds.latency_p99_ms
    assert v.approvals.required != s.approvals.required
    assert len(v.smoke_tests.checks) != len(s.smoke_tests.checks)
    assert v.thresholds.error_rate_percent != s.thresholds.error_rate_percent


def test_durations_read_as_people_write_them():
    assert [duration(s) for s in (0, 6, 90, 300, 900, 3600, 172800, 10.0, 2.5)] == [
        "0 s",
        "6 s",
        "90 s",
        "5 min",
        "15 min",
        "1 h",
        "48 h",
        "10 s",
        "2.5 s",
    ]
    assert [number(x) for x in (1.0, 0.25, 1000, 2.5)] == ["1", "0.25", "1000", "2.5"]


def test_every_group_has_a_short_doc_built_from_its_config(built):
    cfg, dag = built
    for group_id, (module, _) in PHASES.items():
        text = doc(dag, group_id)
        assert text == module.group_doc(cfg), group_id
        assert len(text.splitlines()) <= 8 and len(text) < 1000, group_id
        # TaskGroup reads a doc_md ending in ".md" as a file name.
        assert not text.endswith(".md"), group_id


def test_monitoring_doc_carries_the_watch(built):
    cfg, dag = built
    text, t = doc(dag, "monitoring"), cfg.thresholds
    assert f"for {duration(cfg.timings.monitoring_seconds)} after the release" in text
    assert f"one analysis every {duration(cfg.timings.poll_interval_seconds)}" in text
    assert f"error rate under {number(t.error_rate_percent)} %" in text
    assert f"p95 under {number(t.latency_p95_ms)} ms" in text
    assert f"p99 under {number(t.latency_p99_ms)} ms" in text
    low, high = t.traffic_band
    assert f"within {number(low)}x to {number(high)}x" in text
    assert f"fewer than {t.min_requests_per_poll} requests" in text


def test_frontend_doc_carries_every_traffic_step_and_its_hold(built):
    cfg, dag = built
    text, t = doc(dag, "deploy_frontend"), cfg.thresholds
    poll = cfg.timings.poll_interval_seconds
    holds = [
        duration(s.hold_seconds) if s.hold_seconds >= poll else f"one poll ({duration(poll)})"
        for s in cfg.traffic.steps
    ]
    assert " → ".join(f"{s.weight} % for {h}" for s, h in zip(cfg.traffic.steps, holds, strict=True)) in text
    assert f"judged every {duration(poll)}" in text
    assert f"up to {duration(cfg.timings.amplify_timeout_seconds)}" in text
    assert f"error rate under {number(t.error_rate_percent)} %" in text
    assert f"p95 under {number(t.latency_p95_ms)} ms" in text
    assert f"p99 under {number(t.latency_p99_ms)} ms" in text
    # Each step's own task says its hold too.
    for step, hold in zip(cfg.traffic.steps, holds, strict=True):
        task = dag.get_task(f"deploy_frontend.{deploy_frontend.step_task_id(step.weight)}")
        assert f"Send {step.weight} % of traffic to the new colour, then hold it for {hold} " in task.doc_md


def test_approval_doc_carries_approvals_deadline_and_wait_timer(built):
    cfg, dag = built
    text, t = doc(dag, "approval_gate"), cfg.timings
    assert f"{cfg.approvals.required} of the {len(cfg.approvals.approvers)} configured approvers" in text
    assert f"Deadline: {duration(t.approval_timeout_seconds)} from the first request" in text
    assert f"reminded after {duration(t.approval_timeout_seconds // 2)}" in text
    assert f"Wait timer: {duration(t.wait_timer_seconds)} after the last approval" in text
    assert duration(t.wait_timer_seconds) in dag.get_task("approval_gate.wait_timer").doc_md


def test_smoke_doc_names_every_check(built):
    cfg, dag = built
    text, checks = doc(dag, "smoke_tests"), cfg.smoke_tests.checks
    assert f"{len(checks)} checks" in text
    assert ", ".join(f"`{c.name}`" for c in checks) in text
    assert f"timing out after {duration(cfg.smoke_tests.timeout_seconds)}" in text
    assert f"the {len(checks)} smoke checks pass on the stable colour" in doc(dag, "rollback")


def test_the_other_groups_carry_their_numbers(built):
    cfg, dag = built
    t, timings = cfg.thresholds, cfg.timings
    validation = doc(dag, "pre_deployment_validation")
    assert f"over the last {duration(timings.staging_window_seconds)}" in validation
    assert f"under {number(t.error_rate_percent)} % and its mean latency under {number(t.latency_ms)} ms" in (
        validation
    )
    tables = cfg.dynamodb.tables
    assert f"each of the {len(tables)} DynamoDB table(s)" in doc(dag, "backup")
    assert all(f"`{table}`" in doc(dag, "backup") for table in tables)
    assert f"up to {duration(timings.stack_timeout_seconds)} until AVAILABLE" in doc(dag, "backup")
    assert f"stack `{cfg.stack.name}`" in doc(dag, "validate_infrastructure")
    infra = doc(dag, "deploy_infrastructure")
    assert f"stack `{cfg.stack.name}`" in infra
    assert f"up to {duration(timings.stack_timeout_seconds)} for `UPDATE_COMPLETE`" in infra
    assert f"`{cfg.alarms.prefix}*`" in infra
    text = doc(dag, "notify")
    assert f"retried {notify.RETRIES} times, {duration(timings.poll_interval_seconds)} apart" in text
    assert f"email to {len(cfg.notifications.stakeholder_emails)} stakeholder" in text
    assert f"waited for up to {duration(timings.stack_timeout_seconds)}" in doc(dag, "rollback")


def test_the_two_configurations_give_two_docs():
    docs = {name: build(name, cfg) for name, cfg in CONFIGS.items()}
    production, sandbox, changed = (docs[n].task_group_dict for n in ("production", "sandbox", "variant"))
    for group_id in ("pre_deployment_validation", "approval_gate", "deploy_frontend", "monitoring", "notify"):
        assert production[group_id].doc_md != sandbox[group_id].doc_md, group_id
    assert "15 min after the release" in production["monitoring"].doc_md
    assert "8 s after the release" in sandbox["monitoring"].doc_md
    assert "90 min after the release" in changed["monitoring"].doc_md
    assert (
        "10 % for 5 min → 50 % for 5 min → 100 % for one poll (1 min)" in production["deploy_frontend"].doc_md
    )
    assert "10 % for 6 s → 50 % for 6 s → 100 % for one poll (2 s)" in sandbox["deploy_frontend"].doc_md
    # What production and sandbox share, the variant changes: the docs follow it, not a constant.
    for group_id in PHASES:
        if group_id != "notify":  # its retries, channels and addresses are sandbox's
            assert changed[group_id].doc_md != sandbox[group_id].doc_md, group_id
    assert "1 of the 3 configured approvers" in changed["approval_gate"].doc_md
    assert "2 checks" in changed["smoke_tests"].doc_md


def test_the_release_dag_shows_each_phase_doc_in_the_ui():
    """deploy_production as the DAG processor loads it: every group's doc survives serialization."""
    bag = DagBag(dag_folder=str(DAGS_DIR / "deploy_production.py"))
    assert not bag.import_errors
    dag = bag.dags["deploy_production"]
    cfg = load_config()
    serialized = DagSerialization.from_dict(DagSerialization.to_dict(dag))
    assert set(dag.task_group_dict) == set(PHASES)
    for group_id, (module, _) in PHASES.items():
        assert dag.task_group_dict[group_id].doc_md == module.group_doc(cfg), group_id
        assert serialized.task_group_dict[group_id].doc_md == module.group_doc(cfg), group_id
