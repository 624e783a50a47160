"""Attempts and the release guard: nothing judges or announces a version that is not live.

**Attempts.** Each pass through the changing phases (deploy infrastructure, deploy
frontend, smoke tests, monitoring) is an attempt. :func:`open_attempt` runs once per pass, as
the last step of ``validate_infrastructure.verify_change_set`` right before the first change,
and its id is the try number of that task: clearing ``validate_infrastructure`` with its
downstream tasks clears it too, so a rerun is a new attempt. The ``attempt`` section holds the
current one, ``attempts`` every one so far. Before anything changes, :func:`open_attempt`
re-checks production against the backup and the approved plan: a release that waited days
for approval while someone rolled production back does not deploy over a state nobody approved.

**One actor at a time.** A release and a manual rollback never change production together:
:func:`refuse_concurrent_run` is the first step of each run's first task (``record_release``,
the rollback's ``plan``) and of the release's ``verify_gate`` just before its first change,
since a manual rollback may start while a release waits for approval. Each run is ``running``
(and the asking task itself running) before it asks, so of two that ask together at least one
sees the other.

**The guard.** Smoke tests, monitoring, every notice and ``record_outcome`` call
:func:`check_release_live` first: the release's colour holds 100 % of the traffic, the
stack runs the release's version in a settled state, and no rollback of this attempt
happened. Otherwise they fail with the way out: clear ``validate_infrastructure`` with its
downstream tasks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from deployment.run_contract import OUTCOME_TASK_ID, RELEASE_DAG_ID

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig
    from deployment.ledger import Ledger

ATTEMPT = "attempt"
ATTEMPTS = "attempts"
CLEAR_HINT = "clear validate_infrastructure with its downstream tasks to deploy the release again"
STACK_RUNNING_OK = {"UPDATE_COMPLETE", "CREATE_COMPLETE", "IMPORT_COMPLETE"}
# A release that started one of these may change production: from its re-verified gate on.
PAST_GATE_TASKS = (
    "approval_gate.verify_gate",
    "backup.backup_stack",
    "backup.backup_tables",
    "backup.tag_amplify",
)
# Task states after which a task instance does nothing more (until it is cleared).
TERMINAL = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})


class ReleaseNotLive(RuntimeError):
    """The release this run deployed is not what production serves now."""


class ProductionChanged(RuntimeError):
    """Production is no longer the state the backup and the approved plan describe."""


class ConcurrentRun(RuntimeError):
    """A release and a manual rollback would change production at the same time."""


# ------------------------------------------------------------ one actor at a time
def releases_past_gate(ti: Any, dag_id: str = RELEASE_DAG_ID) -> list[str]:
    """Runs of ``dag_id`` that went past the approval gate and have not recorded their outcome."""
    states = ti.get_task_states(dag_id=dag_id, task_ids=[*PAST_GATE_TASKS, OUTCOME_TASK_ID])
    return sorted(
        run_id
        for run_id, tasks in states.items()
        if any(tasks.get(t) not in (None, "none") for t in PAST_GATE_TASKS)
        and str(tasks.get(OUTCOME_TASK_ID)) not in TERMINAL
    )


def check_no_concurrent_run(ti: Any, other_dag_id: str, *, past_gate_only: bool = False) -> int:
    """Raise :class:`ConcurrentRun` while a run of ``other_dag_id`` is running (with
    ``past_gate_only``: a release past its approval gate); otherwise 0."""
    running = ti.get_dr_count(dag_id=other_dag_id, states=["running"])
    if running and past_gate_only:
        running = len(releases_past_gate(ti, other_dag_id))
    if running:
        raise ConcurrentRun(
            f"{running} run(s) of {other_dag_id} are running; a release and a rollback never change "
            "production together. Wait for it to finish (or fail) and trigger again."
        )
    return running


def refuse_concurrent_run(
    ti: Any, other_dag_id: str, *, past_gate_only: bool = False, then: str = ""
) -> None:
    """:func:`check_no_concurrent_run` as a task's first step: a concurrent run fails the task at once,
    with no retry, before it changes anything (``then`` tells what to do afterwards)."""
    from airflow.sdk.exceptions import AirflowFailException

    try:
        check_no_concurrent_run(ti, other_dag_id, past_gate_only=past_gate_only)
    except ConcurrentRun as err:
        raise AirflowFailException(f"{err} {then}".rstrip()) from err


# --------------------------------------------------------------------- attempts
def current_attempt(ledger: Ledger) -> int:
    """The id of the current attempt (1 before any ``open_attempt`` ran, as in older records)."""
    return int((ledger.read(ATTEMPT) or {}).get("id") or 1)


def production_state(cfg: DeploymentConfig) -> dict[str, Any]:
    """What production runs now: the router's weights and the stack's version and status."""
    from deployment.aws.cloudformation import live_stack
    from deployment.traffic import router_for

    stack = live_stack(cfg, template=False)
    return {
        "weights": router_for(cfg).weights(),
        "version": stack["parameters"].get(cfg.stack.version_parameter),
        "stack_status": stack["status"],
    }


def differences_from_backup(
    cfg: DeploymentConfig, record: dict[str, Any], state: dict[str, Any]
) -> list[str]:
    """How production (``state``) differs from the backup and from the plan the approvers saw."""
    from deployment.backup.restore_point import backup_live_colour, backup_version
    from deployment.traffic.router import full

    backup = record.get("backup") or {}
    if not backup:
        return ["the record has no backup section"]
    differences = []
    colour, version = backup_live_colour(backup), backup_version(cfg, backup)
    if colour and state["weights"] != full(colour):
        differences.append(f"traffic is {state['weights']}, the backup found all of it on {colour}")
    if state["version"] != version:
        differences.append(f"the stack runs {state['version']}, the backup holds {version}")
    approved = (record.get("plan") or {}).get("release") or {}
    if approved.get("previous_version") and approved["previous_version"] != version:
        differences.append(
            f"the approved plan was made against {approved['previous_version']}, "
            f"production ran {version} when the backup was taken"
        )
    if approved.get("live_colour") and colour and approved["live_colour"] != colour:
        differences.append(f"the approved plan found {approved['live_colour']} live, the backup {colour}")
    return differences


def open_attempt(cfg: DeploymentConfig, ledger: Ledger, attempt_id: int) -> dict[str, Any]:
    """Start attempt ``attempt_id`` once production is checked to be what was backed up and approved."""
    from deployment.ledger import now_iso

    existing = ledger.read(ATTEMPT) or {}
    if existing.get("id") == attempt_id:
        return {**existing, "reused": True}
    state = production_state(cfg)
    differences = differences_from_backup(cfg, ledger.record(), state)
    if differences:
        raise ProductionChanged(
            "production changed since the backup or the approved plan: "
            + "; ".join(differences)
            + ". Nothing was deployed. Trigger a new release (roll back first if production is half-changed)."
        )
    attempt = {"id": attempt_id, "opened_at": now_iso(), "production": state}
    history = [a for a in ledger.read(ATTEMPTS) or [] if a.get("id") != attempt_id]
    ledger.write(ATTEMPTS, [*history, attempt])
    ledger.write(ATTEMPT, attempt)
    return attempt


def rollback_of_attempt(ledger: Ledger, attempt_id: int) -> dict[str, Any] | None:
    """The rollback plan of ``attempt_id`` when one was made and found something to undo."""
    plan = ledger.read("rollback.plan") or {}
    if plan.get("needed") and int(plan.get("attempt") or 1) == attempt_id:
        return plan
    return None


# ------------------------------------------------------------------------ guard
def release_problems(cfg: DeploymentConfig, ledger: Ledger) -> list[str]:
    """Why the release of this run is not what production serves (empty when it is)."""
    from deployment.traffic.router import full

    problems = []
    attempt = current_attempt(ledger)
    if rollback_of_attempt(ledger, attempt):
        problems.append(f"attempt {attempt} of this run was rolled back")
    target = (ledger.read("frontend") or {}).get("target_colour")
    state = production_state(cfg)
    if target is None:
        problems.append("the record names no target colour: deploy_frontend has not run")
    elif state["weights"] != full(target):
        problems.append(
            f"traffic is {state['weights']}, not all on {target} where {ledger.version} was deployed"
        )
    if state["version"] != ledger.version:
        problems.append(f"the stack runs {state['version']}, not {ledger.version}")
    elif state["stack_status"] not in STACK_RUNNING_OK:
        problems.append(f"the stack is {state['stack_status']}")
    return problems


def check_release_live(cfg: DeploymentConfig, ledger: Ledger, what: str) -> None:
    """Raise :class:`ReleaseNotLive` (with the way out) unless this run's release is live."""
    problems = release_problems(cfg, ledger)
    if problems:
        raise ReleaseNotLive(
            f"{what} refused: {ledger.version} is not what production serves ({'; '.join(problems)}); "
            f"{CLEAR_HINT}"
        )


