"""The traffic simulator: viewers through the front door (or the Route 53 split), published to CloudWatch.

Entry point::

    TrafficSimulator(config: DeploymentConfig, *, endpoint_url: str,
                     version_of: Callable[[str], str | None], faults: Faults | None = None,
                     front_door_url: str | None = None, viewers: int = 100,
                     tick_seconds: float = 1.0, requests_per_tick: int = 200, seed: int = 0,
                     evaluate_alarms: bool = True, alarm_ticks: int = 3,
                     recorder: Recorder | None = None, function_name: str | None = None,
                     alias_name: str | None = None)

``start()`` runs it in a daemon thread, ``stop()`` ends it; ``tick()`` runs one
tick synchronously and returns its summary (what tests use). ``endpoint_url``
is the sandbox AWS endpoint (moto); ``version_of`` is the same callable the
colour apps get.

With ``front_door_url`` (the ``keyvaluestore`` router): a fixed population of
``viewers``, each with its own cookie jar, is routed by real requests through
the front door; the colour that answered (the function's ``x-bg-colour`` tag)
is that viewer's colour for the tick, and its page, ``requests_per_tick /
viewers`` requests in all, is simulated against that colour by
``sandbox.app.simulate_request``. So the split and the stickiness the metrics
show are the function's own. A viewer with its cookie keeps its colour while
the routing (stable, new, weight, epoch) holds: the function gives it a bucket
once per epoch. So a viewer makes its real request when the routing the front
door reports differs from the one at its last request (or that request
failed), and otherwise in turn, a tenth of the viewers per tick
(``REVISIT_SHARE``): a hundred HTTP round trips a second cost a sandbox half a
core on CI's 2-core machine. The tick's summary records which viewer
went where (``assignments``, one letter per viewer: ``b``/``g``) and the
routing the front door reported (``weights``).

Without it (the ``route53`` router): read the weights of ``traffic.record_name``
(SetIdentifier blue and green) in ``traffic.hosted_zone``; simulate about
``requests_per_tick`` requests (±5 %, from a ``seed``-ed generator, so runs are
reproducible), split by the weights (all weights 0 splits evenly, as Route 53
does). A tick whose weighted records are missing publishes nothing and records
the problem.

Either way, each request is published the way the application's API function
publishes it: one embedded-metric-format document per request, built by the
function's own code (``include/templates/functions/api/metrics.py``: requests,
5xx errors and the latency value, under ``metrics.dimensions`` and, for a
request a colour served, the same plus ``metrics.colour_dimension``), then turned
into metrics as CloudWatch Logs does (:func:`emf_metric_data`: per metric and
dimension set, the tick's values with their counts, at the document's storage
resolution) in one ``put_metric_data`` call per tick, every request stamped with the
tick's start. A healthy staging is
published the same way with ``metrics.staging_dimensions``. Values, not statistic
sets, so CloudWatch's percentiles (p95, p99) can be asked of the latency. A
request that got no answer (the ``stall`` fault) publishes nothing, as a
function that never finished would not. Under the ``metrics_delay`` fault the
tick's metrics reach CloudWatch ``ms`` late (their timestamps unchanged),
as EMF documents do when CloudWatch Logs is slow to extract them; the simulator's thread sends
them when due, between ticks.

Lambda alias (``function_name`` and ``alias_name``; without them, as before): each tick reads
the alias of the API function from the sandbox's Lambda (GetAlias) and runs each API request
of a colour's page on the version the alias routes it to, drawn by its weights as Lambda does
(``sandbox.lambda_alias``; from a generator of its own, so the requests' draws do not move).
Faults matched by ``function_version`` apply to that version's requests alone, and those matched
by ``backend_version`` to the requests of the versions that run that release; those matched by
``colour`` or ``version`` are the frontend's, seen in the application's per-colour metrics and
not in the function's (``sandbox.app.simulate_call``). The invocations are published beside the
application's metrics as Lambda publishes them (``AWS/Lambda``: Invocations, Errors, Throttles,
Duration per function, per alias and per ``ExecutedVersion``), in a second ``put_metric_data``
call (one namespace a call), and the tick's record gains ``alias`` (weight per version) and
``executed`` (invocations per version). A missing alias (or function) routes nothing: the
function's unqualified code serves, no ``function_version`` or ``backend_version`` fault matches
and nothing is published to ``AWS/Lambda``.

Alarm (``evaluate_alarms``): CloudWatch in moto does not evaluate alarms, so
the simulator sets ``<alarms.prefix>5xx-errors`` itself. It is edge-triggered:
when the error rate over the last ``alarm_ticks`` ticks crosses above
``thresholds.error_rate_percent`` it sets ALARM, when it falls back it sets OK,
and otherwise leaves the alarm alone (so a state set by the control API stands
until the traffic changes). A missing alarm is skipped.

Every tick's summary is recorded: weights, versions, requests, errors,
error_rate_percent, latency_ms, alarm (the state set, or None), and through the
front door: viewers (count per colour) and assignments.
"""

