"""Reruns and rollbacks that stay right, against moto and the Amplify emulator.

Each test guards against one way a rerun or a rollback can go wrong:
- a rerun of ``backup`` recording the already-changed state as the backup;
- a rerun of ``backup`` failing on the reused stack snapshot (``KeyError: 'uri'``);
- a rerun of ``restore_stack`` cancelling its own rollback update;
- the rollback's metric check reading the newest window, ignoring ``metrics.lag_seconds``;
- a monitoring-only rerun after a rollback judging (and passing) the old version;
- the plan reused from the first attempt instead of made from what is live now;
- a Slack outage under ``skip_monitoring`` failing monitoring, and so rolling the release back.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from _release import PREVIOUS, RUN_ID, VERSION
from airflow.sdk.exceptions import AirflowSkipException

from deployment import guards
from deployment.backup import take as backup
from deployment.rollback import cancel
from deployment.rollback import plan as rollback_plan
from deployment.rollback import stack as rollback_stack
from deployment.rollback import steps as rollback_steps
from deployment.traffic.route53 import set_weights, weights


def _take_backup(cfg, ledger):
    stack = backup.backup_stack(cfg, ledger)
    tables = backup.backup_tables(cfg, VERSION, RUN_ID, timeout=5)
    amplify = backup.tag_live_amplify(cfg, VERSION, RUN_ID, ledger)
    return backup.write_manifest(cfg, ledger, stack=stack, tables=tables, amplify=amplify)


def _deploy(cfg, aws, ledger, purpose="deploy"):
    """What deploy_infrastructure does: this run's change set for the release, executed."""
    from deployment.aws.change_sets import ensure_change_set
    from deployment.aws.cloudformation import release_template

    change_set = ensure_change_set(
        cfg, VERSION, RUN_ID, purpose, ledger=ledger, poll=0.1, packaged=release_template(cfg, ledger)
    )
    aws["cfn"].execute_change_set(StackName=cfg.stack.name, ChangeSetName=change_set["name"])


def _stack_version(cfg):
    from deployment.aws.cloudformation import deployed_version

    return deployed_version(cfg)


def _release_live(cfg, aws, ledger):
    """The release fully out: stack on VERSION, all traffic on green, the record saying so."""
    _deploy(cfg, aws, ledger)
    ledger.write("infrastructure", {"changed": True})
    ledger.write("frontend", {"live_colour_before": "blue", "target_colour": "green", "traffic_moved": True})
    set_weights(cfg, {"blue": 0, "green": 100})


# ------------------------------------------------------------------- backup
def test_a_rerun_of_backup_keeps_the_state_before_any_change(cfg, aws, ledger, amplify_emulator):
    first = _take_backup(cfg, ledger)
    assert first["amplify"]["colour"] == "blue" and first["previous_version"] == PREVIOUS
    # The release went out: traffic on green, green's branch carries the release.
    set_weights(cfg, {"blue": 0, "green": 100})
    amplify_emulator["emulator"].start_job(
        cfg.amplify.app_id, cfg.amplify.branches["green"], {"jobType": "RELEASE"}
    )
    import time

    time.sleep(0.1)
    again = _take_backup(cfg, ledger)
    assert again["amplify"]["colour"] == "blue"
    assert again["amplify"]["branches"] == first["amplify"]["branches"]
    assert ledger.read("backup")["amplify"]["colour"] == "blue"
    assert ledger.read("backup")["created_at"] == first["created_at"]


# -------------------------------------------------------------------- stack
class _OwnUpdateInProgress:
    """CloudFormation as a rerun of restore_stack finds it: its own redeploy still running."""

    def __init__(self, real):
        self.real = real
        self.cancelled = False
        self.calls = 0

    def describe_stacks(self, **kwargs):
        self.calls += 1
        stacks = self.real.describe_stacks(**kwargs)
        if self.calls <= 2:
            stacks["Stacks"][0]["StackStatus"] = "UPDATE_IN_PROGRESS"
        return stacks

    def cancel_update_stack(self, **kwargs):
        self.cancelled = True

    def __getattr__(self, name):
        return getattr(self.real, name)


