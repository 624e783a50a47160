"""The run context every task shares: the run's config (reloaded), params and deployment record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig
    from deployment.ledger import Ledger


@dataclass(frozen=True)
class Release:
    cfg: DeploymentConfig
    params: dict[str, Any]
    version: str
    run_id: str
    ledger: Ledger

    @property
    def run_key(self) -> str:
        from deployment.ledger import run_key

        return run_key(self.run_id)

    @property
    def emergency(self) -> dict[str, Any]:
        from deployment.run_contract import emergency_flags

        return emergency_flags(self.params)


def release(context: Any) -> Release:
    """The run's config (reloaded now), params and record, from a task's context."""
    from deployment.config import load_config
    from deployment.ledger import Ledger

    cfg = load_config()
    params = dict(context["params"])
    version, run_id = params["version"], context["run_id"]
    return Release(cfg, params, version, run_id, Ledger(cfg, version, run_id))


def current_release() -> Release:
    """:func:`release` of the task running now (call it inside a task's callable)."""
    from airflow.sdk import get_current_context

    return release(get_current_context())


def update_section(ledger: Ledger, section: str, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into a section written by this group's tasks, one after another.

    The tasks of a group that share a section run strictly in sequence, so a
    read-merge-write never races.
    """
    value = {**(ledger.read(section) or {}), **fields}
    ledger.write(section, value)
    return value
