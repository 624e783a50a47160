"""Phase 2: two distinct eligible approvers through Airflow's human-in-the-loop, one deadline.

Who may not approve comes from authenticated sources only: the release author (a
GitHub login, mapped to an Airflow user by the config's ``people``), the Airflow
user who triggered the run when that is a person (``dag_run.triggering_user_name``,
unless it is one of ``approvals.service_accounts``), and the GitHub user who
created the rc release (GitHub's ``author.login``). Names compare case-insensitively.

Each request's ``assigned_users`` is the configured approvers minus those people
minus whoever already approved, so Airflow answers 403 to anyone else and 409 to a
second answer. Airflow compares an answer with ``assigned_users`` by the auth manager's user
id (FAB's is numeric), so each approver's username is resolved to that id when the request is
made; everything else (exclusions, the configured list, who already approved) compares
usernames, case-insensitively. A rejection sticks: a request made again after a clear is
refused once the record holds a rejection, and the proof at the point of change
(:mod:`deployment.gate.proof`) refuses a run any of whose approval tries was rejected.

The whole gate has one deadline (``timings.approval_timeout_seconds`` from the first request,
kept in the record): a later request waits only what is left.

Each answer, as Airflow resumes the task with it (built by its API server from the HITL
detail the authenticated user wrote), is written to the ``approvals`` section of the
record with the plan's digest. :func:`verify_gate` re-checks those entries before the first change;
XCom is never read, so an approval task marked successful by hand or an XCom written
by hand cannot open the gate.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import ApprovalOperator

if TYPE_CHECKING:
    from deployment.config import Approver, DeploymentConfig
from deployment.gate.approvers import (
    GATE_KEY,
    REJECTED_KEY,
    SECTION,
    SOURCE,
    ApprovalRefused,
    approved_user_names,
    assigned_users,
    eligible_approvers,
    excluded_users,
    gate_state,
    iso_time,
    now_utc,
    plan_digest,
    rc_creator,
    record_answer,
)


class ReleaseApprovalOperator(ApprovalOperator):
    """One approval of the release: Approve or Reject, by one eligible person.

    :param approval_number: which of the ``approvals.required`` approvals this is (for the subject).
    :param prior_approval_task_ids: the approval tasks before this one; their approvers are excluded.
    :param response_timeout: the request's timeout as built; ``execute`` replaces it with what is left
        of the gate's one deadline.
    """

    template_fields: Sequence[str] = ("subject", "body")

    def __init__(
        self,
        *,
        approval_number: int,
        prior_approval_task_ids: Sequence[str] = (),
        response_timeout: timedelta,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault(
            "subject", f"Approve release {{{{ params.version }}}} to production (approval {approval_number})"
        )
        kwargs.setdefault("retries", 0)
        super().__init__(fail_on_reject=True, response_timeout=response_timeout, **kwargs)
        self.approval_number = approval_number
        self.prior_approval_task_ids = list(prior_approval_task_ids)

    def _release(self, context: Any):
        from deployment.run_context import release

        return release(context)

    def _gate(self, context: Any, rel) -> dict[str, Any]:
        def create() -> dict[str, Any]:
            now = now_utc()
            who = excluded_users(
                rel.cfg,
                rel.params["author"],
                context["dag_run"].triggering_user_name,
                rc_creator(rel.cfg, rel.version),
            )
            deadline = now + rel.cfg.timings.approval_timeout
            return {**who, "first_requested_at": now.isoformat(), "deadline": deadline.isoformat()}

        return gate_state(rel.ledger, create)

    def _already_approved(self, rel) -> list[str]:
        section = rel.ledger.read(SECTION) or {}
        ids = approved_user_names(section, self.prior_approval_task_ids)
        if len(ids) != len(self.prior_approval_task_ids):
            raise ApprovalRefused(
                f"the earlier approvals {self.prior_approval_task_ids} did not all record an approver "
                f"read from Airflow (found {ids}); clear the approval group to ask again"
            )
        return ids

    # ------------------------------------------------------------------ execute
    def execute(self, context: Any) -> Any:
        rel = self._release(context)
        rejected = (rel.ledger.read(SECTION) or {}).get(REJECTED_KEY)
        if rejected:
            raise ApprovalRefused(
                f"release {rel.version} was rejected by {rejected.get('user_name')} at "
                f"{rejected.get('responded_at')} ({rejected.get('task')}): a rejected release stays "
                "rejected through clears; trigger a new run to ask again"
            )
        gate = self._gate(context, rel)
        deadline = datetime.fromisoformat(gate["deadline"])
        left = deadline - now_utc()
        if left <= timedelta(0):
            record_answer(
                rel.ledger,
                self.task_id,
                {
                    "decision": "timed_out",
                    "at": now_utc().isoformat(),
                    "detail": f"the gate's deadline {gate['deadline']} passed",
                },
            )
            raise ApprovalRefused(
                f"the approval gate's deadline {gate['deadline']} has passed: the release "
                "is rejected; trigger a new run to ask again"
            )
        already = self._already_approved(rel)
        eligible = eligible_approvers(rel.cfg, gate["excluded"], already)
        if not eligible:
            # An empty assigned_users would let anyone answer, so there must be someone.
            raise ApprovalRefused(
                f"no one left to give approval {self.approval_number}: approvers "
                f"{rel.cfg.approvals.ids()}, excluded {gate['reasons']}, already approved {already}"
            )
        self.assigned_users = assigned_users(rel.cfg, eligible)
        self.response_timeout = left
        try:
            plan = rel.ledger.read_text("plan", "md")
        except Exception as err:
            raise ApprovalRefused(f"no deployment plan at {rel.ledger.uri('plan', 'md')}: {err}") from None
        self.body = (
            request_header(self.approval_number, rel.cfg.approvals.required, eligible, already, gate) + plan
        )
        record_answer(
            rel.ledger,
            self.task_id,
            {
                "decision": "awaiting",
                "eligible": [a.id for a in eligible],
                "requested_at": now_utc().isoformat(),
                "deadline": gate["deadline"],
                "plan_digest": plan_digest(plan),
                "run_id": rel.run_id,
            },
        )
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        from deployment.triggers.events import resumed_event

        event = resumed_event(event)
        rel = self._release(context)
        entry = (rel.ledger.read(SECTION) or {}).get(self.task_id) or {}
        if "error" in event:
            timed_out = event.get("error_type") == "timeout"
            record_answer(
                rel.ledger,
                self.task_id,
                {
                    **entry,
                    "decision": "timed_out" if timed_out else "error",
                    "detail": str(event["error"]),
                    "at": now_utc().isoformat(),
                },
            )
            if timed_out:
                raise ApprovalRefused(
                    f"no decision on approval {self.approval_number} before the gate's deadline "
                    f"{entry.get('deadline')}: the release is rejected"
                )
            return super().execute_complete(context=context, event=event)

        detail = hitl_answer(event)
        answer = {
            **entry,
            "decision": "approved" if detail["chosen_options"] == [self.APPROVE] else "rejected",
            "user_id": detail["user_id"],
            "user_name": detail["user_name"],
            "responded_at": detail["responded_at"],
            "chosen_options": detail["chosen_options"],
            "source": SOURCE,
        }
        if answer["decision"] == "rejected":
            record_answer(rel.ledger, self.task_id, answer)
            record_answer(rel.ledger, REJECTED_KEY, {"task": self.task_id, **answer})
            raise ApprovalRefused(
                f"{answer['user_name'] or answer['user_id'] or 'nobody'} rejected release {rel.version} "
                f"(approval {self.approval_number}); nothing was changed"
            )
        # Airflow enforces assigned_users; this guards against a request answered some other way.
        gate = self._gate(context, rel)
        eligible = {
            a.id.lower() for a in eligible_approvers(rel.cfg, gate["excluded"], self._already_approved(rel))
        }
        if str(answer["user_name"] or "").lower() not in eligible:
            answer["decision"] = "refused"
            record_answer(rel.ledger, self.task_id, answer)
            raise ApprovalRefused(
                f"approval {self.approval_number} came from {answer['user_name']!r}, who may not approve "
                f"(eligible: {sorted(eligible)})"
            )
        record_answer(rel.ledger, self.task_id, answer)
        return super().execute_complete(context=context, event=event)


def hitl_answer(event: dict[str, Any]) -> dict[str, Any]:
    """The answer as Airflow resumed the task with it.

    Airflow 3.3 resumes a parked HITL task with the event its API server built from the
    HITL detail row when the authenticated user answered (``responded_by_user`` is that
    user). A task cannot read the detail again itself: its supervisor refuses
    ``GetHITLDetailResponse`` ("Unhandled request"), which only the triggerer may send. An
    event without the chosen options or the user is refused, never read as nobody's rejection.
    """
    from deployment.triggers.events import resumed_event

    resumed_event(event, "chosen_options", "responded_by_user")
    user = event.get("responded_by_user") or {}
    return {
        "chosen_options": list(event.get("chosen_options") or []),
        "user_id": user.get("id"),
        "user_name": user.get("name"),
        "responded_at": iso_time(event.get("responded_at")),
    }


def request_header(
    number: int, required: int, eligible: Sequence[Approver], already: Sequence[str], gate: dict[str, Any]
) -> str:
    """The top of an approval request: who may answer, the gate's deadline, who may not and why."""
    from deployment.notifications.base import md_escape

    who = ", ".join(f"{md_escape(a.name)} (`{a.id}`)" for a in eligible)
    barred = "; ".join(f"`{user}`: {md_escape(', '.join(why))}" for user, why in gate["reasons"].items())
    return (
        f"**Approval {number} of {required}.** May answer: {who}. "
        f"Already approved: {', '.join(f'`{u}`' for u in already) or 'nobody'}. "
        f"Excluded: {barred or 'nobody'}.\n\n"
        f"**Deadline for the whole gate: {gate['deadline']}** (UTC). No decision by then rejects the "
        "release.\n\n---\n\n"
    )


