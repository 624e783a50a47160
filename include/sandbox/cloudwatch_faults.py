"""Where the sandbox's CloudWatch (moto) falls short of AWS's: failures on demand, and percentiles.

:func:`failure_response` answers with an error or throttling, for the ``cloudwatch_failure``
fault. The answer is shaped as CloudWatch's own for the protocol the client spoke: Smithy RPC v2
CBOR (what current botocore uses for ``monitoring``), JSON 1.0 (``X-Amz-Target``) or the
query protocol (XML). ``mode`` ``throttling`` answers 400 ``Throttling`` (botocore retries
it with backoff), ``error`` answers 500 ``InternalServiceFault``.

:func:`honour_percentiles`: moto 5.2.5 answers no percentile statistic (``p95``, ``p99``) in
GetMetricData, where CloudWatch computes them from values published with ``Values``/``Counts``;
and it stores each value of such a datum as an object of its own (``Counts`` times over), which
a simulator publishing every request would grow by the hundred thousand. Installed (once, in
the process that runs moto), a ``Values``/``Counts`` datum is kept as one object with its
histogram, and ``pNN`` is answered by nearest rank over the period's values. The sandbox's
front (``aws.AwsFront``) installs it; a test that runs moto in its own process calls it.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections import Counter
from typing import Any
from xml.sax.saxutils import escape

PERCENTILE = re.compile(r"p(\d{1,2}(?:\.\d+)?|100)")

WsgiResult = tuple[str, list[tuple[str, str]], bytes]
MODES = {
    "throttling": ("400 Bad Request", "Throttling", "Rate exceeded", "Sender"),
    "error": ("500 Internal Server Error", "InternalServiceFault", "Internal service error", "Receiver"),
}


def _cbor_text(text: str) -> bytes:
    data = text.encode()
    if len(data) < 24:
        return bytes([0x60 + len(data)]) + data
    if len(data) < 256:
        return bytes([0x78, len(data)]) + data
    return bytes([0x79]) + len(data).to_bytes(2, "big") + data


def _cbor_map(items: dict[str, str]) -> bytes:
    """A CBOR map of text to text (RFC 8949: major types 5 and 3), all this error body needs."""
    return bytes([0xA0 + len(items)]) + b"".join(_cbor_text(k) + _cbor_text(v) for k, v in items.items())


def failure_response(environ: dict[str, Any], fault: dict[str, Any]) -> WsgiResult:
    """The error CloudWatch would send for ``fault`` (``mode``: throttling, the default, or error)."""
    status, code, message, fault_type = MODES[fault.get("mode") or "throttling"]
    message = f"{message} (sandbox fault {fault['id']})"
    headers = [("x-amzn-RequestId", str(uuid.uuid4())), ("x-amzn-query-error", f"{code};{fault_type}")]
    if environ.get("HTTP_SMITHY_PROTOCOL") == "rpc-v2-cbor":
        body = _cbor_map({"__type": f"com.amazonaws.cloudwatch#{code}", "message": message})
        headers += [("Content-Type", "application/cbor"), ("smithy-protocol", "rpc-v2-cbor")]
    elif environ.get("HTTP_X_AMZ_TARGET"):
        body = json.dumps({"__type": f"com.amazonaws.cloudwatch#{code}", "message": message}).encode()
        headers.append(("Content-Type", "application/x-amz-json-1.0"))
    else:
        body = (
            f'<ErrorResponse xmlns="http://monitoring.amazonaws.com/doc/2010-08-01/"><Error>'
            f"<Type>{fault_type}</Type><Code>{code}</Code><Message>{escape(message)}</Message>"
            f"</Error><RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
        ).encode()
        headers.append(("Content-Type", "text/xml"))
    return status, headers, body


def nearest_rank(histogram: Counter[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100] of a histogram of values, by nearest rank."""
    total = sum(histogram.values())
    if total <= 0:
        return None
    rank = max(1, math.ceil(q / 100 * total))
    seen = 0.0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= rank:
            return value
    return max(histogram)


def honour_percentiles() -> None:
    """Teach moto's CloudWatch percentiles over values and compact ``Values``/``Counts`` data."""
    from moto.cloudwatch import models

    if getattr(models.Statistics, "sandbox_percentiles", False):
        return

    class DistributionDatum(models.MetricAggregatedDatum):
        """One ``Values``/``Counts`` datum: its statistic set plus the histogram of its values."""

        def __init__(self, namespace: str, member: dict[str, Any]) -> None:
            values = [float(v) for v in member["Values"]]
            counts = [float(c) for c in member.get("Counts") or [1] * len(values)]
            self.histogram: Counter[float] = Counter()
            for value, count in zip(values, counts, strict=True):
                self.histogram[value] += count
            super().__init__(
                namespace,
                member["MetricName"],
                min_stat=min(values),
                max_stat=max(values),
                sample_count=sum(counts),
                sum_stat=sum(v * c for v, c in zip(values, counts, strict=True)),
                dimensions=member.get("Dimensions", []),
                timestamp=member.get("Timestamp"),
                unit=member.get("Unit"),
            )

    put_metric_data = models.CloudWatchBackend.put_metric_data
    get_statistics_for_type = models.Statistics.get_statistics_for_type

    def put_compact(self: Any, namespace: str, metric_data: list[dict[str, Any]]) -> None:
        for i, member in enumerate(metric_data):
            self._validate_parameters_put_metric_data(member, i + 1)
        self.metric_data.extend(DistributionDatum(namespace, m) for m in metric_data if m.get("Values"))
        put_metric_data(self, namespace, [m for m in metric_data if not m.get("Values")])

    def statistic(self: Any, stat: str) -> Any:
        match = PERCENTILE.fullmatch(stat)
        if match is None:
            return get_statistics_for_type(self, stat)
        histogram: Counter[float] = Counter(self.metric_single_values_list)
        for datum in self.metric_data:
            histogram.update(getattr(datum, "histogram", {}))
        return nearest_rank(histogram, float(match.group(1)))

    models.CloudWatchBackend.put_metric_data = put_compact
    models.Statistics.get_statistics_for_type = statistic
    models.Statistics.sandbox_percentiles = True
