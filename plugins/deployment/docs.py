"""Markdown shown in the Airflow UI for DAGs and task groups: DAG docs kept in include/docs/, and
the helpers the task groups' docs (``group_doc`` in each ``deployment.phases`` module) share, so that
the numbers they show are the configuration's."""

from __future__ import annotations

from deployment.config import PROJECT_ROOT

DOCS_DIR = PROJECT_ROOT / "include" / "docs"


def dag_doc(name: str) -> str:
    return (DOCS_DIR / f"{name}.md").read_text()


def duration(seconds: float) -> str:
    """Whole hours, else whole minutes, else seconds: ``172800`` → ``48 h``, ``300`` → ``5 min``."""
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def number(value: float) -> str:
    """A threshold as the YAML would say it: ``1.0`` → ``1``, ``0.25`` → ``0.25``."""
    return f"{value:g}"
