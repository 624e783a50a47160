"""A rollback owns only its attempt: nothing is undone once production runs another release's changes."""

from __future__ import annotations

from deployment.rollback.ownership import foreign_changes

VERSION = "v1.1.0"
RECORD = {
    "infrastructure": {"changed": True, "stack_template_sha256": "a" * 64},
    "frontend": {"live_colour_before": "blue", "target_colour": "green", "amplify_job": {"job_id": "7"}},
}


def _live(**changes):
    state = {
        "weights": {"blue": 0, "green": 100},
        "stack_version": VERSION,
        "stack_template_sha256": "a" * 64,
        "target_job_id": "7",
    }
    return {**state, **changes}


def test_what_this_run_put_there_is_its_to_undo():
    assert foreign_changes(VERSION, RECORD, _live(), stack_differs=True, stable="blue") == []
    split = _live(weights={"blue": 90, "green": 10})
    assert foreign_changes(VERSION, RECORD, split, stack_differs=True, stable="blue") == []


def test_production_back_on_the_backup_is_nobodys_change():
    back = _live(weights={"blue": 100, "green": 0}, stack_version="v1.0.0")
    assert foreign_changes(VERSION, RECORD, back, stack_differs=False, stable="blue") == []


def test_a_newer_release_of_the_same_version_is_not_undone():
    newer = _live(target_job_id="9")  # the same build, rebuilt and shifted by another run
    (reason,) = foreign_changes(VERSION, RECORD, newer, stack_differs=True, stable="blue")
    assert "serves Amplify job 9, not this run's job 7" in reason


def test_another_version_or_another_update_of_the_stack_is_not_undone():
    (other,) = foreign_changes(
        VERSION, RECORD, _live(stack_version="v1.2.0"), stack_differs=True, stable="blue"
    )
    assert "the stack runs v1.2.0" in other
    (updated,) = foreign_changes(
        VERSION, RECORD, _live(stack_template_sha256="b" * 64), stack_differs=True, stable="blue"
    )
    assert "another update ran since" in updated
