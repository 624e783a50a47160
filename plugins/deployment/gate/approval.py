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

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.providers.standard.sensors.date_time import DateTimeSensorAsync
from airflow.sdk import BaseOperator, timezone
from airflow.sdk.exceptions import AirflowFailException

from deployment.guards import TERMINAL

if TYPE_CHECKING:
    from deployment.config import Approver, DeploymentConfig
    from deployment.ledger import Ledger

SECTION = "approvals"
GATE_KEY = "gate"
VERIFIED_KEY = "verified"
SOURCE = "airflow_hitl_detail"
REJECTED_KEY = "rejected"
APPROVAL_GROUP_ID = "approval_gate"
APPROVAL_TASKS = ("first_approval", "second_approval", "third_approval", "fourth_approval")


def approval_task_ids(cfg: DeploymentConfig) -> list[str]:
    """The approval tasks of a release run, with their group's prefix."""
    return [f"{APPROVAL_GROUP_ID}.{name}" for name in APPROVAL_TASKS[: cfg.approvals.required]]


class ApprovalRefused(AirflowFailException):
    """A rejection, a timeout, or an answer from someone who may not approve: the run stops."""


# ------------------------------------------------------------------- identities
def rc_creator(cfg: DeploymentConfig, version: str) -> str | None:
    """The GitHub login that created the rc release of ``version`` (GitHub's ``author.login``)."""
    from airflow.providers.github.hooks.github import GithubHook
    from github import UnknownObjectException

    from deployment.checks.github import rc_tag

    repo = GithubHook(github_conn_id=cfg.connections.github).get_conn().get_repo(cfg.github.repository)
    try:
        release = repo.get_release(rc_tag(cfg, version))
    except UnknownObjectException:
        return None
    return release.author.login if release.author else None


def excluded_users(
    cfg: DeploymentConfig, author: str, triggering_user: str | None, creator: str | None
) -> dict[str, Any]:
    """The Airflow users (lower case) who may not approve, and why; refuses an unmapped author.

    :param author: the conf's author, a GitHub login.
    :param triggering_user: the Airflow user who triggered the run (None for a scheduled run).
    :param creator: the GitHub login that created the rc release.
    """
    reasons: dict[str, list[str]] = {}

    def exclude(user: str, why: str) -> None:
        reasons.setdefault(user.lower(), []).append(why)

    person = cfg.person_by_github(author)
    if person is None:
        if not cfg.approvals.allow_unmapped_author:
            raise ApprovalRefused(
                f"the release author {author!r} is not a GitHub login listed under people: in the "
                "config, so nobody can tell which Airflow user may not approve. Add them to people: "
                "(or set approvals.allow_unmapped_author) and trigger again."
            )
        exclude(author, "release author (GitHub login, not in people:)")
    else:
        exclude(person.airflow, f"release author (GitHub {person.github})")
    robots = {u.lower() for u in cfg.approvals.service_accounts}
    if triggering_user and triggering_user.lower() not in robots:
        exclude(triggering_user, "triggered the run")
    if creator:
        creator_person = cfg.person_by_github(creator)
        exclude(creator_person.airflow if creator_person else creator, f"created the rc release ({creator})")
    return {
        "excluded": sorted(reasons),
        "reasons": reasons,
        "author": author,
        "triggering_user": triggering_user,
        "rc_creator": creator,
    }


def eligible_approvers(
    cfg: DeploymentConfig, excluded: Sequence[str], already_approved: Sequence[str]
) -> list[Approver]:
    """The configured approvers who may still approve: not excluded, not counted yet."""
    out = {u.lower() for u in (*excluded, *already_approved)}
    return [a for a in cfg.approvals.approvers if a.id.lower() not in out]


# ----------------------------------------------------------------------- record
def record_answer(ledger: Ledger, key: str, value: dict[str, Any]) -> None:
    """Set one entry of the ``approvals`` section (the gate's tasks run one after another)."""
    section = ledger.read(SECTION) or {}
    section[key] = value
    ledger.write(SECTION, section)


def plan_digest(plan_markdown: str) -> str:
    return hashlib.sha256(plan_markdown.encode()).hexdigest()


def gate_state(ledger: Ledger, create) -> dict[str, Any]:
    """The gate's ``{deadline, first_requested_at, excluded, ...}``, made by ``create()`` on first use."""
    gate = (ledger.read(SECTION) or {}).get(GATE_KEY)
    if gate is None:
        gate = create()
        record_answer(ledger, GATE_KEY, gate)
    return gate


def approved_user_names(section: dict[str, Any], task_ids: Sequence[str]) -> list[str]:
    """Who (usernames) approved ``task_ids`` according to the entries read from Airflow's HITL details."""
    names = []
    for task_id in task_ids:
        entry = section.get(task_id) or {}
        if entry.get("decision") == "approved" and entry.get("source") == SOURCE and entry.get("user_name"):
            names.append(str(entry["user_name"]))
    return names


def assigned_users(cfg: DeploymentConfig, eligible: Sequence[Approver]) -> list[dict[str, str]]:
    """``assigned_users`` for a request: each eligible approver with the auth manager's id for them.

    Raises :class:`ApprovalRefused` when an approver is not a user Airflow knows (nobody could answer
    in their name, and an empty list would let anyone answer)."""
    from deployment.gate.airflow_api import AirflowApiError, AirflowReader

    try:
        ids = AirflowReader.from_connection(cfg.connections.airflow_api).user_ids([a.id for a in eligible])
    except AirflowApiError as err:
        raise ApprovalRefused(f"cannot resolve the approvers' Airflow user ids: {err}") from err
    unknown = [a.id for a in eligible if not ids.get(a.id)]
    if unknown:
        raise ApprovalRefused(
            f"approvers {unknown} are not active Airflow users: create them (or correct approvals.approvers)"
        )
    return [{"id": str(ids[a.id]), "name": a.id} for a in eligible]


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else (str(value) if value else None)


