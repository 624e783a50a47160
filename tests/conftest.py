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

# botocore sessions share one loader in the tests as in Airflow's components: the unit tier opens
# several sessions per test (moto's fixtures and the provider's hooks), each decoding the same JSON.
import airflow_local_settings  # noqa: E402

airflow_local_settings.share_aws_models()

# The session's sandbox and LocalExecutor stack (fixtures ``sandbox``, ``stack_config``, ``local_stack``,
# ``local_clients``, ``local``), shared by tests/integration and tests/e2e. Imports nothing heavy.
pytest_plugins = ["_stack_fixtures"]


# Seconds each of the real-engine tier's longest tests took (2026-12-02, the 2-core machine), to
# start them first: pytest-xdist hands tests out in collection order, so a long test collected last
# leaves the other workers idle at the end.
LONGEST_FIRST = {
    "test_kills_during_a_rollback_then_a_monitoring_only_rerun_is_refused": 131,
    "test_kills_during_a_release_that_completes": 95,
    "test_failed_release_is_rolled_back_then_cleared_and_completed": 83,
    "test_a_second_failure_after_a_rerun_rolls_the_stack_back_too": 81,
    "test_worker_killed_mid_traffic_shift_is_retried": 79,
    "test_a_release_then_a_manual_rollback_puts_the_previous_version_back": 77,
    "test_degraded_stable_ignored_alarm_lag_and_a_cloudwatch_blip": 59,
    "test_slack_down_during_notify": 59,
    "test_breach_during_monitoring": 54,
    "test_breach_at_50_percent": 49,
    "test_a_release_through_the_front_door": 42,
    "test_no_approval_opens_the_gate_after_its_deadline": 42,
    "test_a_release_on_route53_where_it_is_sound": 42,
    "test_a_canary_with_eight_percent_errors_fails_the_10_percent_step": 42,
    "test_a_latency_only_regression_fails_the_10_percent_step": 41,
    "test_a_broken_build_or_tag_stops_the_release_before_approval": 39,
    "test_amplify_job_fails": 38,
    "test_alarm_fires_after_the_infrastructure_deploy": 35,
    "test_stack_update_fails": 29,
    "test_approval_times_out": 28,
    "test_build_republished_after_the_plan_was_approved": 24,
}


def pytest_collection_modifyitems(items):
    """The Celery stack's test first (see ``_stack_fixtures``), then the longest tests, then the rest."""
    items.sort(
        key=lambda item: (
            "celery" not in getattr(item, "fixturenames", ()),
            -LONGEST_FIRST.get(item.originalname, 0),
        )
    )