def require_live_release(context: Any, what: str) -> None:
    """:func:`check_release_live` for the task running in ``context``; fails it without retries."""
    from airflow.sdk.exceptions import AirflowFailException

    from deployment.run_context import release

    rel = release(context)
    try:
        check_release_live(rel.cfg, rel.ledger, what)
    except ReleaseNotLive as err:
        raise AirflowFailException(str(err)) from err


def refuse_step_after_stop(
    earlier: dict[str, Any] | None, attempt: int, current: dict[str, int], wanted: dict[str, int]
) -> None:
    """Fail a traffic step's retry that would put traffic back on the new colour after it was taken off.

    ``earlier`` is the step's record: when this attempt already applied ``wanted`` and the router now
    says otherwise, something moved the traffic back (the watch's restore after a breach whose event was
    lost with its worker, a cancel, the rollback); shifting again would send viewers to the build that
    was stopped.
    """
    from airflow.sdk.exceptions import AirflowFailException

    if not earlier or earlier.get("attempt") != attempt or current == wanted:
        return
    if earlier.get("outcome") != "healthy":
        raise AirflowFailException(
            f"traffic step {earlier.get('weight')} % of attempt {attempt} applied {wanted} at "
            f"{earlier.get('applied_at')}, and traffic is {current} now: it was taken off the new colour "
            f"(outcome {earlier.get('outcome')!r}). Not shifting again; {CLEAR_HINT}"
        )
