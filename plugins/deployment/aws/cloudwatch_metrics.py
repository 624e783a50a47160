"""Fetch what the analysis judges: GetMetricData per poll, plus the alarms firing.

A traffic step or the monitoring fetches, for each poll, the new colour's series, the stable
colour's series (``metrics.dimensions`` plus ``metrics.colour_dimension``) and the total
(``metrics.dimensions``) over two windows: the poll's own interval (the data that arrived since
the previous poll) and the step so far. Each window is one bucket (its period is the window):
request count (Sum), error count (Sum), latency Average (recorded) and p95/p99 (judged;
CloudWatch computes percentiles from the values the app publishes, not from statistic sets).
The step's call also reads each colour's median latency per ``metrics.period_seconds`` (the
rank test's periods). One call per window (a GetMetricData call has one time range), after
a first that reads the total's request count per period from the interval's start to now: the
last period with data says how far CloudWatch has published. The alarms are those whose name
starts with ``alarms.prefix`` and whose state is ALARM (DescribeAlarms).

The whole-environment sample of staging and the rollback's check (:func:`fetch_sample`) sums
``metrics.period_seconds`` buckets, latency as Sum and SampleCount.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from deployment.judge.canary import ColourSample, Series, split_alarms
from deployment.judge.verdicts import HEALTHY, Sample, evaluate, request_rate

# One window of one series: (field of Series, metric of the query, statistic).
_WINDOW_STATS = (
    ("requests", "requests_metric", "Sum"),
    ("errors", "errors_metric", "Sum"),
    ("latency_ms", "latency_metric", "Average"),
    ("p95_ms", "latency_metric", "p95"),
    ("p99_ms", "latency_metric", "p99"),
)
SERIES_PREFIXES = {"c_": "canary", "s_": "stable", "t_": "total"}
THROTTLES = "throttles"

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig

_QUERIES = (
    ("requests", "requests_metric", "Sum"),
    ("errors", "errors_metric", "Sum"),
    ("latency_sum", "latency_metric", "Sum"),
    ("latency_count", "latency_metric", "SampleCount"),
)


@dataclass(frozen=True)
class MetricQuery:
    """What to fetch, in JSON-safe fields so that a trigger can carry it."""

    namespace: str
    dimensions: dict[str, str]
    requests_metric: str
    errors_metric: str
    latency_metric: str
    period_seconds: int
    alarm_prefix: str | None = None
    lag_seconds: int = 0
    colour_dimension: str = "Colour"
    # Requests refused before they ran (Lambda's ``Throttles``): counted as requests and as errors.
    throttles_metric: str | None = None

    def window_end(self, end: datetime | None = None) -> datetime:
        """``end``, or now less the lag with which CloudWatch publishes datapoints."""
        return (end or datetime.now(UTC) - timedelta(seconds=self.lag_seconds)).replace(microsecond=0)

    @classmethod
    def from_config(cls, cfg: DeploymentConfig, *, staging: bool = False) -> MetricQuery:
        m = cfg.metrics
        return cls(
            namespace=m.namespace,
            dimensions=dict(m.staging_dimensions if staging else m.dimensions),
            requests_metric=m.requests_metric,
            errors_metric=m.errors_metric,
            latency_metric=m.latency_metric,
            period_seconds=m.period_seconds,
            lag_seconds=m.lag_seconds,
            colour_dimension=m.colour_dimension,
            # The alarm prefix names production's alarms; staging is judged on its metrics alone.
            alarm_prefix=None if staging else cfg.alarms.prefix,
        )

    @classmethod
    def lambda_alias(cls, function: str, alias: str, *, period_seconds: int, lag_seconds: int) -> MetricQuery:
        """The invocations of ``function`` through ``alias``, per version that ran them: Lambda's
        own ``AWS/Lambda`` metrics under the dimensions it publishes for an alias."""
        return cls(
            namespace="AWS/Lambda",
            dimensions={"FunctionName": function, "Resource": f"{function}:{alias}"},
            requests_metric="Invocations",
            errors_metric="Errors",
            latency_metric="Duration",
            period_seconds=period_seconds,
            lag_seconds=lag_seconds,
            colour_dimension="ExecutedVersion",
            throttles_metric="Throttles",
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cloudwatch_client(aws_conn_id: str, region_name: str) -> Any:
    from deployment.hooks.aws import CloudWatchHook, aws_hook

    return aws_hook(CloudWatchHook, aws_conn_id, region_name).conn


def _metric_data_queries(
    query: MetricQuery, window_seconds: float, colour: str | None = None, prefix: str = ""
) -> list[dict[str, Any]]:
    """The four stat queries of one series: the total, or ``colour``'s own (ids prefixed ``prefix``)."""
    dims = dict(query.dimensions)
    if colour is not None:
        dims[query.colour_dimension] = colour
    # In the order published (config, then colour): CloudWatch matches a set, moto a list.
    dimensions = [{"Name": k, "Value": v} for k, v in dims.items()]
    period = max(1, min(query.period_seconds, int(window_seconds)))
    return [
        {
            "Id": prefix + query_id,
            "MetricStat": {
                "Metric": {
                    "Namespace": query.namespace,
                    "MetricName": getattr(query, metric_field),
                    "Dimensions": dimensions,
                },
                "Period": period,
                "Stat": stat,
            },
            "ReturnData": True,
        }
        for query_id, metric_field, stat in _QUERIES
    ]


