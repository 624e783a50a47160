"""Watch the new colour's metrics: a traffic step's hold, or the post-deployment monitoring.

The watch is fixed in absolute time, so a triggerer restart cannot lengthen it:

- ``data_since`` is when the step's weight took effect; no poll reads data from before it.
- Poll ``k`` judges its own interval ``[data_since + (k-1)·poll, data_since + k·poll]`` (the data
  that arrived since the previous poll: an interval without enough of the canary's requests is
  not enough data, never healthy) and the step so far ``[data_since, data_since + k·poll]``.
- It is due ``query.lag_seconds`` after its end, and judged only once CloudWatch has published
  the interval to its end (the total has requests in its last period or a later one): until then the same
  interval is read again, every quarter poll, up to the deadline. No fixed lag is trusted.
- The watch covers data up to ``hold_until`` (at least one full poll), then ends healthy; polls
  without enough data add one more poll each, as the policy allows.
- ``deadline`` is the wall-clock time by which the watch must have decided.

A restarted trigger resumes at the latest complete window and plans only the polls left before
``hold_until``. A failed API call (an error, throttling) is not a breach: the same window is
retried with backoff until the deadline. A breach ends the watch at once; with ``restore`` the
trigger first puts all traffic back on the stable colour through the router, so users leave
the bad version within one poll, before the task even resumes.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import TriggerEvent

from deployment.triggers._base import FieldsTrigger, call, client_in_thread

if TYPE_CHECKING:
    from deployment.traffic.router import TrafficRouter

RETRY_FIRST_SECONDS = 0.5


def window_bounds(data_since: datetime, poll: float, k: int) -> tuple[datetime, datetime]:
    """The interval of poll ``k`` (from 1): the one poll interval up to ``data_since + k·poll``."""
    end = data_since + timedelta(seconds=poll * k)
    return end - timedelta(seconds=poll), end


def publish_retry(poll: float) -> float:
    """How often an interval not yet published to its end is read again: a quarter poll, 0.5-15 s."""
    return min(max(poll / 4, 0.5), 15.0)


def first_window(data_since: datetime, poll: float, lag: float, now: datetime) -> int:
    """The window to poll first: 1 on a fresh start, else the latest one published by ``now``."""
    published = (now - timedelta(seconds=lag) - data_since).total_seconds()
    return max(1, math.floor(published / poll))


def last_window(data_since: datetime, hold_until: datetime, poll: float) -> int:
    """The window that covers ``hold_until``: the last one the watch plans."""
    return max(1, math.ceil((hold_until - data_since).total_seconds() / poll - 1e-9))


def restore_router(api: dict[str, Any] | None = None) -> TrafficRouter:
    """The router a breach restores through (paired with the API's alias when ``api`` is given),
    its clients built: the watch builds it before its first wait, so a restore pays only for its
    own calls."""
    from deployment.config import load_config
    from deployment.traffic import router_for
    from deployment.traffic.api_alias import ApiVersions

    router = router_for(load_config(), ApiVersions.from_dict(api) if api else None)
    router.prepare()
    return router


def restore_traffic(
    stable_colour: str, api: dict[str, Any] | None = None, router: TrafficRouter | None = None
) -> dict[str, Any]:
    """All traffic to ``stable_colour`` through ``router`` (built now when None) (idempotent), the
    API's alias with it when ``api`` is given; what happened, for the record."""
    change = (router or restore_router(api)).restore(stable_colour)
    return {
        "colour": stable_colour,
        "at": datetime.now(UTC).isoformat(),
        "change": change.to_dict() if change is not None else None,
    }


# The trigger's own fields that every event carries (the query, thresholds, connection and restore
# stay in the trigger).
EVENT_FIELDS = (
    "label",
    "baseline_rps",
    "canary_colour",
    "stable_colour",
    "data_since",
    "hold_until",
    "deadline",
    "ignore_alarms",
)


class MetricWatchTrigger(FieldsTrigger):
    """Judge the new colour once per ``poll_interval`` from ``data_since`` to ``hold_until``.

    :param query: ``MetricQuery.to_dict()``.
    :param thresholds: ``cfg.thresholds.model_dump(mode="json")``.
    :param baseline_rps: the pre-release request rate of the traffic band (None: unchecked, and said).
    :param canary_colour: the release's colour; ``stable_colour`` the one it is compared with.
    :param ignore_alarms: alarms the run's ``emergency.ignore_alarms`` lists: firing, they do not breach.
    :param data_since: ISO time the step's weights took effect.
    :param hold_until: ISO time (data time) the watch must cover.
    :param deadline: ISO wall-clock time by which the watch decides, whatever happens.
    :param restore: on a breach, put all traffic on ``stable_colour`` before yielding.
    :param api: the API canary's versions (``ApiVersions.to_dict()``): each poll also judges the new
        version's invocations against the previous version's (Lambda's metrics by ``ExecutedVersion``),
        either half's breach breaches, and a restore moves the alias back with the colours.
    """

    fields = (
        "aws_conn_id",
        "region_name",
        "query",
        "thresholds",
        "poll_interval",
        *EVENT_FIELDS,
        "restore",
        "api",
    )

    def __init__(
        self,
        *,
        aws_conn_id: str,
        region_name: str,
        query: dict[str, Any],
        thresholds: dict[str, Any],
        baseline_rps: float | None,
        poll_interval: float,
        label: str,
        canary_colour: str,
        stable_colour: str,
        data_since: str,
        hold_until: str,
        deadline: str,
        ignore_alarms: list[str] | None = None,
        restore: bool = True,
        api: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.query = query
        self.thresholds = thresholds
        self.baseline_rps = baseline_rps
        self.poll_interval = poll_interval
        self.label = label
        self.canary_colour = canary_colour
        self.stable_colour = stable_colour
        self.data_since = data_since
        self.hold_until = hold_until
        self.deadline = deadline
        self.ignore_alarms = list(ignore_alarms or [])
        self.restore = restore
        self.api = api

    async def run(self) -> AsyncIterator[TriggerEvent]:  # noqa: C901 - the poll loop, read top to bottom
        from deployment.aws.cloudwatch_metrics import MetricQuery, fetch_colour_sample
        from deployment.config import Thresholds
        from deployment.hooks.aws import CloudWatchHook
        from deployment.judge.canary import judge
        from deployment.judge.paired import PairedVerdict
        from deployment.judge.verdicts import BREACH, Watch

        thresholds = Thresholds.model_validate(self.thresholds)
        query = MetricQuery(**self.query)
        api_query = None
        if self.api:
            api_query = MetricQuery.lambda_alias(
                self.api["function"],
                self.api["alias"],
                period_seconds=query.period_seconds,
                lag_seconds=query.lag_seconds,
            )
        poll, lag = float(self.poll_interval), float(query.lag_seconds)
        since = datetime.fromisoformat(self.data_since)
        until = datetime.fromisoformat(self.hold_until)
        deadline = datetime.fromisoformat(self.deadline)
        k = first_window(since, poll, lag, datetime.now(UTC))
        watch = Watch(thresholds, max(1, last_window(since, until, poll) - k + 1))
        errors: list[dict[str, Any]] = []
        fields = self.serialize()[1]
        base = {
            **{key: fields[key] for key in EVENT_FIELDS},
            "poll_interval": poll,
            "resumed_at_window": k,
        }

        # Per interval read before CloudWatch had published it to its end: how long it waited.
        waits: dict[int, dict[str, Any]] = {}

        def event(status: str, **extra: Any) -> TriggerEvent:
            return TriggerEvent(
                {
                    **base,
                    "status": status,
                    "api_errors": errors,
                    "publication_waits": list(waits.values()),
                    "watch": watch.to_dict(),
                    **extra,
                }
            )

        try:  # built before the first wait, so that no poll pays for it
            client = await client_in_thread(CloudWatchHook, self.aws_conn_id, self.region_name)
        except Exception:  # built again in the loop, where a failure is retried and recorded
            client = None
        router = None
        if self.restore:
            try:  # likewise, so that a breach's restore pays only for its writes
                router = await call(restore_router, self.api)
            except Exception as err:  # built again at the restore, which records a failure
                self.log.warning("%s: the restore's router is built at a breach: %s", self.label, err)
        backoff = RETRY_FIRST_SECONDS
        while True:
            start, end = window_bounds(since, poll, k)
            ready = end + timedelta(seconds=lag)
            wait = (ready - datetime.now(UTC)).total_seconds()
            if ready > deadline or datetime.now(UTC) > deadline:
                last = f"; last API error: {errors[-1]['error']}" if errors else ""
                late = waits.get(k)
                if late:
                    last += f"; CloudWatch had published up to {late['published_to']}, not {end.isoformat()}"
                yield event(
                    "error" if errors else "insufficient_data",
                    message=f"no decision by the deadline {self.deadline} (window {k}){last}",
                )
                return
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                if client is None:
                    client = await client_in_thread(CloudWatchHook, self.aws_conn_id, self.region_name)
                reads = [
                    call(
                        fetch_colour_sample,
                        client,
                        query,
                        canary=self.canary_colour,
                        stable=self.stable_colour,
                        since=since,
                        start=start,
                        end=end,
                        ignore_alarms=self.ignore_alarms,
                    )
                ]
                if api_query is not None:  # read side by side: the poll waits for the slower one only
                    reads.append(
                        call(
                            fetch_colour_sample,
                            client,
                            api_query,
                            canary=self.api["new"],
                            stable=self.api["previous"],
                            since=since,
                            start=start,
                            end=end,
                        )
                    )
                (sample, published), *api_read = await asyncio.gather(*reads)
                api_sample = None
                if api_read:
                    api_sample, api_published = api_read[0]
                    published = min(published, api_published) if published and api_published else None
            except Exception as err:  # an API failure is not a breach: retry this window until the deadline
                errors.append(
                    {
                        "window": k,
                        "at": datetime.now(UTC).isoformat(),
                        "error": f"{type(err).__name__}: {err}",
                    }
                )
                self.log.warning(
                    "%s window %d: %s; retrying in %.1fs", self.label, k, errors[-1]["error"], backoff
                )
                remaining = (deadline - datetime.now(UTC)).total_seconds()
                await asyncio.sleep(max(0.0, min(backoff, remaining)))
                backoff = min(backoff * 2, poll)
                continue
            backoff = RETRY_FIRST_SECONDS
            if published is None or published < end:  # not all of it yet: read it again, judge none of it
                late = waits.setdefault(k, {"window": k, "end": end.isoformat(), "reads": 0})
                late.update(
                    reads=late["reads"] + 1,
                    published_to=published.isoformat() if published else None,
                    waited_seconds=round((datetime.now(UTC) - ready).total_seconds(), 3),
                )
                remaining = (deadline - datetime.now(UTC)).total_seconds()
                await asyncio.sleep(max(0.0, min(publish_retry(poll), remaining)))
                continue  # past the deadline, the loop's top ends the watch
            verdict = judge(sample, thresholds, self.baseline_rps)
            if api_sample is not None:
                verdict = PairedVerdict(verdict, judge(api_sample, thresholds, check_band=False))
            self.log.info(
                "%s window %d [%s, %s]: %s (%s)", self.label, k, start, end, verdict.outcome, verdict.detail
            )
            outcome = watch.add(verdict)
            if outcome == BREACH and self.restore:
                try:
                    restored = await call(restore_traffic, self.stable_colour, self.api, router)
                except Exception as err:  # the task restores again when it resumes; say why here
                    restored = {"colour": self.stable_colour, "error": f"{type(err).__name__}: {err}"}
                yield event(outcome, traffic_restored=restored)
                return
            if outcome is not None:
                yield event(outcome)
                return
            k += 1

    async def on_kill(self) -> None:
        """Marked failed (task or run) by hand while traffic was split: all of it back on stable."""
        from deployment.config import load_config
        from deployment.rollback.cancel import restore_after_cancel

        ti = self.task_instance
        cfg = load_config()
        await asyncio.to_thread(restore_after_cancel, cfg, ti.run_id, ti.task_id, self.stable_colour)
