"""Phase 8, monitoring: production watched for ``timings.monitoring_seconds`` after the release.

One analysis every ``timings.poll_interval_seconds`` (error rate, latency, alarms, the
request-rate band), in the triggerer: no worker waits. A breach fails at once, and so
does a lack of data beyond the configured policy. ``emergency.skip_monitoring``
skips the watch; the skip and its reason go to the ``monitoring`` section and the
team channel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import TaskGroup

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig

GROUP_ID = "monitoring"


def monitoring_group(config: DeploymentConfig) -> TaskGroup:
    from deployment.operators.analysis import MonitorReleaseOperator

    with TaskGroup(
        group_id=GROUP_ID,
        tooltip="Watch production metrics after the release, one analysis per poll interval (deferred)",
        doc_md=__doc__,
    ) as group:
        MonitorReleaseOperator(task_id="watch_metrics", doc_md=MonitorReleaseOperator.__doc__)
    return group
