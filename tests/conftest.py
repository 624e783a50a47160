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


# Seconds each of the real-engine tier's longest tests took (2026-12-07, the 2-core machine, under
# some load), to start them first: pytest-xdist hands tests out in collection order, so a long test
# collected last leaves the other workers idle at the end.
LONGEST_FIRST = {
    "test_kills_during_a_rollback_then_a_monitoring_only_rerun_is_refused": 223,
    "test_kills_during_a_release_that_completes": 161,
    "test_slack_down_during_notify": 137,
    "test_release_approved_by_two_users_succeeds_on_celery": 137,
    "test_a_second_failure_after_a_rerun_rolls_the_stack_back_too": 134,
    "test_degraded_stable_ignored_alarm_lag_and_a_cloudwatch_blip": 128,
    "test_failed_release_is_rolled_back_then_cleared_and_completed": 119,
    "test_an_old_run_cleared_after_a_newer_release_went_live_leaves_it_live": 117,
    "test_worker_killed_mid_traffic_shift_is_retried": 105,
    "test_breach_at_50_percent": 93,
    "test_breach_during_monitoring": 92,
    "test_a_release_then_a_manual_rollback_puts_the_previous_version_back": 80,
    "test_a_latency_regression_in_the_last_poll_of_the_50_percent_step_stops_it": 75,
    "test_a_release_through_the_front_door": 71,
    "test_a_latency_only_regression_fails_the_10_percent_step": 70,
    "test_a_code_object_replaced_after_the_approvals_never_runs": 66,
    "test_a_release_on_route53_where_it_is_sound": 63,
    "test_amplify_job_fails": 63,
    "test_a_canary_that_stops_answering_fails_its_step": 59,
    "test_alarm_fires_after_the_infrastructure_deploy": 58,
    "test_a_broken_build_or_tag_stops_the_release_before_approval": 58,
    "test_a_configuration_edited_during_a_release_does_not_change_it": 58,
    "test_a_p99_only_latency_regression_fails_the_10_percent_step": 57,
    "test_a_run_cancelled_during_its_smoke_tests_goes_back_to_the_stable_colour": 56,
    "test_a_canary_with_five_percent_errors_fails_the_10_percent_step": 56,
    "test_a_run_cancelled_during_monitoring_goes_back_to_the_stable_colour": 53,
    "test_no_approval_opens_the_gate_after_its_deadline": 50,
    "test_stack_update_fails": 40,
    "test_a_run_cancelled_between_two_steps_goes_back_to_the_stable_colour": 39,
    "test_a_run_cancelled_while_its_weights_propagate_goes_back_to_the_stable_colour": 37,
    "test_a_rejected_release_stays_rejected_when_cleared_and_re_approved": 27,
    "test_rollback_is_refused_while_a_release_past_its_gate_runs": 26,
    "test_an_emergency_flag_refused_at_the_start_and_marked_past_changes_nothing": 25,
    "test_approval_rejected": 25,
    "test_cfn_lint_error": 24,
    "test_approval_times_out": 24,
    "test_build_republished_after_the_plan_was_approved": 24,
    "test_backup_fails": 20,
    "test_approval_rules_and_a_second_trigger_waits_in_the_queue": 20,
}


def pytest_collection_modifyitems(items):
    """The Celery stack's test first (see ``_stack_fixtures``), then the longest tests, then the rest."""
    items.sort(
        key=lambda item: (
            "celery" not in getattr(item, "fixturenames", ()),
            -LONGEST_FIRST.get(item.originalname, 0),
        )
    )
