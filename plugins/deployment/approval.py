"""Phase 2: two distinct approvers, neither the author, through Airflow's human-in-the-loop.

Who may answer is decided when the request is made: ``assigned_users`` is the
configured approvers minus the release author minus whoever already approved in
this run. Airflow then refuses anyone else (HTTP 403) and a second answer to the
same request (409); the identity is ``responded_by_user`` from Airflow's
authentication. Every answer, a timeout included, is kept in the ``approvals``
section of the record, under the task that received it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk.exceptions import AirflowFailException

if TYPE_CHECKING:
    from deployment.config import Approver, DeploymentConfig
    from deployment.ledger import Ledger

SECTION = "approvals"
RESULT_KEY = "result"


class ApprovalRefused(AirflowFailException):
    """A rejection, a timeout, or an answer from someone who may not approve: the run stops."""


def eligible_approvers(cfg: DeploymentConfig, author: str, already_approved: Sequence[str]) -> list[Approver]:
    """The configured approvers who may still approve: not the author, not counted yet."""
    excluded = {author, *already_approved}
    return [a for a in cfg.approvals.approvers if a.id not in excluded]


def record_answer(ledger: Ledger, key: str, value: dict[str, Any]) -> None:
    """Set one task's entry of the ``approvals`` section (the tasks run one after another)."""
    section = ledger.read(SECTION) or {}
    section[key] = value
    ledger.write(SECTION, section)


def approved_user_ids(payloads: Sequence[dict[str, Any] | None]) -> list[str]:
    """The ids of the users whose answers (HITL results of earlier approvals) were Approve."""
    ids = []
    for payload in payloads:
        if payload and payload.get("chosen_options") == [ApprovalOperator.APPROVE]:
            user = payload.get("responded_by_user") or {}
            if user.get("id"):
                ids.append(str(user["id"]))
    return ids


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else (str(value) if value else None)


