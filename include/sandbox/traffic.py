"""The traffic simulator: user requests split by the live Route 53 weights, published to CloudWatch.

Entry point::

    TrafficSimulator(config: DeploymentConfig, *, endpoint_url: str,
                     version_of: Callable[[str], str | None], faults: Faults | None = None,
                     tick_seconds: float = 1.0, requests_per_tick: int = 200, seed: int = 0,
                     evaluate_alarms: bool = True, alarm_ticks: int = 3,
                     recorder: Recorder | None = None)

``start()`` runs it in a daemon thread, ``stop()`` ends it; ``tick()`` runs one
tick synchronously and returns its summary (what tests use). ``endpoint_url``
is the sandbox AWS endpoint (moto); ``version_of`` is the same callable the
colour apps get.

Each tick: read the weights of ``traffic.record_name`` (SetIdentifier blue and
green) in ``traffic.hosted_zone``; simulate about ``requests_per_tick`` requests
(±5 %, from a ``seed``-ed generator, so runs are reproducible), split by the
weights (all weights 0 splits evenly, as Route 53 does) and each answered by
``sandbox.app.simulate_request`` for that colour and its version; publish, in
one ``put_metric_data`` call at 1-second storage resolution, production
requests (Sum), 5xx errors (Sum) and latency (a statistic set, so Average
works) with ``metrics.dimensions``, and the same for a healthy staging with
``metrics.staging_dimensions``. A tick whose weighted records are missing
publishes nothing and records the problem.

Alarm (``evaluate_alarms``): CloudWatch in moto does not evaluate alarms, so
the simulator sets ``<alarms.prefix>5xx-errors`` itself. It is edge-triggered:
when the error rate over the last ``alarm_ticks`` ticks crosses above
``thresholds.error_rate_percent`` it sets ALARM, when it falls back it sets OK,
and otherwise leaves the alarm alone (so a state set by the control API stands
until the traffic changes). A missing alarm is skipped.

Every tick's summary is recorded: weights, versions, requests, errors,
error_rate_percent, latency_ms, alarm (the state set, or None).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.exceptions import ClientError

from sandbox.app import simulate_request
from sandbox.faults import Faults
from sandbox.recorder import Recorder

log = logging.getLogger(__name__)

COLOURS = ("blue", "green")
ERROR_ALARM_SUFFIX = "5xx-errors"


class TrafficSimulator:
    def __init__(
        self,
        config: Any,
        *,
        endpoint_url: str,
        version_of: Callable[[str], str | None],
        faults: Faults | None = None,
        tick_seconds: float = 1.0,
        requests_per_tick: int = 200,
        seed: int = 0,
        evaluate_alarms: bool = True,
        alarm_ticks: int = 3,
        recorder: Recorder | None = None,
    ) -> None:
        if tick_seconds <= 0 or requests_per_tick < 0 or alarm_ticks < 1:
            raise ValueError("tick_seconds must be > 0, requests_per_tick >= 0 and alarm_ticks >= 1")
        self.config = config
        self.version_of = version_of
        self.faults = faults or Faults()
        self.tick_seconds = tick_seconds
        self.requests_per_tick = requests_per_tick
        self.evaluate_alarms = evaluate_alarms
        self.recorder = recorder if recorder is not None else Recorder()
        self.alarm_name = f"{config.alarms.prefix}{ERROR_ALARM_SUFFIX}"
        self._rng = random.Random(seed)
        self._window: deque[tuple[int, int]] = deque(maxlen=alarm_ticks)
        self._breaching = False
        self._zone_id: str | None = None
        self._tick_lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        session = boto3.session.Session(
            aws_access_key_id="sandbox", aws_secret_access_key="sandbox", region_name=config.region
        )
        self._route53 = session.client("route53", endpoint_url=endpoint_url)
        self._cloudwatch = session.client("cloudwatch", endpoint_url=endpoint_url)

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the traffic simulator is already running")
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="traffic-simulator", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=self.tick_seconds + 10)
            self._thread = None

    def _run(self) -> None:
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                self.tick()
            except Exception as err:  # keep simulating through a transient failure, but say so
                log.exception("traffic simulator tick failed")
                self.recorder.record(error=f"{type(err).__name__}: {err}")
            self._stopping.wait(max(self.tick_seconds - (time.monotonic() - started), 0))

    # --------------------------------------------------------------------- tick
    def tick(self) -> dict[str, Any]:
        """Simulate and publish one tick; return (and record) its summary."""
        with self._tick_lock:
            weights = self.weights()
            if not weights:
                problem = (
                    f"no weighted records {'/'.join(COLOURS)} for {self.config.traffic.record_name} "
                    f"in {self.config.traffic.hosted_zone}"
                )
                return self.recorder.record(error=problem)
            versions = {colour: self.version_of(colour) for colour in weights}
            total = round(self.requests_per_tick * self._rng.uniform(0.95, 1.05))
            outcomes = []
            for colour, count in _split(total, weights).items():
                outcomes += [
                    simulate_request(self.faults, colour, versions[colour], self._rng) for _ in range(count)
                ]
            staging = [simulate_request(None, "staging", "staging", self._rng) for _ in range(total)]
            self._publish(outcomes, staging)
            errors = sum(1 for status, _ in outcomes if status >= 500)
            summary = {
                "weights": weights,
                "versions": versions,
                "requests": len(outcomes),
                "errors": errors,
                "error_rate_percent": 100 * errors / len(outcomes) if outcomes else 0.0,
                "latency_ms": sum(ms for _, ms in outcomes) / len(outcomes) if outcomes else None,
                "alarm": self._evaluate_alarm(len(outcomes), errors) if self.evaluate_alarms else None,
            }
            return self.recorder.record(**summary)

    def weights(self) -> dict[str, int]:
        """The live weights of the blue/green records, ``{}`` when there are none."""
        traffic = self.config.traffic
        name = _fqdn(traffic.record_name)
        if self._zone_id is None:
            zones = self._route53.list_hosted_zones_by_name(DNSName=traffic.hosted_zone)["HostedZones"]
            matching = [z["Id"] for z in zones if _fqdn(z["Name"]) == _fqdn(traffic.hosted_zone)]
            if not matching:
                return {}
            self._zone_id = matching[0]
        records = self._route53.list_resource_record_sets(
            HostedZoneId=self._zone_id, StartRecordName=name, StartRecordType=traffic.record_type
        )["ResourceRecordSets"]
        return {
            r["SetIdentifier"]: int(r.get("Weight", 0))
            for r in records
            if _fqdn(r["Name"]) == name
            and r["Type"] == traffic.record_type
            and r.get("SetIdentifier") in COLOURS
        }

    def _publish(self, outcomes: list[tuple[int, float]], staging: list[tuple[int, float]]) -> None:
        metrics = self.config.metrics
        now = datetime.now(UTC)
        data: list[dict[str, Any]] = []
        for dimensions, sample in ((metrics.dimensions, outcomes), (metrics.staging_dimensions, staging)):
            dims = [{"Name": k, "Value": v} for k, v in dimensions.items()]
            common = {"Dimensions": dims, "Timestamp": now, "StorageResolution": 1}
            errors = sum(1 for status, _ in sample if status >= 500)
            data += [
                {"MetricName": metrics.requests_metric, "Value": len(sample), "Unit": "Count", **common},
                {"MetricName": metrics.errors_metric, "Value": errors, "Unit": "Count", **common},
            ]
            if sample:
                latencies = [ms for _, ms in sample]
                stats = {
                    "SampleCount": len(latencies),
                    "Sum": sum(latencies),
                    "Minimum": min(latencies),
                    "Maximum": max(latencies),
                }
                data.append(
                    {
                        "MetricName": metrics.latency_metric,
                        "StatisticValues": stats,
                        "Unit": "Milliseconds",
                        **common,
                    }
                )
        self._cloudwatch.put_metric_data(Namespace=metrics.namespace, MetricData=data)

    def _evaluate_alarm(self, requests: int, errors: int) -> str | None:
        self._window.append((requests, errors))
        seen = sum(r for r, _ in self._window)
        rate = 100 * sum(e for _, e in self._window) / seen if seen else 0.0
        breaching = rate > self.config.thresholds.error_rate_percent
        if breaching == self._breaching:
            return None
        state = "ALARM" if breaching else "OK"
        reason = (
            f"Traffic simulator: error rate {rate:.2f} % over the last {len(self._window)} tick(s) "
            f"{'exceeds' if breaching else 'is within'} {self.config.thresholds.error_rate_percent} %"
        )
        try:
            self._cloudwatch.set_alarm_state(AlarmName=self.alarm_name, StateValue=state, StateReason=reason)
        except ClientError as err:
            if err.response["Error"]["Code"] not in ("ResourceNotFound", "ResourceNotFoundException"):
                raise
            log.warning("alarm %s does not exist; not setting it to %s", self.alarm_name, state)
            state = None
        self._breaching = breaching
        return state


def _fqdn(name: str) -> str:
    return name.rstrip(".").lower() + "."


def _split(total: int, weights: dict[str, int]) -> dict[str, int]:
    """``total`` requests shared in proportion to ``weights`` (largest remainder; all zero = even)."""
    if not any(weights.values()):
        weights = dict.fromkeys(weights, 1)
    whole = sum(weights.values())
    exact = {colour: total * weight / whole for colour, weight in weights.items()}
    counts = {colour: int(share) for colour, share in exact.items()}
    by_remainder = sorted(exact, key=lambda c: exact[c] - counts[c], reverse=True)
    for colour in by_remainder[: total - sum(counts.values())]:
        counts[colour] += 1
    return counts
