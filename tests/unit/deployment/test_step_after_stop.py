"""A traffic step's retry never puts viewers back on a build that was taken off within its attempt."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowFailException

from deployment.guards import refuse_step_after_stop

WANTED, STABLE = {"green": 10, "blue": 90}, {"green": 0, "blue": 100}


def _step(outcome: str, attempt: int = 1) -> dict:
    return {
        "weight": 10,
        "weights": WANTED,
        "applied_at": "2026-12-06T20:00:00+00:00",
        "outcome": outcome,
        "attempt": attempt,
    }


@pytest.mark.parametrize("outcome", ["watching", "breach", "insufficient_data"])
def test_a_retry_after_the_traffic_was_taken_off_fails(outcome):
    # "watching": the watch restored traffic on a breach, and its worker died before recording it
    with pytest.raises(AirflowFailException, match="taken off the new colour"):
        refuse_step_after_stop(_step(outcome), 1, STABLE, WANTED)


def test_a_retry_while_the_weights_hold_watches_again():
    refuse_step_after_stop(_step("watching"), 1, WANTED, WANTED)


def test_a_new_attempt_or_a_first_try_shifts():
    refuse_step_after_stop(_step("breach", attempt=1), 2, STABLE, WANTED)
    refuse_step_after_stop(None, 1, STABLE, WANTED)
    refuse_step_after_stop({**_step("breach"), "attempt": None}, 1, STABLE, WANTED)