def test_a_rerun_of_restore_stack_waits_for_its_own_update(cfg, aws, ledger, monkeypatch):
    manifest = _take_backup(cfg, ledger)
    _deploy(cfg, aws, ledger)
    rollback_stack.restore_stack(cfg, manifest, RUN_ID, timeout=10, poll=0.1, attempt=1, ledger=ledger)
    assert ledger.read(rollback_stack.EXECUTION_SECTION)["attempt"] == 1
    scripted = _OwnUpdateInProgress(aws["cfn"])
    monkeypatch.setattr("deployment.aws.cloudformation.client", lambda cfg, *a, **k: scripted)

    again = rollback_stack.restore_stack(
        cfg, manifest, RUN_ID, timeout=10, poll=0.05, attempt=1, ledger=ledger
    )

    assert scripted.cancelled is False
    assert "own redeploy" in again["actions"][0]
    assert again["redeployed"] is False and _stack_version(cfg) == PREVIOUS


# --------------------------------------------------------------------- plan
def test_the_plan_is_made_from_what_is_live_now(cfg, aws, ledger):
    manifest = _take_backup(cfg, ledger)
    # The record of this attempt says nothing moved yet, but production is half-changed.
    _deploy(cfg, aws, ledger)
    set_weights(cfg, {"blue": 90, "green": 10})
    record = {"backup": manifest}

    plan = rollback_plan.plan_from_record(cfg, record, rollback_plan.live_differences(cfg, manifest))

    assert plan["needed"] is True
    assert plan["undo"]["traffic"] is True and plan["undo"]["stack"] is True
    assert plan["stable_colour"] == "blue"


def test_last_resort_colour_comes_from_the_record_then_the_backup_then_the_router():
    assert rollback_plan.last_resort_colour({"frontend": {"live_colour_before": "green"}}, "blue") == "green"
    assert rollback_plan.last_resort_colour({"backup": {"amplify": {"colour": "blue"}}}, "green") == "blue"
    assert rollback_plan.last_resort_colour({}, "green") == "green"
    assert rollback_plan.last_resort_colour({}, None) is None


# ------------------------------------------------------------------ metrics
def test_the_rollback_metric_check_reads_the_published_window(cfg, aws, monkeypatch):
    from deployment.aws import cloudwatch_metrics as metrics

    lagged = cfg.model_copy(update={"metrics": cfg.metrics.model_copy(update={"lag_seconds": 60})})
    ends: list[datetime] = []
    real = metrics.fetch_sample

    def spy(cloudwatch, query, window, end=None, **kwargs):
        ends.append(query.window_end(end))
        return real(cloudwatch, query, window, end, **kwargs)

    monkeypatch.setattr("deployment.aws.cloudwatch_metrics.fetch_sample", spy)
    rollback_steps.metrics_health(lagged, attempts=1, poll=0)
    assert ends and ends[0] <= datetime.now(UTC) - timedelta(seconds=59)


# ------------------------------------------------------------------- guards
def test_the_guard_passes_only_while_the_release_is_live(cfg, aws, ledger):
    _take_backup(cfg, ledger)
    _release_live(cfg, aws, ledger)
    assert guards.release_problems(cfg, ledger) == []

    set_weights(cfg, {"blue": 50, "green": 50})
    assert any("not all on green" in p for p in guards.release_problems(cfg, ledger))
    set_weights(cfg, {"blue": 0, "green": 100})

    ledger.write("rollback.plan", {"needed": True, "attempt": 1})
    with pytest.raises(guards.ReleaseNotLive, match="validate_infrastructure"):
        guards.check_release_live(cfg, ledger, "monitoring")


def test_the_guard_reads_the_stack_s_state_not_its_template(cfg, aws, ledger):
    """Every notice and smoke check asks the guard: DescribeStacks, never GetTemplate (a large
    template's body is not needed to know the version and status)."""
    from deployment.aws import cloudformation as cf

    _take_backup(cfg, ledger)
    _release_live(cfg, aws, ledger)
    called: list[str] = []

    def record(model, **_):
        called.append(model.name)

    events = cf.client(cfg).meta.events
    events.register("before-call.cloudformation", record)
    try:
        assert guards.release_problems(cfg, ledger) == []
    finally:
        events.unregister("before-call.cloudformation", record)
    assert called == ["DescribeStacks"]


