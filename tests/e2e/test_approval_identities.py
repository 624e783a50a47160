"""Who may approve and who hears of it, on the real engine: two releases that never change production.

The first release is triggered by a person (bob) for an author (GitHub ``Alice``) whose rc
release was created by the sandbox's bot, mapped to ``admin`` for this test: all three
get 403, a second approval marked successful by hand does not open the gate, and every
notice before a change reaches the sandbox's recorders escaped. The second runs out the
gate's one deadline (compressed to seconds): no approval opens it afterwards.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

import pytest
import requests
from _e2e import expect_api_error, release_conf

from airflow_stack.env import CI_USER, RELEASE_MANAGER

pytestmark = pytest.mark.e2e

FIRST, SECOND = "approval_gate.first_approval", "approval_gate.second_approval"
RELEASE_TIMEOUT = 240
SANDBOX_PEOPLE = [
    {"github": "Alice", "airflow": "alice", "slack": "U01ALICE", "email": "alice@example.test"},
    {"github": "Bob", "airflow": "bob", "slack": "U01BOB", "email": "bob@example.test"},
    {"github": "Carol", "airflow": "carol", "slack": "U01CAROL", "email": "carol@example.test"},
    {"github": "Dave", "airflow": "dave", "slack": "U01DAVE", "email": "dave@example.test"},
]
SHOUT = "<!channel>"
DEADLINE = re.compile(r"Deadline for the whole gate: ([^*\s]+)\*\*")


def _wait(call, *args, **kwargs):
    """``call`` again while the API server is too slow to answer (a loaded 2-core machine)."""
    for _ in range(10):
        try:
            return call(*args, **kwargs)
        except requests.Timeout:
            time.sleep(2)
    return call(*args, **kwargs)


def _recorded(sandbox, service: str) -> list[dict]:
    return sandbox.control("GET", f"/recorded/{service}")


def _assigned(client, run_id: str, task_id: str) -> set[str]:
    return {u["name"] for u in client.hitl_detail(run_id, task_id)["assigned_users"]}


def test_excluded_people_get_403_and_a_hand_marked_approval_opens_nothing(local, sandbox, stack_config):
    people = [*SANDBOX_PEOPLE, {"github": "sandbox-bot", "airflow": "admin"}]  # the rc's creator
    approvers = [{"id": u, "name": u.title()} for u in ("alice", "bob", "carol", "dave", "admin")]
    before = {s: len(_recorded(sandbox, s)) for s in ("slack", "smtp", "statuspage")}
    with stack_config.overridden(people=people, approvals={"approvers": approvers}):
        ci = local[CI_USER]
        conf = release_conf(
            author="Alice",
            emergency={"ignore_alarms": [f"{SHOUT} alarm"], "reason": f"{SHOUT} drill of the escaping"},
        )
        run_id = local["bob"].trigger(conf)["dag_run_id"]  # bob may set emergency flags
        _wait(ci.wait_for_task, run_id, FIRST, {"awaiting_input"}, timeout=RELEASE_TIMEOUT)
        assert _assigned(ci, run_id, FIRST) == {"carol", "dave"}
        for excluded in ("alice", "bob", "admin"):  # the author, the triggering person, the rc creator
            expect_api_error(lambda who=excluded: local[who].respond(run_id, FIRST, "Approve"), 403)
        local["carol"].respond(run_id, FIRST, "Approve")
        _wait(ci.wait_for_task, run_id, SECOND, {"awaiting_input"}, timeout=90)
        assert _assigned(ci, run_id, SECOND) == {"dave"}
        expect_api_error(lambda: local["carol"].respond(run_id, SECOND, "Approve"), 403)

        local["admin"].request(
            "PATCH",
            f"/dags/{ci.dag_id}/dagRuns/{run_id}/taskInstances/{SECOND}",
            json={"new_state": "success"},
        )
        _wait(ci.wait_for_run, run_id, {"failed"}, timeout=RELEASE_TIMEOUT)
    states = ci.task_states(run_id)
    assert states["approval_gate.record_approvals"] == "failed", states
    assert all(s in ("upstream_failed", None) for t, s in states.items() if t.startswith("backup.")), states
    assert "marked by hand does not count" in ci.task_log(run_id, "approval_gate.record_approvals", 1)

    texts = [m["text"] for m in _recorded(sandbox, "slack")[before["slack"] :]]
    assert not any(SHOUT in text for text in texts), "a user's <!channel> reached Slack as a mention"
    started = [t for t in texts if "Deployment started" in t]
    assert len(started) == 1 and "&lt;!channel&gt; drill of the escaping" in started[0]
    asked = [t for t in texts if "waits for your approval" in t]
    assert len(asked) == 2 and {"<@U01CAROL>", "<@U01DAVE>"} <= set(asked[0].split())
    assert "<@U01DAVE>" in asked[1] and "<@U01CAROL>" not in asked[1] and "/required_actions" in asked[1]
    (failed,) = [t for t in texts if "did not reach" in t]
    assert "approval_gate.record_approvals" in failed and "Nothing in production was changed" in failed
    mails = _recorded(sandbox, "smtp")[before["smtp"] :]
    assert [m["rcpt_tos"] for m in mails if m["subject"].startswith("Approval needed")] == [
        ["carol@example.test", "dave@example.test"],
        ["dave@example.test"],
    ]
    # The gate never opened, so production was never about to change: the status page heard nothing.
    assert _recorded(sandbox, "statuspage")[before["statuspage"] :] == []


def test_no_approval_opens_the_gate_after_its_deadline(local, sandbox, stack_config):
    ci = local[CI_USER]
    before = len(_recorded(sandbox, "slack"))
    with stack_config.overridden(timings={"approval_timeout_seconds": 20}):
        run_id = ci.trigger(release_conf())["dag_run_id"]
        _wait(ci.wait_for_task, run_id, FIRST, {"awaiting_input"}, timeout=RELEASE_TIMEOUT)
        local["alice"].respond(run_id, FIRST, "Approve")
        # On a loaded machine the deadline may pass before the second request is made: then it is refused.
        second = _wait(ci.wait_for_task, run_id, SECOND, {"awaiting_input", "failed"}, timeout=150)
        if second["state"] == "awaiting_input":
            body = ci.hitl_detail(run_id, SECOND)["body"]
            deadline = datetime.fromisoformat(DEADLINE.search(body)[1])
            time.sleep(max(0.0, (deadline - datetime.now(UTC)).total_seconds()) + 1)
            _wait(ci.wait_for_task, run_id, SECOND, {"failed"}, timeout=150)
            try:  # Airflow may still store a late answer, but the task it was for has failed
                local["bob"].respond(run_id, SECOND, "Approve")
            except Exception:  # noqa: BLE001 - a refusal is just as good
                pass
        _wait(ci.wait_for_run, run_id, {"failed"}, timeout=RELEASE_TIMEOUT)
        # A cleared request is not asked again: the gate's deadline has passed.
        local[RELEASE_MANAGER].clear(run_id, [SECOND], include_downstream=True)
        _wait(ci.wait_for_run, run_id, {"failed"}, timeout=RELEASE_TIMEOUT)
    states = ci.task_states(run_id)
    assert states[SECOND] == "failed" and states["approval_gate.verify_gate"] != "success", states
    tries = {ti["task_id"]: ti["try_number"] for ti in ci.task_instances(run_id)}
    assert "has passed" in ci.task_log(run_id, SECOND, tries[SECOND])
    texts = [m["text"] for m in _recorded(sandbox, "slack")[before:]]
    (failed,) = [t for t in texts if "did not reach" in t]
    assert SECOND in failed
