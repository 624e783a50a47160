"""include/airflow_local_settings.py: the components whose forks parse or run tasks preload
what those forks import, and the list names modules that exist."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import airflow_local_settings as local_settings
import pytest


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["airflow", "scheduler"], local_settings.PARSE + local_settings.TASKS),
        (
            ["airflow", "celery", "worker", "--queues", "default", "--concurrency", "4"],
            local_settings.PARSE + local_settings.TASKS,
        ),
        (["airflow", "dag-processor"], local_settings.PARSE),
        (["airflow", "api-server", "--port", "8080"], ()),
        (["airflow", "triggerer"], ()),
        (["airflow", "celery", "flower"], ()),
        (["pytest", "tests/unit"], ()),
    ],
)
def test_only_forking_components_preload(argv, expected):
    assert local_settings.modules_for(argv) == expected


def test_every_preloaded_module_is_installed():
    assert local_settings.preload(local_settings.PARSE + local_settings.TASKS) == []


def test_a_scheduler_process_has_them_before_it_forks():
    # Airflow imports airflow_local_settings while `import airflow` initialises its settings.
    wanted = ("boto3", "cfnlint.api", "airflow.providers.standard.operators.hitl")
    probe = (
        f"import sys; sys.argv = ['airflow', 'scheduler']; import airflow; "
        f"print(all(m in sys.modules for m in {wanted!r}))"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(local_settings.__file__).parent)}
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, check=True, env=env
    )
    assert out.stdout.strip().splitlines()[-1] == "True", out.stderr[-2000:]


def test_a_dag_processor_fork_parses_the_dags_without_importing_boto3_again():
    """What the DAG files import at parse time is preloaded: a parse imports none of the heavy
    third-party libraries (botocore alone is 0.3-0.8 s of a fork's CPU on the 2-core machine)."""
    root = Path(local_settings.__file__).parents[1]
    probe = (
        "import sys; sys.argv = ['airflow', 'dag-processor']; import airflow; "
        "from airflow.dag_processing.dagbag import DagBag; before = set(sys.modules); "
        f"bag = DagBag({str(root / 'dags')!r}); assert not bag.import_errors, bag.import_errors; "
        "print(sorted({m.split('.')[0] for m in set(sys.modules) - before}))"
    )
    env = {**os.environ, "PYTHONPATH": f"{root / 'include'}:{root / 'plugins'}"}
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, check=True, env=env
    )
    imported = out.stdout.strip().splitlines()[-1]
    for heavy in ("boto3", "botocore", "s3transfer", "requests", "urllib3"):
        assert f"'{heavy}'" not in imported, imported


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["airflow", "scheduler"], local_settings.AWS_SERVICES),
        (["airflow", "triggerer"], ()),
        (["airflow", "api-server", "--port", "8080"], ()),
        (["airflow", "dag-processor"], None),
        (["airflow", "celery", "worker", "--queues", "default"], local_settings.AWS_SERVICES),
        (["airflow", "celery", "flower"], None),
    ],
)
def test_components_that_open_aws_sessions_share_the_models(argv, expected):
    assert local_settings._component(argv, local_settings.AWS_MODELS) == expected


def test_every_session_reads_the_aws_models_through_one_loader(monkeypatch):
    import boto3
    import botocore.loaders
    import botocore.session

    monkeypatch.setattr(botocore.session, "create_loader", botocore.session.create_loader)
    decoded = []
    real_load = botocore.loaders.JSONFileLoader.load_file
    monkeypatch.setattr(
        botocore.loaders.JSONFileLoader,
        "load_file",
        lambda self, path: decoded.append(path) or real_load(self, path),
    )
    local_settings.share_aws_models(("cloudformation",))
    warmed = len(decoded)
    assert warmed and any("cloudformation" in path for path in decoded)

    sessions = [boto3.session.Session(region_name="eu-west-1") for _ in range(3)]
    for session in sessions:
        session.client("cloudformation", endpoint_url="http://127.0.0.1:9")
    assert len(decoded) == warmed, "a new session decoded the AWS data files again"
    loaders = {id(s._session.get_component("data_loader")) for s in sessions}
    assert len(loaders) == 1
    paths = sessions[0]._session.get_component("data_loader").search_paths
    assert len(paths) == len(set(paths)), "boto3's data folder is added once, not once per session"
    custom = botocore.session.get_session()
    custom.set_config_variable("data_path", "/tmp/aws-models")
    assert "/tmp/aws-models" in custom.get_component("data_loader").search_paths, "AWS_DATA_PATH is honoured"