def _sums(
    cloudwatch: Any,
    query: MetricQuery,
    start: datetime,
    end: datetime,
    queries: list[dict[str, Any]] | None = None,
) -> dict[str, float | None]:
    queries = queries or _metric_data_queries(query, (end - start).total_seconds())
    sums: dict[str, float | None] = {q["Id"]: None for q in queries}
    # One page unless CloudWatch pages (far more datapoints than a poll window holds).
    for page in _metric_data_pages(cloudwatch, queries, start, end):
        for result in page["MetricDataResults"]:
            if result["Values"]:
                sums[result["Id"]] = (sums[result["Id"]] or 0.0) + float(sum(result["Values"]))
    return sums


def _metric_data_pages(
    cloudwatch: Any, queries: list[dict[str, Any]], start: datetime, end: datetime
) -> Iterable[dict[str, Any]]:
    paginator = cloudwatch.get_paginator("get_metric_data")
    return paginator.paginate(MetricDataQueries=queries, StartTime=start, EndTime=end)


def firing_alarms(cloudwatch: Any, prefix: str) -> list[dict[str, Any]]:
    """Alarms whose name starts with ``prefix`` and whose state is ALARM, sorted by name."""
    firing = []
    for page in cloudwatch.get_paginator("describe_alarms").paginate(AlarmNamePrefix=prefix):
        for alarm in page.get("MetricAlarms", []) + page.get("CompositeAlarms", []):
            if alarm["AlarmName"].startswith(prefix) and alarm.get("StateValue") == "ALARM":
                firing.append(
                    {
                        "name": alarm["AlarmName"],
                        "reason": alarm.get("StateReason", ""),
                        "since": str(alarm.get("StateUpdatedTimestamp", "")),
                    }
                )
    return sorted(firing, key=lambda a: a["name"])


def fetch_sample(
    cloudwatch: Any,
    query: MetricQuery,
    window_seconds: float,
    end: datetime | None = None,
    ignore_alarms: list[str] | tuple[str, ...] = (),
) -> Sample:
    """One poll: the metrics over the ``window_seconds`` before ``end`` (now, less the lag), and the
    alarms firing, less those ``ignore_alarms`` lists (``analysis.split_alarms``)."""
    end = query.window_end(end)
    start = end - timedelta(seconds=window_seconds)
    sums = _sums(cloudwatch, query, start, end)
    latency = None
    if sums["latency_count"]:
        latency = round((sums["latency_sum"] or 0.0) / sums["latency_count"], 3)
    alarms = firing_alarms(cloudwatch, query.alarm_prefix) if query.alarm_prefix else []
    return Sample(
        end=end.isoformat(),
        window_seconds=float(window_seconds),
        requests=sums["requests"],
        errors=sums["errors"],
        latency_ms=latency,
        alarms_firing=split_alarms([a["name"] for a in alarms], ignore_alarms)[0],
    )


