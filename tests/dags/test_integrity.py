"""Every DAG file loads, and follows the house rules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag

DAGS_DIR = Path(__file__).resolve().parents[2] / "dags"
DAG_FILES = sorted(DAGS_DIR.glob("*.py"))
# Modules a DAG file may import at its top level: cheap ones only.
ALLOWED_TOP_LEVEL = (
    "__future__",
    "datetime",
    "airflow.sdk",
    "deployment.config",
    "deployment.docs",
    "deployment.run_contract",
    "deployment.phases",
    "deployment.dag_policy",
    "deployment.dag_reuse",
)


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    return DagBag(dag_folder=str(DAGS_DIR))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert dagbag.dags, "no DAG was loaded"


def test_every_file_defines_a_dag(dagbag):
    loaded_files = {Path(d.fileloc).name for d in dagbag.dags.values()}
    assert loaded_files == {f.name for f in DAG_FILES}


def test_dags_carry_tags_owner_and_docs(dagbag):
    for dag in dagbag.dags.values():
        assert "deployment" in dag.tags, dag.dag_id
        assert dag.doc_md and len(dag.doc_md) > 200, dag.dag_id
        assert all(t.owner == "platform" for t in dag.tasks), dag.dag_id
        assert dag.schedule is None or dag.timetable.summary == "None", dag.dag_id
        assert dag.max_active_runs == 1, dag.dag_id


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_top_level_imports_are_cheap(path):
    """No hooks, provider clients or network libraries imported at parse time."""
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            assert name.startswith(ALLOWED_TOP_LEVEL), f"{path.name} imports {name} at module level"


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_no_connections_or_variables_at_parse_time(path):
    source = path.read_text()
    for forbidden in ("BaseHook.get_connection", "Variable.get", "get_connection(", "boto3"):
        assert forbidden not in source, f"{path.name} uses {forbidden} at parse time"


def test_every_task_result_is_one_xcom(dagbag):
    """A mapping result is not unrolled into an XCom per key: each is an Execution API call, and no
    phase reads one (they hand data over through the deployment record)."""
    unrolled = [
        f"{dag.dag_id}.{t.task_id}"
        for dag in dagbag.dags.values()
        for t in dag.tasks
        if getattr(t, "multiple_outputs", False)
    ]
    assert unrolled == []
