"""The API function's alias as Lambda routes it, and the ``AWS/Lambda`` metrics of its invocations.

An alias names one version (``FunctionVersion``) and at most one more with a weight between 0
and 1 (``RoutingConfig.AdditionalVersionWeights``); Lambda sends each invocation of the alias to
the additional version with that probability, and to the named one otherwise.
:class:`AliasReader` reads the alias from the sandbox's Lambda (moto stores and returns the
routing but ignores it when invoked), so the traffic simulator can pick the version of each
request as Lambda would, and knows the release each version runs (its ``APP_VERSION``, which a
published version keeps as it was), for the faults matched by ``backend_version``.

Lambda publishes every invocation of an alias under four dimension sets of ``AWS/Lambda``: none
(all functions), ``FunctionName``, ``FunctionName`` + ``Resource`` (``function:alias``), and
``FunctionName`` + ``Resource`` + ``ExecutedVersion`` (the version that ran it): ``Invocations``,
``Errors`` and ``Throttles`` (0 or 1 each, read with Sum) and ``Duration`` (milliseconds, which
takes percentiles). :func:`invocation_samples` writes them in those shapes. A request that got no
answer ran until the function's timeout: an error lasting that long. A 5xx the function answered
counts as an error; throttling is not simulated, so ``Throttles`` stays 0.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

NAMESPACE = "AWS/Lambda"
# Lambda's own metrics have standard (one-minute) resolution.
RESOLUTION = 60
# The environment variable that names the release a version of the API function runs.
RELEASE_VARIABLE = "APP_VERSION"
# ((namespace, metric, unit, resolution, dimensions, timestamp), value, count): one value of one
# datum, seen count times.
Sample = tuple[tuple[str, str, str | None, int, tuple[tuple[str, str], ...], datetime], float, int]
# (the version that executed it, (HTTP status, latency ms) or None when it got no answer)
Invocation = tuple[str, tuple[int, float] | None]


@dataclass(frozen=True)
class AliasRouting:
    """One reading of an alias: the version it names, the additional versions' weights, and the
    release each of those versions runs."""

    function: str
    alias: str
    version: str
    weights: dict[str, float] = field(default_factory=dict)
    releases: dict[str, str | None] = field(default_factory=dict)

    def pick(self, rng: random.Random) -> str:
        """The version that executes one invocation (no draw when nothing is weighted)."""
        if not self.weights:
            return self.version
        draw = rng.random()
        for version, weight in self.weights.items():
            if draw < weight:
                return version
            draw -= weight
        return self.version


class AliasReader:
    """Reads ``alias`` of ``function`` through the Lambda API (``client``): one GetAlias per tick,
    and a version's configuration (timeout, release) once (a published version never changes)."""

    def __init__(self, client: Any, function: str, alias: str) -> None:
        self.client, self.function, self.alias = client, function, alias
        self._configurations: dict[str, tuple[float, str | None]] = {}

    def read(self) -> AliasRouting | None:
        """The alias now; None when it (or the function) does not exist."""
        try:
            found = self.client.get_alias(FunctionName=self.function, Name=self.alias)
        except ClientError as err:
            if err.response["Error"]["Code"] == "ResourceNotFoundException":
                return None
            raise
        weights = {
            v: float(w)
            for v, w in ((found.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}).items()
        }
        releases = {v: self._configuration(v)[1] for v in (found["FunctionVersion"], *weights)}
        return AliasRouting(self.function, self.alias, found["FunctionVersion"], weights, releases)

    def timeout_ms(self, version: str) -> float:
        return self._configuration(version)[0]

    def _configuration(self, version: str) -> tuple[float, str | None]:
        """(timeout in ms, release) of ``version``."""
        if version not in self._configurations:
            configuration = self.client.get_function_configuration(
                FunctionName=self.function, Qualifier=version
            )
            variables = (configuration.get("Environment") or {}).get("Variables") or {}
            self._configurations[version] = (
                float(configuration["Timeout"]) * 1000,
                variables.get(RELEASE_VARIABLE),
            )
        return self._configurations[version]


def invocation_samples(
    routing: AliasRouting,
    invocations: list[Invocation],
    *,
    at: float,
    timeout_ms: Callable[[str], float],
) -> Iterator[Sample]:
    """The ``AWS/Lambda`` values of a tick's invocations of the alias, all stamped ``at`` (to the
    second), counted per version first: a tick's thousands of values are a few dozen counts and
    its durations."""
    stamp = datetime.fromtimestamp(int(at), UTC)
    function = (("FunctionName", routing.function),)
    resource = (*function, ("Resource", f"{routing.function}:{routing.alias}"))
    calls: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    durations: dict[str, Counter[float]] = {}
    for version, outcome in invocations:
        failed, duration = (True, timeout_ms(version)) if outcome is None else (outcome[0] >= 500, outcome[1])
        calls[version] += 1
        failures[version] += failed
        durations.setdefault(version, Counter())[round(duration, 3)] += 1
    for version, count in calls.items():
        failed = failures[version]
        for dims in ((), function, resource, (*resource, ("ExecutedVersion", version))):
            yield (NAMESPACE, "Invocations", "Count", RESOLUTION, dims, stamp), 1.0, count
            if failed:
                yield (NAMESPACE, "Errors", "Count", RESOLUTION, dims, stamp), 1.0, failed
            if count - failed:
                yield (NAMESPACE, "Errors", "Count", RESOLUTION, dims, stamp), 0.0, count - failed
            yield (NAMESPACE, "Throttles", "Count", RESOLUTION, dims, stamp), 0.0, count
            key = (NAMESPACE, "Duration", "Milliseconds", RESOLUTION, dims, stamp)
            for duration, times in durations[version].items():
                yield key, duration, times
