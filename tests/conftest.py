"""Every test runs against a throwaway Airflow home: SQLite, no example DAGs, our dags/."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_home = tempfile.mkdtemp(prefix="airflow-home-")
os.environ["AIRFLOW_HOME"] = _home
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(ROOT / "plugins")
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_home}/airflow.db"
os.environ.setdefault("DEPLOYMENT_CONFIG", "sandbox")

# The session's sandbox and LocalExecutor stack (fixtures ``sandbox``, ``stack_config``, ``local_stack``,
# ``local_clients``, ``local``), shared by tests/integration and tests/e2e. Imports nothing heavy.
pytest_plugins = ["_stack_fixtures"]


# Seconds each of the real-engine tier's longest tests took (stop 20's full run, 2 cores, nothing else
# running; the first two and the manual rollback measured after that run's fixes), to start them first:
# pytest-xdist hands tests out in collection order, so a long test collected last leaves one worker
# running alone at the end.
LONGEST_FIRST = {
    "test_kills_during_a_rollback_then_a_monitoring_only_rerun_is_refused": 260,
    "test_a_release_then_a_manual_rollback_puts_the_previous_version_back": 150,
    "test_failed_release_is_rolled_back_then_cleared_and_completed": 148,
    "test_kills_during_a_release_that_completes": 144,
    "test_a_second_failure_after_a_rerun_rolls_the_stack_back_too": 129,
    "test_worker_killed_mid_traffic_shift_is_retried": 121,
    "test_degraded_stable_ignored_alarm_lag_and_a_cloudwatch_blip": 120,
    "test_breach_during_monitoring": 95,
    "test_slack_down_during_notify": 89,
}


def pytest_collection_modifyitems(items):
    """The Celery stack's test first (see ``_stack_fixtures``), then the longest tests, then the rest."""
    items.sort(
        key=lambda item: (
            "celery" not in getattr(item, "fixturenames", ()),
            -LONGEST_FIRST.get(item.originalname, 0),
        )
    )