def test_a_monitoring_rerun_after_a_rollback_is_refused(cfg, aws, ledger):
    """Rolled back, then only monitoring cleared, at the task level: the rerun is refused."""
    from airflow.sdk.exceptions import AirflowFailException

    from deployment.phases.monitoring import GuardedMonitorOperator

    manifest = _take_backup(cfg, ledger)
    _release_live(cfg, aws, ledger)
    ledger.write("rollback.plan", {"needed": True, "attempt": 1})
    rollback_steps.restore_traffic(cfg, "blue", wait_seconds=1)
    rollback_stack.restore_stack(cfg, manifest, RUN_ID, timeout=10, poll=0.1)

    operator = GuardedMonitorOperator(task_id="watch_metrics")
    context = {"params": {"version": VERSION}, "run_id": RUN_ID}
    with pytest.raises(AirflowFailException, match=f"{VERSION} is not what production serves"):
        operator.execute(context)
    assert ledger.read("monitoring") is None  # nothing watched, nothing recorded as healthy


def test_failed_smoke_checks_are_recorded_even_when_the_rollback_already_put_traffic_back(cfg, aws, ledger):
    """The rollback starts on the first failed check and can restore traffic before ``record_results``
    runs; the failures must still be recorded, or the record has no ``smoke_tests`` section."""
    from deployment.phases.smoke_tests import SmokeTestsFailed, check_section, gather

    _take_backup(cfg, ledger)
    _release_live(cfg, aws, ledger)
    for check in cfg.smoke_tests.checks:
        ledger.write(check_section(check.name), {"name": check.name, "ok": False, "error": "HTTP 500"})
    ledger.write("rollback.plan", {"needed": True, "attempt": 1})
    set_weights(cfg, {"blue": 100, "green": 0})

    with pytest.raises(SmokeTestsFailed, match="did not all pass"):
        gather(cfg, ledger)
    recorded = ledger.read("smoke_tests")
    assert recorded["passed"] is False
    assert recorded["failed"] == sorted(c.name for c in cfg.smoke_tests.checks)


def test_passing_smoke_checks_are_not_recorded_as_a_pass_once_the_release_is_not_live(cfg, aws, ledger):
    from deployment.phases.smoke_tests import SmokeTestsFailed, check_section, gather

    _take_backup(cfg, ledger)
    _release_live(cfg, aws, ledger)
    for check in cfg.smoke_tests.checks:
        ledger.write(check_section(check.name), {"name": check.name, "ok": True})
    set_weights(cfg, {"blue": 100, "green": 0})

    with pytest.raises(SmokeTestsFailed, match="not what production serves"):
        gather(cfg, ledger)
    assert ledger.read("smoke_tests") is None


def test_a_new_attempt_is_refused_when_production_changed_since_the_approved_plan(cfg, aws, ledger):
    _take_backup(cfg, ledger)
    ledger.write("plan", {"release": {"previous_version": "v0.9.0", "live_colour": "blue"}})
    with pytest.raises(guards.ProductionChanged, match="approved plan was made against v0.9.0"):
        guards.open_attempt(cfg, ledger, 1)
    assert ledger.read(guards.ATTEMPT) is None


def test_attempts_are_numbered_and_a_new_one_clears_the_guard(cfg, aws, ledger):
    _take_backup(cfg, ledger)
    ledger.write("plan", {"release": {"previous_version": PREVIOUS, "live_colour": "blue"}})
    assert guards.open_attempt(cfg, ledger, 1)["id"] == 1
    assert guards.open_attempt(cfg, ledger, 1)["reused"] is True
    ledger.write("rollback.plan", {"needed": True, "attempt": 1})  # attempt 1 rolled back
    assert guards.open_attempt(cfg, ledger, 2)["id"] == 2
    assert [a["id"] for a in ledger.read(guards.ATTEMPTS)] == [1, 2]
    _release_live(cfg, aws, ledger)
    assert guards.release_problems(cfg, ledger) == []


def test_a_slack_outage_under_skip_monitoring_does_not_fail_monitoring(cfg, aws, ledger, monkeypatch):
    from deployment.phases.monitoring import GuardedMonitorOperator

    _take_backup(cfg, ledger)
    _release_live(cfg, aws, ledger)

    def outage(cfg, text):
        raise ConnectionError("Slack webhook unreachable")

    monkeypatch.setattr("deployment.notifications.announce.announce_team", outage)
    params = {"version": VERSION, "emergency": {"skip_monitoring": True, "reason": "hotfix for incident 42"}}
    with pytest.raises(AirflowSkipException, match="hotfix for incident 42"):
        GuardedMonitorOperator(task_id="watch_metrics").execute({"params": params, "run_id": RUN_ID})
    assert ledger.read("monitoring")["announced"] is False
    assert weights(cfg) == {"blue": 0, "green": 100}


