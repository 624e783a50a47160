"""Watch the release's metrics for a while: a traffic step's hold, or the post-deployment monitoring.

Every ``poll_interval`` seconds one fetch (GetMetricData over the last interval,
plus the alarms firing) and one verdict; the first breach, or insufficient data
beyond the configured policy, ends the watch at once. A watch of ``duration`` 0
checks once, straight away. The event carries every sample and verdict.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from deployment.triggers._base import call, client_in_thread


class MetricWatchTrigger(BaseTrigger):
    """Run the metric analysis every ``poll_interval`` seconds for ``duration`` seconds.

    :param query: ``MetricQuery.to_dict()``: namespace, dimensions, metric names, period, alarm prefix.
    :param thresholds: ``cfg.thresholds.model_dump(mode="json")``.
    :param baseline_rps: the pre-release request rate of the traffic band; None leaves it unchecked
        (and says so in every verdict).
    :param label: what is watched (e.g. ``shift_traffic_10``), for logs and the event.
    """

    def __init__(
        self,
        *,
        aws_conn_id: str,
        region_name: str,
        query: dict[str, Any],
        thresholds: dict[str, Any],
        baseline_rps: float | None,
        duration: float,
        poll_interval: float,
        label: str,
    ) -> None:
        super().__init__()
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.query = query
        self.thresholds = thresholds
        self.baseline_rps = baseline_rps
        self.duration = duration
        self.poll_interval = poll_interval
        self.label = label

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "aws_conn_id": self.aws_conn_id,
                "region_name": self.region_name,
                "query": self.query,
                "thresholds": self.thresholds,
                "baseline_rps": self.baseline_rps,
                "duration": self.duration,
                "poll_interval": self.poll_interval,
                "label": self.label,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from deployment.analysis import Watch, evaluate, planned_polls
        from deployment.config import Thresholds
        from deployment.hooks.aws import CloudWatchHook
        from deployment.metrics import MetricQuery, fetch_sample

        thresholds = Thresholds.model_validate(self.thresholds)
        query = MetricQuery(**self.query)
        watch = Watch(thresholds, planned_polls(self.duration, self.poll_interval))
        base = {
            "label": self.label,
            "duration": self.duration,
            "poll_interval": self.poll_interval,
            "baseline_rps": self.baseline_rps,
        }
        try:
            client = await client_in_thread(CloudWatchHook, self.aws_conn_id, self.region_name)
            while True:
                if self.duration > 0:
                    await asyncio.sleep(self.poll_interval)
                sample = await call(fetch_sample, client, query, self.poll_interval)
                verdict = evaluate(sample, thresholds, self.baseline_rps)
                self.log.info(
                    "%s poll %d: %s (%s)",
                    self.label,
                    len(watch.verdicts) + 1,
                    verdict.outcome,
                    verdict.detail,
                )
                outcome = watch.add(verdict)
                if outcome is not None:
                    yield TriggerEvent({**base, "status": outcome, "watch": watch.to_dict()})
                    return
                if self.duration <= 0:  # a one-off check the extend policy asked to repeat
                    await asyncio.sleep(self.poll_interval)
        except Exception as err:  # a fetch that fails ends the watch with its reason, samples kept
            yield TriggerEvent(
                {
                    **base,
                    "status": "error",
                    "message": f"{type(err).__name__}: {err}",
                    "watch": watch.to_dict(),
                }
            )
