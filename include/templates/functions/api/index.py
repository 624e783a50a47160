"""The sample application's API function: answers with the release it runs, and publishes
each request's metrics per serving colour (``metrics.py``, CloudWatch's embedded metric format)."""

import json
import os
import time

import metrics

NAMES = metrics.names_from_env()


def answer(event):
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({"version": os.environ["APP_VERSION"]}),
    }


def handler(event, context):
    started = time.monotonic()
    status = 500
    try:
        response = answer(event)
        status = response["statusCode"]
        return response
    finally:
        metrics.emit(
            metrics.emf_document(
                NAMES,
                colour=metrics.colour_of((event or {}).get("headers")),
                status=status,
                latency_ms=(time.monotonic() - started) * 1000,
                timestamp_ms=int(time.time() * 1000),
            )
        )