def verify_gate(
    cfg: DeploymentConfig, section: dict[str, Any], task_ids: Sequence[str], run_id: str, current_digest: str
) -> dict[str, Any]:
    """The gate's ``result`` from the answers recorded from Airflow; raises unless it opens the gate.

    Open only with ``approvals.required`` distinct, configured, non-excluded approvers,
    each read from Airflow's HITL detail for this run and this plan, before the deadline.
    """
    gate = section.get(GATE_KEY)
    if not gate:
        raise ApprovalRefused("no approval request was ever made in this run (no gate in the record)")
    deadline = datetime.fromisoformat(gate["deadline"])
    excluded = {u.lower() for u in gate["excluded"]}
    allowed = {a.lower() for a in cfg.approvals.ids()}
    approvers, problems = [], []
    for task_id in task_ids:
        entry = section.get(task_id) or {}
        if entry.get("decision") != "approved" or entry.get("source") != SOURCE:
            problems.append(
                f"{task_id} holds no approval read from Airflow (decision "
                f"{entry.get('decision')!r}): an approval marked by hand does not count"
            )
            continue
        if entry.get("run_id") != run_id:
            problems.append(f"{task_id} was approved in run {entry.get('run_id')!r}, not {run_id!r}")
        if entry.get("plan_digest") != current_digest:
            problems.append(
                f"{task_id} approved another plan (digest {entry.get('plan_digest')}, now {current_digest})"
            )
        if entry.get("responded_at") and datetime.fromisoformat(entry["responded_at"]) > deadline:
            problems.append(f"{task_id} answered after the deadline {gate['deadline']}")
        approvers.append(
            {
                "task": task_id,
                "id": entry["user_id"],
                "name": entry.get("user_name"),
                "at": entry["responded_at"],
            }
        )
    ids = [str(a["id"]) for a in approvers]
    names = [str(a["name"] or "").lower() for a in approvers]
    if len(set(ids)) != len(ids) or len(set(names)) != len(names):
        problems.append(f"the same person approved twice: {names}")
    if barred := sorted(set(names) & excluded):
        problems.append(f"{barred} may not approve ({gate['reasons']})")
    if outsiders := sorted(set(names) - allowed):
        problems.append(f"{outsiders} are not configured approvers")
    if len(set(names)) < cfg.approvals.required:
        problems.append(f"{len(set(names))} valid approvals, {cfg.approvals.required} required")
    if problems:
        raise ApprovalRefused("the approval gate is not open: " + "; ".join(problems))
    approved_at = max(datetime.fromisoformat(a["at"]) for a in approvers)
    wait_until = approved_at + timedelta(seconds=cfg.timings.wait_timer_seconds)
    return {
        "status": "approved",
        "approvers": approvers,
        "approved_at": approved_at.isoformat(),
        "deadline": gate["deadline"],
        "plan_digest": current_digest,
        "wait_timer_seconds": cfg.timings.wait_timer_seconds,
        "wait_until": wait_until.isoformat(),
    }
