"""Fixtures for the phase 5-8 unit tests: a threaded moto server (clients may run in threads), seeded.

pytest only loads ``conftest.py``; test modules import these names explicitly.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import boto3
import pytest
import requests
from moto.server import ThreadedMotoServer

from deployment.config import load_config
from tests.sandbox._servers import free_port
from tests.unit._aws import aws_connection, weighted

VERSION = "v1.1.0"
RUN_ID = "manual__2026-01-02T03:04:05+00:00"
PARAMS = {"version": VERSION, "commit_sha": "a" * 40, "author": "carol", "emergency": {}}


@pytest.fixture(scope="module")
def moto_url():
    from sandbox.lambda_stack import install

    install()  # the template's Lambda version and alias, as the sandbox's CloudFormation keeps them
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def put_traffic(
    cloudwatch,
    cfg,
    *,
    requests: float,
    errors: float,
    latency_ms: float,
    at: datetime | None = None,
    dimensions: dict[str, str] | None = None,
) -> None:
    """One datapoint of each metric, a second ago (moto's windows end on whole seconds)."""
    at = at or datetime.now(UTC) - timedelta(seconds=1)
    dims = [{"Name": k, "Value": v} for k, v in (dimensions or cfg.metrics.dimensions).items()]
    common = {"Dimensions": dims, "Timestamp": at, "StorageResolution": 1}
    m = cfg.metrics
    cloudwatch.put_metric_data(
        Namespace=m.namespace,
        MetricData=[
            {"MetricName": m.requests_metric, "Value": requests, "Unit": "Count", **common},
            {"MetricName": m.errors_metric, "Value": errors, "Unit": "Count", **common},
            {
                "MetricName": m.latency_metric,
                "Unit": "Milliseconds",
                **common,
                "StatisticValues": {
                    "SampleCount": requests,
                    "Sum": requests * latency_ms,
                    "Minimum": latency_ms,
                    "Maximum": latency_ms,
                },
            },
        ],
    )


def set_alarm(cloudwatch, cfg, suffix: str, state: str) -> str:
    name = f"{cfg.alarms.prefix}{suffix}"
    cloudwatch.put_metric_alarm(
        AlarmName=name,
        Namespace=cfg.metrics.namespace,
        MetricName=cfg.metrics.errors_metric,
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanThreshold",
    )
    cloudwatch.set_alarm_state(AlarmName=name, StateValue=state, StateReason=f"unit test: {state}")
    return name


@pytest.fixture
def aws_server(moto_url, monkeypatch):
    """A reset moto server behind the config's AWS connection: bucket, zone with blue live, clients."""
    cfg = load_config("sandbox")
    requests.post(f"{moto_url}/moto-api/reset", timeout=5).raise_for_status()
    aws_connection(cfg, monkeypatch, endpoint_url=moto_url)
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=cfg.region
    )
    clients = {
        name: session.client(name, endpoint_url=moto_url)
        for name in ("s3", "cloudwatch", "route53", "cloudformation")
    }
    clients["s3"].create_bucket(
        Bucket=cfg.artifacts.bucket, CreateBucketConfiguration={"LocationConstraint": cfg.region}
    )
    zone = clients["route53"].create_hosted_zone(Name=cfg.traffic.hosted_zone, CallerReference="unit")
    clients["route53"].change_resource_record_sets(
        HostedZoneId=zone["HostedZone"]["Id"],
        ChangeBatch={
            "Changes": [
                {"Action": "CREATE", "ResourceRecordSet": weighted(cfg, c, w)}
                for c, w in (("blue", 100), ("green", 0))
            ]
        },
    )
    return {"cfg": cfg, "url": moto_url, **clients}


class Feeder:
    """Publishes traffic every 0.2 s in a thread, as the live app would."""

    def __init__(self, cloudwatch, cfg, **traffic: float) -> None:
        self.cloudwatch, self.cfg, self.traffic = cloudwatch, cfg, traffic
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            put_traffic(self.cloudwatch, self.cfg, at=datetime.now(UTC), **self.traffic)
            self._stop.wait(0.2)

    def __enter__(self) -> Feeder:
        self._run_once()
        self._thread.start()
        return self

    def _run_once(self) -> None:
        put_traffic(self.cloudwatch, self.cfg, **self.traffic)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
