"""Who may approve a release, and the ``approvals`` section of the record.

Who may not comes from authenticated sources only: the release author (a GitHub login, mapped to
an Airflow user by the config's ``people``), the Airflow user who triggered the run when that is
a person (``dag_run.triggering_user_name``, unless it is one of ``approvals.service_accounts``),
and the GitHub user who created the rc release (GitHub's ``author.login``). Names compare
case-insensitively. Each request's ``assigned_users`` is the configured approvers minus those
people minus whoever already approved, resolved to the auth manager's user ids."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

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
    from github import UnknownObjectException

    from deployment.checks.github import rc_tag
    from deployment.hooks.github import repository

    repo = repository(cfg)
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


def iso_time(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else (str(value) if value else None)


def now_utc() -> datetime:
    return datetime.now(UTC)
