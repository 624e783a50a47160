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
        (["airflow", "celery", "worker", "--queues", "default", "--concurrency", "4"], ()),
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
