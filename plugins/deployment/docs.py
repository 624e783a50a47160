"""Markdown shown in the Airflow UI for DAGs and task groups, kept in include/docs/."""

from __future__ import annotations

from deployment.config import PROJECT_ROOT

DOCS_DIR = PROJECT_ROOT / "include" / "docs"


def dag_doc(name: str) -> str:
    return (DOCS_DIR / f"{name}.md").read_text()
