"""The proof at the point of change: each task that changes production proves the gate itself.

A checkpoint task is not a lock: whoever may edit task states can mark ``verify_gate``
successful, and whoever may write XCom can forge what it returned. So every task that
changes production (the backup, the change set's execution, the Amplify job, each traffic
step) runs :func:`prove_gate` before it does anything (Airflow's ``pre_execute`` hook, which
the task runner calls before ``execute`` and before every resumption; a resumption of the try
that already proved it reuses that proof). It reads evidence
that nobody able to edit task states or XCom can write:

- Airflow's own human-in-the-loop records of the approval tasks, every try of each, read
  over the public API as the pipeline's read-only user (:mod:`deployment.gate.airflow_api`);
- the run itself as Airflow's database holds it (``triggering_user_name``, the conf);
- the deployment record in S3 (the plan the requests showed, the gate's exclusions),
  written only by the pipeline's own AWS identity;
- Airflow's audit log, for hand changes to the run.

It proves that ``approvals.required`` distinct configured approvers answered Approve, none
of them the author, the triggering person or the rc creator; that no try of any approval was
rejected (a rejection sticks through clears: a new approval needs a new run); that each
request showed the plan and commit being deployed; that the wait timer has run from the last
answer; that any emergency flag is allowed for the triggering user; and that no task state or
XCom of the run was changed by hand (a clear is the documented retry: it is recorded, and does
not block). A task that cannot prove it fails without retry and changes nothing.
"""

from __future__ import annotations

import functools
import json
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig

APPROVE, REJECT = "Approve", "Reject"
# Audit-log events that change a run's task states or XComs by hand. A clear (the documented retry),
# a mark to failed (the documented cancel) and a note are only recorded.
HAND_CHANGES = frozenset(
    {
        "patch_task_instance",
        "patch_task_group_instances",
        "bulk_task_instances",
        "hand_task_state",  # deployment.gate.hand_marks: the bulk PATCH, which Airflow logs nothing for
        "patch_dag_run",
        "create_xcom_entry",
        "update_xcom_entry",
        "delete_xcom_entry",
    }
)
CLEARS = frozenset({"post_clear_task_instances", "clear_dag_run"})
PROOF_SECTION = "proof"
HAND_CHANGES_SECTION = "hand_changes"


class GateNotProven(AirflowFailException):
    """The task cannot prove the release was approved as it must be: it changes nothing."""


# ---------------------------------------------------------------- pure checks
def _user(detail: dict[str, Any]) -> dict[str, str]:
    user = detail.get("responded_by_user") or {}
    return {"id": str(user.get("id") or ""), "name": str(user.get("name") or "")}


