"""What the API function publishes per request, in CloudWatch's embedded metric format (EMF).

One JSON log line per request: CloudWatch Logs extracts from it the request (``RequestCount``
1), whether it failed (``5xxErrors`` 0 or 1) and its latency (``Latency``, the value itself in
milliseconds, so percentiles can be asked of it), at 1-second storage resolution, under two
dimension sets: ``Environment`` (the whole environment) and ``Environment`` + ``Colour`` (the
colour that served it). The colour comes from the page (each Amplify branch is built with its
own); only ``blue`` and ``green`` are accepted, anything else publishes the environment's series
alone, so a stray or forged header cannot invent a series. Stdlib only: it runs in Lambda.
"""

from __future__ import annotations

import json
import os
from typing import Any

COLOURS = ("blue", "green")
COLOUR_HEADER = "x-app-colour"
# 1: CloudWatch keeps each second apart, so a watch can poll every few seconds in a test and
# per minute in production from the same series.
STORAGE_RESOLUTION = 1


def names_from_env(env: Any = os.environ) -> dict[str, str]:
    """Namespace, metric names and dimension names, as the template sets them on the function."""
    return {
        "namespace": env.get("METRICS_NAMESPACE", "BayonCoAgent"),
        "dimensions": {"Environment": env.get("ENVIRONMENT", "production")},
        "requests": env.get("METRIC_REQUESTS", "RequestCount"),
        "errors": env.get("METRIC_ERRORS", "5xxErrors"),
        "latency": env.get("METRIC_LATENCY", "Latency"),
        "colour_dimension": env.get("COLOUR_DIMENSION", "Colour"),
    }


def colour_of(headers: dict[str, str] | None) -> str | None:
    """The serving colour the page sent, or None when it sent none we accept."""
    for key, value in (headers or {}).items():
        if key.lower() == COLOUR_HEADER:
            colour = str(value).strip().lower()
            return colour if colour in COLOURS else None
    return None


def emf_document(
    names: dict[str, str], *, colour: str | None, status: int, latency_ms: float, timestamp_ms: int
) -> dict[str, Any]:
    """One request as an EMF document (a dict; ``json.dumps`` it onto one line of stdout)."""
    fields: dict[str, Any] = dict(names["dimensions"])
    dimension_sets = [list(fields)]
    if colour in COLOURS:
        dimension_sets.append([*dimension_sets[0], names["colour_dimension"]])
        fields[names["colour_dimension"]] = colour
    metric = {"StorageResolution": STORAGE_RESOLUTION}
    return {
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [
                {
                    "Namespace": names["namespace"],
                    "Dimensions": dimension_sets,
                    "Metrics": [
                        {"Name": names["requests"], "Unit": "Count", **metric},
                        {"Name": names["errors"], "Unit": "Count", **metric},
                        {"Name": names["latency"], "Unit": "Milliseconds", **metric},
                    ],
                }
            ],
        },
        **fields,
        names["requests"]: 1,
        names["errors"]: 1 if status >= 500 else 0,
        names["latency"]: round(float(latency_ms), 3),
    }


def emit(document: dict[str, Any]) -> None:
    """Write the document as one log line: Lambda sends stdout to CloudWatch Logs, which extracts it."""
    print(json.dumps(document, separators=(",", ":")), flush=True)
