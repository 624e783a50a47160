"""Cancel at any instant: a release marked failed by hand goes back to the stable colour."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from _release import RUN_ID, VERSION

from deployment.rollback import cancel_listener
from deployment.rollback.cancel_listener import cancelled_stable_colour, restore_cancelled
from deployment.traffic.route53 import set_weights, weights

MOVED = {"frontend": {"traffic_moved": True, "live_colour_before": "blue", "target_colour": "green"}}


@pytest.mark.parametrize(
    ("record", "stable"),
    [
        (MOVED, "blue"),  # between steps, in the smoke tests, while monitoring
        ({"frontend": {"live_colour_before": "blue"}}, None),  # no weight was ever changed
        ({**MOVED, "monitoring": {"outcome": "healthy"}}, None),  # the release was judged
        ({**MOVED, "monitoring": {"skipped": True}}, None),
        ({**MOVED, "monitoring": {"outcome": "watching"}}, "blue"),
    ],
)
def test_what_a_cancel_undoes(record, stable):
    assert cancelled_stable_colour(record) == stable


def test_a_run_cancelled_at_100_percent_before_it_was_judged_goes_back_to_stable(
    cfg, aws, ledger, monkeypatch
):
    sent: list[str] = []
    monkeypatch.setattr(
        "deployment.notifications.announce.announce_team", lambda cfg, text: sent.append(text)
    )
    ledger.write("conf", {"version": VERSION, "run_id": RUN_ID, "started_at": "2026-01-02T03:04:05+00:00"})
    ledger.write("frontend", MOVED["frontend"])
    set_weights(cfg, {"blue": 0, "green": 100})  # the smoke tests are running

    done = restore_cancelled(RUN_ID, "the run", looks=())

    assert weights(cfg) == {"blue": 100, "green": 0} and done["weights_before"] == {"blue": 0, "green": 100}
    assert ledger.read("cancellation")["task_id"] == "the run" and len(sent) == 1


def test_only_hand_marks_of_release_tasks_start_a_restore(monkeypatch):
    started: list[tuple] = []
    monkeypatch.setattr(cancel_listener, "_restore_in_background", lambda *args: started.append(args))
    manual = "TaskInstance's state was manually set to `failed`."
    ti = SimpleNamespace(dag_id="deploy_production", run_id=RUN_ID, task_id="smoke_tests.check_auth")
    cancel_listener.on_task_instance_failed(previous_state=None, task_instance=ti, error=manual)
    cancel_listener.on_task_instance_failed(previous_state="running", task_instance=ti, error="boom")
    notice = SimpleNamespace(dag_id="deploy_production", run_id=RUN_ID, task_id="notify.slack_team")
    cancel_listener.on_task_instance_failed(previous_state=None, task_instance=notice, error=manual)
    run = SimpleNamespace(dag_id="deploy_production", run_id=RUN_ID)
    cancel_listener.on_dag_run_failed(dag_run=run, msg="Dag Run's state was manually set to `failed`.")
    cancel_listener.on_dag_run_failed(dag_run=run, msg="task_failure")
    assert started == [
        ("deploy_production", RUN_ID, "smoke_tests.check_auth"),
        ("deploy_production", RUN_ID, "the run"),
    ]