def _now() -> datetime:
    return datetime.now(UTC)


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

    def _release(self, context: Any):
        from deployment.run_context import release

        return release(context)

    def _gate(self, context: Any, rel) -> dict[str, Any]:
        def create() -> dict[str, Any]:
            now = _now()
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
        left = deadline - _now()
        if left <= timedelta(0):
            record_answer(
                rel.ledger,
                self.task_id,
                {
                    "decision": "timed_out",
                    "at": _now().isoformat(),
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
                "requested_at": _now().isoformat(),
                "deadline": gate["deadline"],
                "plan_digest": plan_digest(plan),
                "run_id": rel.run_id,
            },
        )
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
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
                    "at": _now().isoformat(),
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
    ``GetHITLDetailResponse`` ("Unhandled request"), which only the triggerer may send.
    """
    user = event.get("responded_by_user") or {}
    return {
        "chosen_options": list(event.get("chosen_options") or []),
        "user_id": user.get("id"),
        "user_name": user.get("name"),
        "responded_at": _iso(event.get("responded_at")),
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


# ------------------------------------------------------------------ the wait timer
class WaitTimerSensor(DateTimeSensorAsync):
    """The cancellation window after the last approval: deferred (no worker slot) until it closes.

    A window already closed when the task starts (``timings.wait_timer_seconds`` 0, or used up
    while the approvals were recorded) ends the task at once instead of handing it to the
    triggerer and back, which costs a release about three seconds. (Airflow's own
    ``start_from_trigger`` would skip the worker, but on Airflow 3.3.2 the triggerer renders the
    template without the run's conf, fails the release's required params, and its trigger
    runner dies.)
    """

    def execute(self, context: Any) -> None:
        if timezone.utcnow() >= self._moment:
            self.log.info("The cancellation window closed at %s: nothing to wait for", self._moment)
            return
        super().execute(context)


# ------------------------------------------------------------------ the reminder
class ApprovalReminderOperator(BaseOperator):
    """Remind whoever a request still waits for, once, when half the gate's time has gone.

    Deferred the whole time (no worker slot, no task process per look): first, briefly, until
    the first request exists and the gate's deadline is in the record; then until half the
    gate's time (:class:`~deployment.triggers.gate_reminder.GateReminderTrigger`, a
    ``DateTimeTrigger`` that also ends as soon as every approval task has finished). It then
    sends each open request's reminder (Slack and email, once per request: the record keeps
    what was sent) and ends; a gate decided before then ends it with no message.
    """

    ui_color = "#fff3cd"

    def __init__(self, *, approval_task_ids: Sequence[str], poll_interval: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.approval_task_ids = list(approval_task_ids)
        self.poll_interval = float(poll_interval)

    def execute(self, context: Any) -> dict[str, Any]:
        return self._next(context)

    def resume(self, context: Any, event: Any = None) -> dict[str, Any]:
        """After a wait: a gate decided meanwhile ends the task; otherwise look again. The gate's
        trigger resumes with ``{"decided": ...}``; the short look's ``DateTimeTrigger`` with its moment."""
        if isinstance(event, dict) and event.get("decided"):
            return {"reminded": []}
        return self._next(context)

    def _wait(self, until: datetime, context: Any, gate: bool) -> None:
        from airflow.providers.standard.triggers.temporal import DateTimeTrigger

        from deployment.triggers.gate_reminder import GateReminderTrigger

        trigger = (
            GateReminderTrigger(
                until,
                dag_id=context["ti"].dag_id,
                run_id=context["run_id"],
                task_ids=self.approval_task_ids,
                poll_interval=self.poll_interval,
            )
            if gate
            else DateTimeTrigger(moment=until)
        )
        self.defer(trigger=trigger, method_name="resume")

    def _next(self, context: Any) -> dict[str, Any]:
        from deployment.notifications.messages import approval_needed, required_actions_url
        from deployment.run_context import release, task_states

        states = task_states(context)
        if all(states.get(t) in TERMINAL for t in self.approval_task_ids):
            return {"reminded": []}
        rel = release(context)
        section = rel.ledger.read(SECTION) or {}
        gate = section.get(GATE_KEY)
        now = _now()
        if not gate:  # the first request is not made yet: look again shortly
            self._wait(now + timedelta(seconds=self.poll_interval), context, gate=False)
        first, deadline = (datetime.fromisoformat(gate[k]) for k in ("first_requested_at", "deadline"))
        half = first + (deadline - first) / 2
        if now < half:
            self._wait(half, context, gate=True)
        waiting = [t for t in self.approval_task_ids if states.get(t) == "awaiting_input"]
        if not waiting:  # between two requests: the next one is being made
            self._wait(now + timedelta(seconds=self.poll_interval), context, gate=False)
        reminded = []
        for task_id in waiting:
            entry = section.get(task_id) or {}
            try:
                approval_needed(
                    rel.cfg,
                    rel.ledger,
                    version=rel.version,
                    task_id=task_id,
                    key="reminder",
                    assigned=entry.get("eligible", []),
                    deadline=gate["deadline"],
                    link=required_actions_url(rel.cfg, context["ti"].dag_id, rel.run_id, task_id),
                    run_id=rel.run_id,
                    reminder=True,
                )
                reminded.append(task_id)
            except Exception as err:  # a reminder that cannot be sent must not stop the release
                self.log.warning("could not remind the approvers of %s: %s", task_id, err)
        return {"reminded": reminded}