from __future__ import annotations

import importlib.util
import itertools
import logging
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import requests
from botocore.exceptions import ClientError

from sandbox.app import EvenlySpaced, simulate_call, simulate_request
from sandbox.faults import Faults
from sandbox.lambda_alias import AliasReader, AliasRouting, Invocation, Sample, invocation_samples
from sandbox.recorder import Recorder

log = logging.getLogger(__name__)

COLOURS = ("blue", "green")
# Viewers whose routing did not change still make a real request in turn, this share per tick.
REVISIT_SHARE = 0.1
ERROR_ALARM_SUFFIX = "5xx-errors"
# PutMetricData takes at most 150 values per datum.
MAX_VALUES = 150
FUNCTION_METRICS = Path(__file__).resolve().parents[1] / "templates" / "functions" / "api" / "metrics.py"


def _function_metrics() -> ModuleType:
    """The API function's own metrics module (a Lambda file, not a package of ours)."""
    spec = importlib.util.spec_from_file_location("bayon_api_metrics", FUNCTION_METRICS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EMF = _function_metrics()


def emf_metric_data(documents: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """What CloudWatch Logs extracts from EMF documents: ``{namespace: MetricData}``."""
    return metric_data(emf_samples(documents))


def emf_samples(documents: list[dict[str, Any]]) -> Iterator[Sample]:
    """Every value the EMF documents carry, per metric, dimension set and second."""
    for document in documents:
        meta = document["_aws"]
        stamp = datetime.fromtimestamp(meta["Timestamp"] // 1000, UTC)
        for directive in meta["CloudWatchMetrics"]:
            for dimension_set in directive["Dimensions"]:
                dims = tuple((name, str(document[name])) for name in dimension_set)
                for metric in directive["Metrics"]:
                    key = (
                        directive["Namespace"],
                        metric["Name"],
                        metric.get("Unit"),
                        metric.get("StorageResolution", 60),
                        dims,
                        stamp,
                    )
                    yield key, float(document[metric["Name"]]), 1


def metric_data(samples: Iterable[Sample]) -> dict[str, list[dict[str, Any]]]:
    """``{namespace: MetricData}``: one datum per metric, dimension set and second, its values with
    their counts (at most ``MAX_VALUES`` each)."""
    grouped: dict[tuple, Counter[float]] = {}
    for key, value, count in samples:
        grouped.setdefault(key, Counter())[value] += count
    data: dict[str, list[dict[str, Any]]] = {}
    for (namespace, name, unit, resolution, dims, stamp), histogram in grouped.items():
        values = sorted(histogram)
        for first in range(0, len(values), MAX_VALUES):
            chunk = values[first : first + MAX_VALUES]
            data.setdefault(namespace, []).append(
                {
                    "MetricName": name,
                    "Dimensions": [{"Name": k, "Value": v} for k, v in dims],
                    "Timestamp": stamp,
                    "Values": chunk,
                    "Counts": [float(histogram[v]) for v in chunk],
                    "StorageResolution": resolution,
                    **({"Unit": unit} if unit else {}),
                }
            )
    return data


class TrafficSimulator:
    def __init__(
        self,
        config: Any,
        *,
        endpoint_url: str,
        version_of: Callable[[str], str | None],
        faults: Faults | None = None,
        front_door_url: str | None = None,
        viewers: int = 100,
        tick_seconds: float = 1.0,
        requests_per_tick: int = 200,
        seed: int = 0,
        evaluate_alarms: bool = True,
        alarm_ticks: int = 3,
        recorder: Recorder | None = None,
        function_name: str | None = None,
        alias_name: str | None = None,
    ) -> None:
        if tick_seconds <= 0 or requests_per_tick < 0 or alarm_ticks < 1 or viewers < 1:
            raise ValueError(
                "tick_seconds must be > 0, requests_per_tick >= 0, alarm_ticks >= 1 and viewers >= 1"
            )
        self.config = config
        self.version_of = version_of
        self.faults = faults or Faults()
        self.tick_seconds = tick_seconds
        self.requests_per_tick = requests_per_tick
        self.evaluate_alarms = evaluate_alarms
        self.recorder = recorder if recorder is not None else Recorder()
        self.alarm_name = f"{config.alarms.prefix}{ERROR_ALARM_SUFFIX}"
        self._rng = random.Random(seed)
        # One stream of baseline errors for all users' requests, one for staging's (EvenlySpaced).
        self._baseline, self._staging_baseline = EvenlySpaced(), EvenlySpaced()
        self._window: deque[tuple[int, int]] = deque(maxlen=alarm_ticks)
        # Metric data waiting for its time (``metrics_delay``): (due, namespace, MetricData).
        self._pending: deque[tuple[float, str, list[dict[str, Any]]]] = deque()
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
        self._alias = (
            AliasReader(session.client("lambda", endpoint_url=endpoint_url), function_name, alias_name)
            if function_name and alias_name
            else None
        )
        # Its own generator: routing by the alias leaves the requests' own draws as they were.
        self._alias_rng = random.Random(f"alias/{seed}")
        self.front_door_url = front_door_url.rstrip("/") if front_door_url else None
        self._jars: list[dict[str, str]] = [{} for _ in range(viewers)]
        # Per viewer: the routing its last real request was made under, and the colour it got.
        self._routed: list[tuple[str | None, str | None]] = [(None, None)] * viewers
        self._ticks = 0
        self._http = requests.Session()

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the traffic simulator is already running")
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="traffic-simulator", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the thread and close this side's connections first (so the servers' ports are free
        at once when the sandbox stops: the side that closes first keeps the TIME_WAIT)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=self.tick_seconds + 10)
            self._thread = None
        for connections in (self._route53, self._cloudwatch, self._http):
            connections.close()
        if self._alias is not None:
            self._alias.client.close()

    def _run(self) -> None:
        while not self._stopping.is_set():
            next_tick = time.monotonic() + self.tick_seconds
            try:
                self.tick()
                self._between_ticks(next_tick)
            except Exception as err:  # keep simulating through a transient failure, but say so
                log.exception("traffic simulator tick failed")
                self.recorder.record(error=f"{type(err).__name__}: {err}")
            self._stopping.wait(max(next_tick - time.monotonic(), 0))

    def _between_ticks(self, next_tick: float) -> None:
        """Until ``next_tick``, send delayed metric data when it is due (``metrics_delay``), as
        CloudWatch shows late data once it arrives, not at the simulator's next tick."""
        while not self._stopping.is_set():
            with self._tick_lock:
                due_in = self._send_due()
            if due_in is None or time.monotonic() + due_in >= next_tick:
                return
            self._stopping.wait(max(due_in, 0.0))

    # --------------------------------------------------------------------- tick
    def tick(self) -> dict[str, Any]:
        """Simulate and publish one tick; return (and record) its summary. The tick applies the faults
        active at its start, when its requests are stamped: a fault injected mid-tick starts with
        the next one, so its requests never land in a window from before it."""
        at, faults = time.time(), self.faults.snapshot()
        if self.front_door_url:
            return self._front_door_tick(at, faults)
        with self._tick_lock:
            weights = self.weights()
            if not weights:
                problem = (
                    f"no weighted records {'/'.join(COLOURS)} for {self.config.traffic.record_name} "
                    f"in {self.config.traffic.hosted_zone}"
                )
                return self.recorder.record(error=problem)
            versions = {colour: self.version_of(colour) for colour in weights}
            routing = self._alias.read() if self._alias else None
            invocations: list[Invocation] = []
            total = round(self.requests_per_tick * self._rng.uniform(0.95, 1.05))
            by_colour: dict[str, list[tuple[int, float]]] = {}
            for colour, count in _split(total, weights).items():
                by_colour[colour] = self._serve(faults, colour, versions[colour], count, routing, invocations)
            outcomes = [outcome for sample in by_colour.values() for outcome in sample]
            staging = self._staging(total)
            self._publish(by_colour, staging, at=at, routing=routing, invocations=invocations)
            return self.recorder.record(
                weights=weights,
                versions=versions,
                **self._outcome_summary(outcomes),
                **_executed(routing, invocations),
            )

    def _front_door_tick(self, at: float, faults: Faults) -> dict[str, Any]:
        with self._tick_lock:
            routing, key = self._probe()
            total = round(self.requests_per_tick * self._rng.uniform(0.95, 1.05))
            per_viewer = _split(total, dict.fromkeys(range(len(self._jars)), 1))
            reached = self._route_viewers(key)
            versions = {colour: self.version_of(colour) for colour in COLOURS}
            alias = self._alias.read() if self._alias else None
            invocations: list[Invocation] = []
            by_colour: dict[str, list[tuple[int, float]]] = {colour: [] for colour in COLOURS}
            for viewer, colour in enumerate(reached):
                if colour not in COLOURS:  # the front door failed this viewer: a 5xx for its whole page
                    by_colour.setdefault("unrouted", []).extend([(502, 0.0)] * per_viewer[viewer])
                    continue
                by_colour.setdefault(colour, []).extend(
                    self._serve(faults, colour, versions[colour], per_viewer[viewer], alias, invocations)
                )
            outcomes = [outcome for sample in by_colour.values() for outcome in sample]
            staging = self._staging(total)
            self._publish(
                {c: s for c, s in by_colour.items() if c in COLOURS},
                staging,
                extra=by_colour.get("unrouted"),
                at=at,
                routing=alias,
                invocations=invocations,
            )
            return self.recorder.record(
                weights=routing,
                versions=versions,
                viewers={colour: reached.count(colour) for colour in COLOURS},
                assignments="".join(c[0] if c in COLOURS else "-" for c in reached),
                **self._outcome_summary(outcomes),
                **_executed(alias, invocations),
            )

    def _staging(self, total: int) -> list[tuple[int, float]]:
        """Staging's ``total`` requests of a tick, the answered ones (nothing is deployed there by
        the release: no faults)."""
        spaced, rng = self._staging_baseline, self._rng
        return _answered(simulate_request(None, "staging", "staging", rng, spaced) for _ in range(total))

    def _serve(
        self,
        faults: Faults,
        colour: str,
        version: str | None,
        count: int,
        routing: AliasRouting | None,
        invocations: list[Invocation],
    ) -> list[tuple[int, float]]:
        """``count`` API requests of ``colour``'s page, the answered ones. Under an alias each runs
        on the Lambda version the alias routes it to, and is added to ``invocations`` as the
        function ran it (a frontend's fault is not the function's); a colour with nothing deployed,
        or a stalled page, has no page to call the function."""
        answered = []
        for _ in range(count):
            executed = routing.pick(self._alias_rng) if routing and version is not None else None
            backend = routing.releases.get(executed) if executed is not None else None
            call = simulate_call(
                faults,
                colour,
                version,
                self._rng,
                function_version=executed,
                backend_version=backend,
                baseline=self._baseline,
            )
            if executed is not None and call.invoked:
                invocations.append((executed, call.invocation))
            if call.page is not None:
                answered.append(call.page)
        return answered

    def _outcome_summary(self, outcomes: list[tuple[int, float]]) -> dict[str, Any]:
        """One tick's requests, errors, error rate and mean latency, and the alarm they set."""
        errors = sum(1 for status, _ in outcomes if status >= 500)
        return {
            "requests": len(outcomes),
            "errors": errors,
            "error_rate_percent": 100 * errors / len(outcomes) if outcomes else 0.0,
            "latency_ms": sum(ms for _, ms in outcomes) / len(outcomes) if outcomes else None,
            "alarm": self._evaluate_alarm(len(outcomes), errors) if self.evaluate_alarms else None,
        }

    def _route_viewers(self, key: str | None) -> list[str | None]:
        """Each viewer's colour this tick: a real request through the front door when the routing
        changed since its last one (or that failed, or the probe did), else in turn; otherwise
        the colour the function gave it under this same routing."""
        count = len(self._jars)
        share = max(1, round(count * REVISIT_SHARE))
        start = (self._ticks * share) % count
        in_turn = {(start + i) % count for i in range(share)}
        self._ticks += 1
        reached = []
        for viewer, jar in enumerate(self._jars):
            seen_under, colour = self._routed[viewer]
            if key is None or seen_under != key or colour is None or viewer in in_turn:
                colour = self._visit(jar)
                self._routed[viewer] = (key, colour)
            reached.append(colour)
        return reached

    def _probe(self) -> tuple[dict[str, int] | None, str | None]:
        """The split the front door's function reads now, as ``{colour: percent}``, and the whole
        routing (with its epoch) as a key; ``(None, None)`` when the front door does not say."""
        try:
            seen = self._http.get(f"{self.front_door_url}/__frontdoor", timeout=5).json()
            stable, new, weight = seen["stable"], seen["new"], int(seen["weight"])
        except (requests.RequestException, ValueError, KeyError, TypeError):
            return None, None
        if stable not in COLOURS:
            return None, None
        return {stable: 100 - weight, new: weight}, f"{stable}/{new}/{weight}/{seen.get('epoch')}"

    def _visit(self, jar: dict[str, str]) -> str | None:
        """One viewer's page request through the front door: the colour that served it."""
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in jar.items())} if jar else {}
        try:
            response = self._http.get(f"{self.front_door_url}/health", headers=headers, timeout=5)
        except requests.RequestException:
            return None
        for cookie in response.raw.headers.getlist("Set-Cookie"):
            name, _, rest = cookie.partition("=")
            jar[name.strip()] = rest.split(";", 1)[0]
        return response.headers.get("x-bg-colour")

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

    def _publish(
        self,
        by_colour: dict[str, list[tuple[int, float]]],
        staging: list[tuple[int, float]],
        extra: list[tuple[int, float]] | None = None,
        *,
        at: float,
        routing: AliasRouting | None,
        invocations: list[Invocation],
    ) -> None:
        """Every request as the API function publishes it (per colour; ``extra`` without one), and
        staging's, turned into metric data as CloudWatch Logs does, in one call per namespace; under
        an alias, its ``invocations`` as Lambda publishes them (``AWS/Lambda``). The requests are
        stamped ``at``, the tick's start, when their colours were decided: a slow tick neither
        moves them into a later window nor counts requests routed before a weight change after it."""
        metrics = self.config.metrics
        now_ms = int(at * 1000)
        names = {
            "namespace": metrics.namespace,
            "dimensions": dict(metrics.dimensions),
            "requests": metrics.requests_metric,
            "errors": metrics.errors_metric,
            "latency": metrics.latency_metric,
            "colour_dimension": metrics.colour_dimension,
        }
        served = [(colour, outcome) for colour, sample in by_colour.items() for outcome in sample]
        served += [(None, outcome) for outcome in extra or []]
        documents = [
            EMF.emf_document(names, colour=colour, status=status, latency_ms=ms, timestamp_ms=now_ms)
            for colour, (status, ms) in served
        ]
        staging_names = {**names, "dimensions": dict(metrics.staging_dimensions)}
        documents += [
            EMF.emf_document(staging_names, colour=None, status=status, latency_ms=ms, timestamp_ms=now_ms)
            for status, ms in staging
        ]
        samples = emf_samples(documents)
        if routing is not None and invocations:
            lambda_samples = invocation_samples(
                routing, invocations, at=at, timeout_ms=self._alias.timeout_ms
            )
            samples = itertools.chain(samples, lambda_samples)
        delay = self.faults.find("metrics_delay")
        due = time.time() + (float(delay.get("ms", 0)) / 1000 if delay else 0.0)
        self._pending.extend((due, ns, data) for ns, data in metric_data(samples).items())
        self._send_due()

    def _send_due(self) -> float | None:
        """Send the metric data whose time has come; the seconds until the next batch is due."""
        while self._pending and self._pending[0][0] <= time.time():
            _, namespace, data = self._pending.popleft()
            for first in range(0, len(data), 1000):  # PutMetricData takes at most 1000 metrics
                self._cloudwatch.put_metric_data(Namespace=namespace, MetricData=data[first : first + 1000])
        return self._pending[0][0] - time.time() if self._pending else None

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


def _executed(routing: AliasRouting | None, invocations: list[Invocation]) -> dict[str, Any]:
    """A tick's record of the alias (nothing without one): its routing and the invocations per
    executed version."""
    if routing is None:
        return {}
    weights = {routing.version: 1 - sum(routing.weights.values()), **routing.weights}
    return {"alias": weights, "executed": dict(Counter(version for version, _ in invocations))}


def _answered(outcomes: Any) -> list[tuple[int, float]]:
    """The requests that got an answer (a stalled one publishes nothing)."""
    return [outcome for outcome in outcomes if outcome is not None]


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