def _stat_query(
    query: MetricQuery, query_id: str, metric_field: str, stat: str, period: int, colour: str | None
) -> dict[str, Any]:
    dims = dict(query.dimensions)
    if colour is not None:
        dims[query.colour_dimension] = colour
    return {
        "Id": query_id,
        "MetricStat": {
            "Metric": {
                "Namespace": query.namespace,
                "MetricName": getattr(query, metric_field),
                # In the order published (config, then colour): CloudWatch matches a set, moto a list.
                "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()],
            },
            "Period": period,
            "Stat": stat,
        },
        "ReturnData": True,
    }


def window_queries(
    query: MetricQuery, window_seconds: float, canary: str, stable: str
) -> list[dict[str, Any]]:
    """The fifteen queries of one window, each one bucket: canary, stable and total (ids ``c_``,
    ``s_``, ``t_`` + the Series field); three more with ``throttles_metric``."""
    period = max(1, int(window_seconds))
    colours = {"c_": canary, "s_": stable, "t_": None}
    stats = _WINDOW_STATS
    if query.throttles_metric:
        stats += ((THROTTLES, "throttles_metric", "Sum"),)
    return [
        _stat_query(query, prefix + name, metric_field, stat, period, colours[prefix])
        for prefix in SERIES_PREFIXES
        for name, metric_field, stat in stats
    ]


def _results(cloudwatch: Any, queries: list[dict[str, Any]], start: datetime, end: datetime) -> dict:
    """``{id: [(timestamp, value), ...]}`` of one GetMetricData call (all its pages)."""
    found: dict[str, list[tuple[datetime, float]]] = {q["Id"]: [] for q in queries}
    for page in _metric_data_pages(cloudwatch, queries, start, end):
        for result in page["MetricDataResults"]:
            found[result["Id"]] += [
                (stamp, float(value))
                for stamp, value in zip(result.get("Timestamps", []), result["Values"], strict=False)
                if value is not None
            ]
    return found


def _window_series(found: dict[str, list[tuple[datetime, float]]], prefix: str) -> Series:
    """One series of a window. Sums add up; should CloudWatch split the window into more than one
    bucket, the highest average and percentile stands (never a lower latency than was seen)."""
    fields: dict[str, float | None] = {}
    for name, _, stat in _WINDOW_STATS:
        values = [v for _, v in found[prefix + name]]
        if not values:
            fields[name] = None
        elif stat == "Sum":
            fields[name] = float(sum(values))
        else:
            fields[name] = round(max(values), 3)
    throttled = sum(v for _, v in found.get(prefix + THROTTLES, ()))
    if throttled:
        fields["requests"] = (fields["requests"] or 0.0) + throttled
        fields["errors"] = (fields["errors"] or 0.0) + throttled
    return Series(**fields)


def _period_values(found: dict[str, list[tuple[datetime, float]]], query_id: str) -> tuple[float, ...]:
    return tuple(round(v, 3) for _, v in sorted(found[query_id]))


def published_to(cloudwatch: Any, query: MetricQuery, start: datetime) -> datetime | None:
    """How far CloudWatch has published: the end of the last period from ``start`` to now in which
    the total has requests (None: none yet). Data arrives in time order, so an interval is complete
    once any period from its last on has data: a period without requests (a quiet minute, a
    simulator's late tick) does not hold a watch back."""
    period = query.period_seconds
    published = _stat_query(query, "published", "requests_metric", "SampleCount", period, None)
    found = _results(cloudwatch, [published], start, datetime.now(UTC))
    stamps = [stamp for stamp, value in found["published"] if value > 0]
    return max(stamps) + timedelta(seconds=period) if stamps else None


