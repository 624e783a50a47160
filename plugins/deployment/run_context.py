"""The run context every task shares: the run's config (the snapshot its first task took), params,
deployment record and task states. Groups and operators build on it; it imports neither.

**One configuration per run.** ``record_release`` writes the configuration it validated into the
record (``config``: the settings and their SHA-256), and every later task of the run uses that
snapshot, so an edit of the YAML during a release changes neither its thresholds nor its checks.
Only where the record is (``artifacts`` and ``connections.aws``) is read from the file, to find it.

**The snapshot, once per machine.** The record is the truth, but every task of a run is a new
process, and reading the snapshot from S3 in each one built the S3 client even in tasks that call
nothing else there, and validated it again. The first process on a machine to read it (or
``record_release``, which writes it) leaves the snapshot and the model validated from it in the local
cache (:mod:`deployment.local_cache`) under the record's location (AWS connection, region, bucket,
and the run's folder, which names the version and the run's identity) and the models' code; the next
ones use it after checking the settings' SHA-256 against the digest the record gave them. Any other
entry, or none, is a miss, and the record is read again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from deployment.run_contract import OUTCOME_TASK_ID, RELEASE_DAG_ID

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig
    from deployment.ledger import Ledger

# Where a manual rollback's record is kept: it has no version of its own.
MANUAL_RECORD_FOLDER = "manual-rollbacks"
# Tasks whose failure does not make the release a failure.
NOT_RELEASE_TASKS = ("notify.", "rollback.", OUTCOME_TASK_ID, "announce_emergency", "announce_failure")
FAILED_STATES = {"failed", "upstream_failed"}


@dataclass(frozen=True)
class Release:
    cfg: DeploymentConfig
    params: dict[str, Any]
    version: str
    run_id: str
    ledger: Ledger

    @property
    def run_key(self) -> str:
        return self.ledger.run_key

    @property
    def emergency(self) -> dict[str, Any]:
        from deployment.run_contract import emergency_flags

        return emergency_flags(self.params)


CONFIG_SECTION = "config"
SNAPSHOT_CACHE = "config-snapshot"
_snapshots: dict[str, DeploymentConfig] = {}


def settings_digest(settings: dict[str, Any]) -> str:
    """The SHA-256 of a snapshot's settings (JSON, keys sorted), as the ``config`` section holds it."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def config_snapshot(cfg: DeploymentConfig) -> dict[str, Any]:
    """The ``config`` section: the validated settings and their digest."""
    settings = cfg.model_dump(mode="json", by_alias=True)
    return {"sha256": settings_digest(settings), "settings": settings}


def _snapshot_key(ledger: Ledger) -> tuple[str, ...]:
    """Where a run's snapshot is (AWS connection and region, bucket, the run's folder), and the
    models' code that validated it."""
    from deployment.config import MODELS_DIGEST

    config = ledger.config
    return (MODELS_DIGEST, config.connections.aws, config.region, ledger.bucket, ledger.prefix)


def remember_snapshot(ledger: Ledger, snapshot: dict[str, Any]) -> DeploymentConfig:
    """The configuration of the run's ``config`` section, as the record holds it, validated and left
    for this machine's next tasks."""
    from deployment.config import DeploymentConfig
    from deployment.local_cache import write_pickle

    cfg = DeploymentConfig.model_validate(snapshot["settings"])
    key = _snapshot_key(ledger)
    entry = {"key": key, "sha256": snapshot.get("sha256"), "settings": snapshot["settings"], "config": cfg}
    write_pickle(SNAPSHOT_CACHE, key, entry)
    return cfg


def _remembered_snapshot(ledger: Ledger) -> DeploymentConfig | None:
    """The run's snapshot from the local cache: only an entry for this very record whose settings
    still have the digest the record gave them; None otherwise."""
    from deployment.config import DeploymentConfig
    from deployment.local_cache import read_pickle

    key = _snapshot_key(ledger)
    entry = read_pickle(SNAPSHOT_CACHE, key)
    if not isinstance(entry, dict) or entry.get("key") != key:
        return None
    settings, cfg = entry.get("settings"), entry.get("config")
    if not isinstance(settings, dict) or not isinstance(cfg, DeploymentConfig):
        return None
    return cfg if entry.get("sha256") == settings_digest(settings) else None


def _run_after(context: Any) -> Any:
    return getattr(context.get("dag_run"), "run_after", None)


def release(context: Any) -> Release:
    """The run's config (its snapshot once ``record_release`` took it), params and record."""
    from deployment.config import load_config
    from deployment.ledger import Ledger

    params = dict(context["params"])
    version, run_id = params["version"], context["run_id"]
    located = Ledger(load_config(), version, run_id, _run_after(context))
    cfg = _snapshots.get(located.prefix) or _remembered_snapshot(located)
    if cfg is None:
        snapshot = located.read(CONFIG_SECTION)
        if snapshot is None:
            return Release(located.config, params, version, run_id, located)
        cfg = remember_snapshot(located, snapshot)
    _snapshots[located.prefix] = cfg
    return Release(cfg, params, version, run_id, Ledger(cfg, version, run_id, _run_after(context)))


def run_config(context: Any) -> DeploymentConfig:
    """The configuration a task of this run uses: the release's snapshot, the file for other DAGs."""
    from deployment.config import load_config

    if context["params"].get("version") and getattr(context.get("ti"), "dag_id", None) == RELEASE_DAG_ID:
        return release(context).cfg
    return load_config()


def current_release() -> Release:
    """:func:`release` of the task running now (call it inside a task's callable)."""
    from airflow.sdk import get_current_context

    return release(get_current_context())


def run_ledger(cfg: DeploymentConfig, context: Any) -> Ledger:
    """The record of this run: by version for a release, in the manual-rollbacks folder otherwise."""
    from deployment.ledger import Ledger

    version = context["params"].get("version") or MANUAL_RECORD_FOLDER
    return Ledger(cfg, version, context["run_id"], _run_after(context))


def task_states(context: Any) -> dict[str, str]:
    """``{task_id: state}`` of this run's task instances, through the Task SDK."""
    ti = context["ti"]
    states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[context["run_id"]])
    return {task_id: str(state) for task_id, state in (states.get(context["run_id"]) or {}).items()}


def failed_release_tasks(states: dict[str, str]) -> list[str]:
    """Tasks of the release itself (not notifications, rollback or outcome) that failed."""
    return sorted(
        task_id
        for task_id, state in states.items()
        if state in FAILED_STATES and not task_id.startswith(NOT_RELEASE_TASKS)
    )


def update_section(ledger: Ledger, section: str, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into a section written by this group's tasks, one after another.

    The tasks of a group that share a section run strictly in sequence, so a
    read-merge-write never races.
    """
    value = {**(ledger.read(section) or {}), **fields}
    ledger.write(section, value)
    return value