def test_the_skipped_monitoring_announcement_escapes_the_reason(cfg, aws, ledger, monkeypatch):
    from deployment.phases.monitoring import GuardedMonitorOperator

    _take_backup(cfg, ledger)
    _release_live(cfg, aws, ledger)
    sent: list[str] = []
    monkeypatch.setattr(
        "deployment.notifications.announce.announce_team", lambda cfg, text: sent.append(text)
    )
    params = {"version": VERSION, "emergency": {"skip_monitoring": True, "reason": "<!channel> hotfix <b|x>"}}
    with pytest.raises(AirflowSkipException):
        GuardedMonitorOperator(task_id="watch_metrics").execute({"params": params, "run_id": RUN_ID})
    (text,) = sent
    assert "Reason: &lt;!channel&gt; hotfix &lt;b|x&gt;" in text


# ------------------------------------------------------------- cancellation
def test_a_step_cancelled_while_traffic_is_split_puts_it_all_back(cfg, aws, ledger, monkeypatch):
    """What the watch trigger's on_kill runs when the step (or its run) is marked failed by hand."""
    sent: list[str] = []
    monkeypatch.setattr(
        "deployment.notifications.announce.announce_team", lambda cfg, text: sent.append(text)
    )
    _take_backup(cfg, ledger)
    ledger.write("conf", {"version": VERSION, "run_id": RUN_ID})
    set_weights(cfg, {"blue": 90, "green": 10})

    done = cancel.restore_after_cancel(cfg, RUN_ID, "deploy_frontend.shift_traffic_10", "blue")

    assert weights(cfg) == {"blue": 100, "green": 0}
    assert done["weights_before"] == {"blue": 90, "green": 10}
    assert ledger.read("cancellation")["task_id"] == "deploy_frontend.shift_traffic_10"
    assert cancel.restore_after_cancel(cfg, RUN_ID, "deploy_frontend.shift_traffic_10", "blue") is None
    assert len(sent) == 1 and "back on blue" in sent[0]


def test_a_later_look_that_restores_again_keeps_what_the_cancel_found_first(cfg, aws, ledger, monkeypatch):
    """The cancel listener looks again after its first restore: a task not yet killed may have moved
    traffic (or the API alias) meanwhile. Its second restore is listed; the record keeps what
    production served when the cancel began."""
    monkeypatch.setattr("deployment.notifications.announce.announce_team", lambda cfg, text: None)
    _take_backup(cfg, ledger)
    ledger.write("conf", {"version": VERSION, "run_id": RUN_ID})
    step = "deploy_frontend.shift_traffic_10"
    set_weights(cfg, {"blue": 90, "green": 10})
    cancel.restore_after_cancel(cfg, RUN_ID, step, "blue", split_only=False)
    set_weights(cfg, {"blue": 50, "green": 50})  # the killed task's last move

    cancel.restore_after_cancel(cfg, RUN_ID, step, "blue", split_only=False)

    assert weights(cfg) == {"blue": 100, "green": 0}
    record = ledger.read("cancellation")
    assert record["weights_before"] == {"blue": 90, "green": 10}
    assert [r["weights_before"] for r in record["later_restores"]] == [{"blue": 50, "green": 50}]


def test_of_two_restorers_the_record_keeps_what_the_first_to_look_saw():
    """Two restorers at once (the listener's looks): the one that looked first, at the split,
    writes its record last."""
    step = {"run_id": RUN_ID, "attempt": 1, "traffic": {}, "api_alias_before": None, "restored_at": None}
    wrote_first = {**step, "observed_at": "20:17:58.2", "weights_before": {"blue": 100, "green": 0}}
    looked_first = {**step, "observed_at": "20:17:57.9", "weights_before": {"blue": 0, "green": 100}}

    record = cancel._after_earlier(wrote_first, looked_first)

    assert record["weights_before"] == {"blue": 0, "green": 100}
    assert [r["weights_before"] for r in record["later_restores"]] == [{"blue": 100, "green": 0}]


def test_a_cancelled_monitoring_leaves_a_release_at_100_percent_alone(cfg, aws, ledger):
    set_weights(cfg, {"blue": 0, "green": 100})
    assert cancel.restore_after_cancel(cfg, RUN_ID, "monitoring.watch_metrics", "blue") is None
    assert weights(cfg) == {"blue": 0, "green": 100}