def fetch_colour_sample(
    cloudwatch: Any,
    query: MetricQuery,
    *,
    canary: str,
    stable: str,
    since: datetime,
    start: datetime,
    end: datetime,
    ignore_alarms: list[str] | tuple[str, ...] = (),
) -> tuple[ColourSample, datetime | None]:
    """One poll of a traffic step or the monitoring: the interval ``[start, end]`` and the step so far
    ``[since, end]`` of the new colour, the stable colour and the total, each colour's median latency
    per period of the step, and the alarms firing (split by ``ignore_alarms``).

    Also returns how far CloudWatch has published (:func:`published_to`), read first: the
    interval read after it holds at least what had been published then."""
    period = query.period_seconds
    published = published_to(cloudwatch, query, start)
    interval = window_queries(query, (end - start).total_seconds(), canary, stable)
    periods = [
        _stat_query(query, "c_periods", "latency_metric", "p50", period, canary),
        _stat_query(query, "s_periods", "latency_metric", "p50", period, stable),
    ]
    first_poll = start <= since
    found = _results(cloudwatch, interval + (periods if first_poll else []), start, end)
    step_found = found
    if not first_poll:
        step_found = _results(
            cloudwatch,
            window_queries(query, (end - since).total_seconds(), canary, stable) + periods,
            since,
            end,
        )
    alarms = [a["name"] for a in firing_alarms(cloudwatch, query.alarm_prefix)] if query.alarm_prefix else []
    breaching, ignored = split_alarms(alarms, ignore_alarms)

    def sample(data: dict, begin: datetime, **extra: Any) -> ColourSample:
        return ColourSample(
            start=begin.isoformat(),
            end=end.isoformat(),
            canary_colour=canary,
            stable_colour=stable,
            canary=_window_series(data, "c_"),
            stable=_window_series(data, "s_"),
            total=_window_series(data, "t_"),
            **extra,
        )

    step = None if first_poll else sample(step_found, since)
    polled = sample(
        found,
        start,
        alarms_firing=breaching,
        alarms_ignored=ignored,
        step=step,
        canary_periods=_period_values(step_found, "c_periods"),
        stable_periods=_period_values(step_found, "s_periods"),
    )
    return polled, published


def baseline(cfg: DeploymentConfig, end: datetime | None = None) -> dict[str, Any]:
    """The production request rate over ``timings.baseline_window_seconds`` before ``end`` (now).

    ``requests_per_second`` is None when the window saw too few requests to set a band;
    the analysis then says the band was not checked.
    """
    cloudwatch = cloudwatch_client(cfg.connections.aws, cfg.region)
    query = MetricQuery.from_config(cfg)
    window = cfg.timings.baseline_window_seconds
    end = query.window_end(end)
    start = end - timedelta(seconds=window)
    requests = _sums(cloudwatch, query, start, end)["requests"]
    sample = Sample(
        end=end.isoformat(), window_seconds=float(window), requests=requests, errors=None, latency_ms=None
    )
    rps = request_rate(sample, cfg.thresholds)
    low, high = cfg.thresholds.traffic_band
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "window_seconds": window,
        "requests": requests,
        "requests_per_second": None if rps is None else round(rps, 6),
        "band_requests_per_second": None if rps is None else [round(rps * low, 6), round(rps * high, 6)],
    }


def staging_health(cfg: DeploymentConfig) -> dict[str, Any]:
    """Staging's error rate and latency over ``timings.staging_window_seconds``, judged by the thresholds."""
    cloudwatch = cloudwatch_client(cfg.connections.aws, cfg.region)
    query = MetricQuery.from_config(cfg, staging=True)
    sample = fetch_sample(cloudwatch, query, cfg.timings.staging_window_seconds)
    verdict = evaluate(sample, cfg.thresholds, check_band=False)
    return {
        "ok": verdict.outcome == HEALTHY,
        "error_rate_percent": verdict.error_rate_percent,
        "latency_ms": sample.latency_ms,
        "verdict": verdict.outcome,
        "detail": verdict.detail,
    }