class ReleaseApprovalOperator(ApprovalOperator):
    """One approval of the release: Approve or Reject, by one eligible person.

    :param approval_number: which of the ``approvals.required`` approvals this is (for the subject).
    :param prior_approval_task_ids: the approval tasks before this one; their approvers are excluded.
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

    # ---------------------------------------------------------------- helpers
    def _release(self, context: Any) -> tuple[DeploymentConfig, Ledger, dict[str, Any]]:
        from deployment.config import load_config
        from deployment.ledger import Ledger

        cfg = load_config()
        params = context["params"]
        return cfg, Ledger(cfg, params["version"], context["run_id"]), params

    def _already_approved(self, context: Any) -> list[str]:
        if not self.prior_approval_task_ids:
            return []
        payloads = context["ti"].xcom_pull(task_ids=self.prior_approval_task_ids)
        if not isinstance(payloads, list):
            payloads = [payloads]
        ids = approved_user_ids(payloads)
        if len(ids) != len(self.prior_approval_task_ids):
            raise ApprovalRefused(
                f"the earlier approvals {self.prior_approval_task_ids} did not all record an approver "
                f"(found {ids}); clear the approval group to ask again"
            )
        return ids

    # ------------------------------------------------------------------ execute
    def execute(self, context: Any) -> Any:
        from deployment.ledger import now_iso

        cfg, ledger, params = self._release(context)
        already = self._already_approved(context)
        eligible = eligible_approvers(cfg, params["author"], already)
        if not eligible:
            # An empty assigned_users would let anyone answer, so there must be someone.
            raise ApprovalRefused(
                f"no one left to give approval {self.approval_number}: approvers "
                f"{cfg.approvals.ids()}, author {params['author']!r}, already approved {already}"
            )
        self.assigned_users = [{"id": a.id, "name": a.name} for a in eligible]
        self.response_timeout = cfg.timings.approval_timeout
        try:
            plan = ledger.read_text("plan", "md")
        except Exception as err:
            raise ApprovalRefused(f"no deployment plan at {ledger.uri('plan', 'md')}: {err}") from None
        who = ", ".join(f"{a.name} (`{a.id}`)" for a in eligible)
        header = (
            f"**Approval {self.approval_number} of {cfg.approvals.required}.** May answer: {who}. "
            f"Already approved: {', '.join(f'`{u}`' for u in already) or 'nobody'}. "
            f"No decision within {self.response_timeout} rejects the release.\n\n---\n\n"
        )
        self.body = header + plan
        record_answer(
            ledger,
            self.task_id,
            {"decision": "awaiting", "eligible": [a.id for a in eligible], "requested_at": now_iso()},
        )
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        from deployment.ledger import now_iso

        cfg, ledger, params = self._release(context)
        if "error" in event:
            timed_out = event.get("error_type") == "timeout"
            record_answer(
                ledger,
                self.task_id,
                {
                    "decision": "timed_out" if timed_out else "error",
                    "detail": event["error"],
                    "at": now_iso(),
                },
            )
            if timed_out:
                raise ApprovalRefused(
                    f"no decision on approval {self.approval_number} within "
                    f"{timedelta(seconds=cfg.timings.approval_timeout_seconds)}: the release is rejected"
                )
            return super().execute_complete(context=context, event=event)

        user = event.get("responded_by_user") or {}
        chosen = list(event.get("chosen_options") or [])
        entry = {
            "decision": "approved" if chosen == [self.APPROVE] else "rejected",
            "user_id": user.get("id"),
            "user_name": user.get("name"),
            "responded_at": _iso(event.get("responded_at")),
            "chosen_options": chosen,
        }
        if entry["decision"] == "rejected":
            record_answer(ledger, self.task_id, entry)
            raise ApprovalRefused(
                f"{user.get('name') or user.get('id') or 'nobody'} rejected release {params['version']} "
                f"(approval {self.approval_number}); nothing was changed"
            )
        # Airflow enforces assigned_users; this guards against a request answered some other way.
        eligible = {a.id for a in eligible_approvers(cfg, params["author"], self._already_approved(context))}
        if entry["user_id"] not in eligible:
            entry["decision"] = "refused"
            record_answer(ledger, self.task_id, entry)
            raise ApprovalRefused(
                f"approval {self.approval_number} came from {entry['user_id']!r}, who may not approve "
                f"(eligible: {sorted(eligible)})"
            )
        record_answer(ledger, self.task_id, entry)
        return super().execute_complete(context=context, event=event)


def summarize_approvals(
    cfg: DeploymentConfig, author: str, answers: Sequence[dict[str, Any] | None], task_ids: Sequence[str]
) -> dict[str, Any]:
    """The ``result`` of the gate from the approval tasks' HITL results; raises unless it is valid."""
    approvers = []
    for task_id, answer in zip(task_ids, answers, strict=True):
        if not answer or answer.get("chosen_options") != [ApprovalOperator.APPROVE]:
            raise ApprovalRefused(f"{task_id} has no approval: {answer!r}")
        user = answer.get("responded_by_user") or {}
        approvers.append(
            {
                "task": task_id,
                "id": user.get("id"),
                "name": user.get("name"),
                "at": _iso(answer.get("responded_at")),
            }
        )
    ids = [a["id"] for a in approvers]
    allowed = set(cfg.approvals.ids())
    problems = []
    if len(set(ids)) != len(ids):
        problems.append(f"the same person approved twice: {ids}")
    if author in ids:
        problems.append(f"the author {author!r} approved")
    if not set(ids) <= allowed:
        problems.append(f"{sorted(set(ids) - allowed)} are not configured approvers")
    if len(ids) < cfg.approvals.required:
        problems.append(f"{len(ids)} approvals, {cfg.approvals.required} required")
    if problems:
        raise ApprovalRefused("the approvals are not valid: " + "; ".join(problems))
    approved_at = max(datetime.fromisoformat(a["at"]) for a in approvers)
    wait_until = approved_at + timedelta(seconds=cfg.timings.wait_timer_seconds)
    return {
        "status": "approved",
        "approvers": approvers,
        "approved_at": approved_at.isoformat(),
        "wait_timer_seconds": cfg.timings.wait_timer_seconds,
        "wait_until": wait_until.isoformat(),
    }
