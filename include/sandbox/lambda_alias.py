"""The API function's alias as Lambda routes it, and the ``AWS/Lambda`` metrics of its invocations.

An alias names one version (``FunctionVersion``) and at most one more with a weight between 0
and 1 (``RoutingConfig.AdditionalVersionWeights``); Lambda sends each invocation of the alias to
the additional version with that probability, and to the named one otherwise.
:class:`AliasReader` reads the alias from the sandbox's Lambda (moto stores and returns the
routing but ignores it when invoked), so the traffic simulator can pick the version of each
request as Lambda would.

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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

NAMESPACE = "AWS/Lambda"
# Lambda's own metrics have standard (one-minute) resolution.
RESOLUTION = 60
# ((namespace, metric, unit, resolution, dimensions, timestamp), value): one value of one datum.
Sample = tuple[tuple[str, str, str | None, int, tuple[tuple[str, str], ...], datetime], float]
# (the version that executed it, (HTTP status, latency ms) or None when it got no answer)
Invocation = tuple[str, tuple[int, float] | None]


@dataclass(frozen=True)
class AliasRouting:
    """One reading of an alias: the version it names and the additional versions' weights."""

    function: str
    alias: str
    version: str
    weights: dict[str, float] = field(default_factory=dict)

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
    and a version's timeout once (a published version never changes)."""

    def __init__(self, client: Any, function: str, alias: str) -> None:
        self.client, self.function, self.alias = client, function, alias
        self._timeouts_ms: dict[str, float] = {}

    def read(self) -> AliasRouting | None:
        """The alias now; None when it (or the function) does not exist."""
        try:
            found = self.client.get_alias(FunctionName=self.function, Name=self.alias)
        except ClientError as err:
            if err.response["Error"]["Code"] == "ResourceNotFoundException":
                return None
            raise
        weights = (found.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
        return AliasRouting(
            self.function, self.alias, found["FunctionVersion"], {v: float(w) for v, w in weights.items()}
        )

    def timeout_ms(self, version: str) -> float:
        if version not in self._timeouts_ms:
            configuration = self.client.get_function_configuration(
                FunctionName=self.function, Qualifier=version
            )
            self._timeouts_ms[version] = float(configuration["Timeout"]) * 1000
        return self._timeouts_ms[version]


def invocation_samples(
    routing: AliasRouting,
    invocations: list[Invocation],
    *,
    at: float,
    timeout_ms: Callable[[str], float],
) -> Iterator[Sample]:
    """The ``AWS/Lambda`` values of a tick's invocations of the alias, all stamped ``at`` (to the
    second)."""
    stamp = datetime.fromtimestamp(int(at), UTC)
    function = (("FunctionName", routing.function),)
    resource = (*function, ("Resource", f"{routing.function}:{routing.alias}"))
    for version, outcome in invocations:
        failed, duration = (True, timeout_ms(version)) if outcome is None else (outcome[0] >= 500, outcome[1])
        for dims in ((), function, resource, (*resource, ("ExecutedVersion", version))):
            yield (NAMESPACE, "Invocations", "Count", RESOLUTION, dims, stamp), 1.0
            yield (NAMESPACE, "Errors", "Count", RESOLUTION, dims, stamp), 1.0 if failed else 0.0
            yield (NAMESPACE, "Throttles", "Count", RESOLUTION, dims, stamp), 0.0
            yield (NAMESPACE, "Duration", "Milliseconds", RESOLUTION, dims, stamp), round(duration, 3)
