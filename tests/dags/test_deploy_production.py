"""The wiring of deploy_production: phase order, the rollback's reach, the run's single leaf."""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk import TriggerRule

from deployment.release.phase_registry import GROUP_IDS

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
PHASES = list(GROUP_IDS)
CHANGING = PHASES[2:8]


@pytest.fixture(scope="module")
def dag():
    bag = DagBag(dag_folder=str(DAGS_DIR / "deploy_production.py"))
    assert not bag.import_errors
    return bag.dags["deploy_production"]


def group_of(task_id: str) -> str:
    return task_id.split(".", 1)[0]


def test_phases_run_in_the_spec_order(dag):
    for earlier, later in zip(PHASES, PHASES[1:], strict=False):
        later_tasks = [t for t in dag.tasks if group_of(t.task_id) == later]
        upstream_groups = {
            group_of(u) for t in later_tasks for u in t.upstream_task_ids if group_of(u) != later
        }
        assert upstream_groups == {earlier}, f"{later} starts after {upstream_groups}, not {earlier}"


def test_every_task_that_changes_production_reaches_the_rollback(dag):
    plan = dag.get_task("rollback.plan")
    assert plan.trigger_rule == TriggerRule.ONE_FAILED
    changing = {t.task_id for t in dag.tasks if group_of(t.task_id) in CHANGING}
    assert changing and changing <= plan.upstream_task_ids
    assert not {u for u in plan.upstream_task_ids if group_of(u) not in CHANGING}, (
        "only phases 3-8 may start a rollback: not validation, approval or notifications"
    )


def test_the_outcome_sees_every_task_but_the_failure_notice_beside_it(dag):
    # "Deployment failed" is a notice: it runs beside the outcome (off a successful release's
    # path) and never changes what the outcome reports.
    assert sorted(t.task_id for t in dag.leaves) == ["announce_failure", "record_outcome"]
    outcome, failure = dag.get_task("record_outcome"), dag.get_task("announce_failure")
    assert outcome.trigger_rule == failure.trigger_rule == TriggerRule.ALL_DONE
    upstream = {t.task_id for t in outcome.get_flat_relatives(upstream=True)}
    assert upstream == {t.task_id for t in dag.tasks} - {"record_outcome", "announce_failure"}
    before_failure = {t.task_id for t in failure.get_flat_relatives(upstream=True)}
    assert before_failure >= {"notify.record_metrics", "rollback.record_rollback"}
    assert "approval_gate.remind_approvers" in upstream


def test_a_release_never_runs_beside_a_rollback(dag):
    # record_release refuses while a manual rollback runs (tests/unit/deployment/phases/test_reruns_tasks.py)
    assert [t.task_id for t in dag.roots] == ["record_release"]
    assert dag.max_active_runs == 1


def test_every_group_and_task_is_documented(dag):
    for group_id in PHASES + ["rollback"]:
        group = dag.task_group_dict[group_id]
        assert group.tooltip, f"group {group_id} has no tooltip"
    undocumented = [t.task_id for t in dag.tasks if not (t.doc_md or t.doc or getattr(t, "doc", None))]
    assert undocumented == []
