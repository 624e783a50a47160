"""Phase 8, monitoring: production watched for ``timings.monitoring_seconds`` after the release.

One analysis every ``timings.poll_interval_seconds`` (error rate, latency, alarms, the
request-rate band), in the triggerer: no worker waits. A breach fails at once, and so
does a lack of data beyond the configured policy. ``emergency.skip_monitoring``
skips the watch: the task ends skipped (not green: it watched nothing), and the skip and
its reason go to its log, the ``monitoring`` section and the team channel. The 100 %
traffic step has judged the release on a poll of its own before this phase either way.
Before it watches, and again when the watch ends, the shared guard
(``deployment.guards``) checks that the release is what production serves: a rerun of
monitoring alone after a rollback would otherwise watch the old version and pass.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import TaskGroup

from deployment.operators.analysis import MonitorReleaseOperator

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig

GROUP_ID = "monitoring"
MONITOR_RETRIES = 3


class GuardedMonitorOperator(MonitorReleaseOperator):
    """Watch production after the release, provided the release is live (checked before and after).

    A breach or the guard's refusal fails at once (``AirflowFailException``); a task whose worker
    or API server went away is retried, and the retry watches again.
    """

    def __init__(self, **kwargs: Any) -> None:
        """``MonitorReleaseOperator``'s arguments; retries default to ``MONITOR_RETRIES``, the delay
        5 s and doubling."""
        kwargs.setdefault("retries", MONITOR_RETRIES)
        kwargs.setdefault("retry_delay", timedelta(seconds=5))
        kwargs.setdefault("retry_exponential_backoff", 2.0)
        super().__init__(**kwargs)

    def execute(self, context: Any) -> dict[str, Any] | None:
        from deployment.guards import require_live_release

        require_live_release(context, "monitoring")
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        from deployment.guards import require_live_release

        result = super().execute_complete(context, event)
        require_live_release(context, "monitoring")  # rolled back or moved while it watched
        return result


def group_doc(config: DeploymentConfig) -> str:
    """The group's doc in the UI, with the configuration's numbers."""
    from deployment.docs import duration, number

    t, timings = config.thresholds, config.timings
    low, high = t.traffic_band
    if t.insufficient_data == "extend":
        no_data = f"extends the watch by one poll, at most {t.max_insufficient_polls} times"
    else:
        no_data = "fails the watch"
    return (
        f"**Phase 8, monitoring:** `watch_metrics` watches production for "
        f"{duration(timings.monitoring_seconds)} after the release, one analysis every "
        f"{duration(timings.poll_interval_seconds)}, deferred: error rate under "
        f"{number(t.error_rate_percent)} %, latency p95 under {number(t.latency_p95_ms)} ms and p99 under "
        f"{number(t.latency_p99_ms)} ms, the request rate within {number(low)}x to {number(high)}x the "
        f"pre-release rate, no alarm firing. A poll with fewer than {t.min_requests_per_poll} requests "
        f"{no_data}.\n\n"
        "A breach fails the task at once and the `rollback` group puts the previous version back. "
        "`emergency.skip_monitoring` ends it skipped. Clearing only this group after a rollback is "
        "refused: clear from `validate_infrastructure` with its downstream tasks to deploy again."
    )


def monitoring_group(config: DeploymentConfig) -> TaskGroup:
    with TaskGroup(
        group_id=GROUP_ID,
        tooltip="Watch production metrics after the release, one analysis per poll interval (deferred)",
        doc_md=group_doc(config),
    ) as group:
        GuardedMonitorOperator(task_id="watch_metrics", doc_md=MonitorReleaseOperator.__doc__)
    return group