def check_approvals(
    cfg: DeploymentConfig,
    history: dict[str, list[dict[str, Any]]],
    *,
    excluded: dict[str, str],
    plan_markdown: str,
    now: datetime,
    deadline: datetime | None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """The approvals the HITL records prove, and every reason the gate is not proven.

    :param history: approval task id → its HITL records, one per try, oldest first.
    :param excluded: lower-case Airflow username → why that person may not approve.
    """
    approvers, problems = [], []
    allowed = {a.lower() for a in cfg.approvals.ids()}
    for task_id, tries in history.items():
        for detail in tries:
            if REJECT in (detail.get("chosen_options") or []):
                who = _user(detail)["name"] or "someone"
                problems.append(
                    f"{task_id} was rejected by {who} at {detail.get('responded_at')}: a rejected release "
                    "stays rejected; trigger a new run to ask again"
                )
        latest = tries[-1] if tries else {}
        if not latest.get("response_received") or latest.get("chosen_options") != [APPROVE]:
            problems.append(f"{task_id} has no Approve answer in Airflow's records")
            continue
        user = _user(latest)
        name = user["name"].lower()
        if name not in allowed:
            problems.append(f"{task_id} was answered by {user['name']!r}, who is not a configured approver")
        if name in excluded:
            problems.append(
                f"{task_id} was answered by {user['name']!r}, who may not approve: {excluded[name]}"
            )
        if not (latest.get("body") or "").endswith(plan_markdown):
            problems.append(f"{task_id}'s request did not show the plan being deployed")
        responded = datetime.fromisoformat(str(latest["responded_at"]).replace("Z", "+00:00"))
        if deadline and responded > deadline:
            problems.append(f"{task_id} was answered after the gate's deadline {deadline.isoformat()}")
        approvers.append({"task": task_id, **user, "at": responded.isoformat()})
    ids = [a["id"] for a in approvers]
    if len(set(ids)) != len(ids):
        problems.append(f"the same person answered more than one approval: {[a['name'] for a in approvers]}")
    if len(history) < cfg.approvals.required or len(set(ids)) < cfg.approvals.required:
        problems.append(f"{len(set(ids))} distinct approvals proven, {cfg.approvals.required} required")
    if approvers and not problems:
        last = max(datetime.fromisoformat(a["at"]) for a in approvers)
        opens = last + timedelta(seconds=cfg.timings.wait_timer_seconds)
        if now < opens:
            problems.append(
                f"the wait timer runs until {opens.isoformat()} (the last answer plus the window)"
            )
    return approvers, problems


def exclusions(
    cfg: DeploymentConfig, author: str, triggering_user: str | None, recorded: dict[str, Any]
) -> dict[str, str]:
    """Who may not approve: the author and the triggering person (from the run), plus those the gate
    recorded (the rc creator, read from GitHub when the first request was made)."""
    excluded = {u.lower(): "; ".join(why) for u, why in (recorded.get("reasons") or {}).items()}
    person = cfg.person_by_github(author)
    excluded.setdefault((person.airflow if person else author).lower(), "the release author")
    robots = {u.lower() for u in cfg.approvals.service_accounts}
    if triggering_user and triggering_user.lower() not in robots:
        excluded.setdefault(triggering_user.lower(), "triggered the run")
    return excluded


def check_plan(plan: dict[str, Any], plan_markdown: str, params: dict[str, Any]) -> list[str]:
    """The approved plan is the release being deployed: its version, its commit, its build."""
    release, artifact = plan.get("release") or {}, plan.get("artifact") or {}
    problems = []
    if release.get("version") != params["version"]:
        problems.append(f"the approved plan is for {release.get('version')}, not {params['version']}")
    for where, commit in (("release", release.get("commit_sha")), ("build", artifact.get("commit_sha"))):
        if commit != params["commit_sha"]:
            problems.append(f"the approved plan's {where} commit is {commit}, not {params['commit_sha']}")
    if params["commit_sha"] not in plan_markdown:
        problems.append("the plan the approvers read does not name the commit being deployed")
    return problems


def classify_hand_changes(entries: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Audit-log entries → (hand changes that block, clears that are only recorded)."""
    blocking, clears = [], []
    for entry in entries:
        event = entry.get("event")
        item = {
            "id": entry.get("event_log_id"),
            "event": event,
            "by": entry.get("owner"),
            "at": entry.get("when"),
            "task_id": entry.get("task_id"),
            "extra": entry.get("extra"),
        }
        if event in CLEARS:
            clears.append(item)
        elif event in HAND_CHANGES:
            (clears if _cancel_or_note(entry.get("extra")) else blocking).append(item)
    return blocking, clears


def _cancel_or_note(extra: Any) -> bool:
    """Whether a PATCH only marked something failed (the documented cancel) or edited a note: neither
    can open the gate, so they are recorded, not blocking."""
    try:
        body = json.loads(extra) if isinstance(extra, str) else (extra or {})
    except ValueError:
        return False
    state = body.get("new_state", body.get("state"))
    fields = {k for k in body if k not in ("method", "dag_id", "dag_run_id", "task_id", "map_index")}
    return str(state).lower() == "failed" or (bool(fields) and fields <= {"note", "update_mask"})


# ------------------------------------------------------------------ the proof
def prove_gate(context: Any) -> dict[str, Any]:
    """Prove the gate for the task in ``context``; raises :class:`GateNotProven` unless it holds.

    Writes ``proof.<task id>`` (what was proven, or why not) and ``hand_changes`` to the record.
    """
    from deployment.gate.airflow_api import AirflowApiError, AirflowReader
    from deployment.gate.approvers import approval_task_ids
    from deployment.ledger import now_iso
    from deployment.read_together import read_together
    from deployment.run_context import release
    from deployment.run_contract import EmergencyNotAllowed, check_emergency_allowed

    rel = release(context)
    ti, dag_run = context["ti"], context["dag_run"]
    earlier = rel.ledger.read(f"{PROOF_SECTION}.{ti.task_id}") or {}
    if earlier.get("proven") and earlier.get("try_number") == ti.try_number:
        # A resumption of the try that proved it: the change was made on that proof, and what the
        # task does on resuming (judge, record, restore) changes production only back to stable.
        return earlier
    triggering_user = dag_run.triggering_user_name
    approval_ids = approval_task_ids(rel.cfg)
    try:
        reader = AirflowReader.from_connection(rel.cfg.connections.airflow_api)
    except AirflowApiError as err:
        raise GateNotProven(f"cannot read Airflow's approval records, so nothing is changed: {err}") from err
    record = rel.ledger.pinned()
    read = read_together(
        {
            "approvals": lambda: record.read("approvals"),
            HAND_CHANGES_SECTION: lambda: record.read(HAND_CHANGES_SECTION),
            "plan.md": lambda: record.read_text("plan", "md"),
            "plan": lambda: record.read("plan"),
            "audit log": lambda: reader.event_logs(ti.dag_id, rel.run_id, events=HAND_CHANGES | CLEARS),
            **{
                task_id: functools.partial(reader.hitl_history, ti.dag_id, rel.run_id, task_id)
                for task_id in approval_ids
            },
        }
    )
    gate = (read["approvals"].result() or {}).get("gate") or {}
    try:
        history = {task_id: read[task_id].result() for task_id in approval_ids}
        blocking, clears = classify_hand_changes(read["audit log"].result())
    except AirflowApiError as err:
        raise GateNotProven(f"cannot read Airflow's approval records, so nothing is changed: {err}") from err
    record_hand_changes(rel, blocking, clears, read[HAND_CHANGES_SECTION].result())
    try:
        plan_markdown = read["plan.md"].result()
        plan = read["plan"].result() or {}
    except Exception as err:
        raise GateNotProven(f"the record holds no plan to prove the approvals against: {err}") from err
    approvers, problems = check_approvals(
        rel.cfg,
        history,
        excluded=exclusions(rel.cfg, rel.params["author"], triggering_user, gate),
        plan_markdown=plan_markdown,
        now=datetime.fromisoformat(now_iso()),
        deadline=datetime.fromisoformat(gate["deadline"]) if gate.get("deadline") else None,
    )
    problems += check_plan(plan, plan_markdown, rel.params)
    try:
        check_emergency_allowed(rel.cfg.emergency_users, rel.params, triggering_user)
    except EmergencyNotAllowed as err:
        problems.append(str(err))
    problems += [
        f"{c['event']} by {c['by']} at {c['at']}"
        + (f" on {c['task_id']}" if c.get("task_id") else "")
        + ": a task state or XCom changed by hand blocks the release"
        for c in blocking
    ]
    proof = {
        "task": ti.task_id,
        "try_number": ti.try_number,
        "at": now_iso(),
        "proven": not problems,
        "approvers": approvers,
        "triggering_user": triggering_user,
        "problems": problems,
    }
    rel.ledger.write(f"{PROOF_SECTION}.{ti.task_id}", proof)
    if problems:
        raise GateNotProven(
            f"{ti.task_id} changes production only once the gate is proven; nothing was changed: "
            + "; ".join(problems)
        )
    return proof


def record_hand_changes(
    rel: Any, blocking: list[dict[str, Any]], clears: list[dict[str, Any]], recorded: dict[str, Any] | None
) -> None:
    """Keep every hand change and clear of the run in the record (``recorded``: its section as read);
    announce each new one once."""
    from deployment.notifications.announce import announce_team
    from deployment.notifications.base import slack_escape

    section = recorded or {"changes": [], "clears": [], "announced": []}
    new = [c for c in (*blocking, *clears) if c["id"] not in section.get("announced", [])]
    if not new and section.get("changes") == blocking and section.get("clears") == clears:
        return
    section.update(changes=blocking, clears=clears)
    for change in new:
        kind = "changed by hand" if change in blocking else "cleared or cancelled by hand"
        try:
            announce_team(
                rel.cfg,
                f"Release {slack_escape(rel.version)} (run {slack_escape(rel.run_id)}): "
                f"{slack_escape(change.get('task_id') or 'the run')} {kind} by "
                f"{slack_escape(change.get('by') or 'unknown')} ({slack_escape(change['event'])}).",
            )
            section["announced"] = [*section.get("announced", []), change["id"]]
        except Exception:  # the record keeps it; the next proof announces it again
            pass
    rel.ledger.write(HAND_CHANGES_SECTION, section)


def prove_rollback_requester(context: Any) -> None:
    """A manual rollback changes production only for a release manager or an emergency user, as
    Airflow authenticated the run's trigger (never a name in the conf). In a release run the same
    restore tasks undo its own attempt and need no proof."""
    from deployment.run_context import run_config
    from deployment.run_contract import ROLLBACK_DAG_ID

    if context["ti"].dag_id != ROLLBACK_DAG_ID:
        return
    cfg = run_config(context)
    user = context["dag_run"].triggering_user_name
    allowed = sorted({u.lower() for u in (*cfg.release_managers, *cfg.emergency_users)})
    if (user or "").lower() not in allowed:
        raise GateNotProven(
            f"{ROLLBACK_DAG_ID} was triggered by {user or 'nobody known'}; only release_managers and "
            f"emergency_users {allowed} may roll production back by hand. Nothing was changed."
        )
