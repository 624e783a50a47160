"""The ``cloudwatch_failure`` fault: CloudWatch answers errors or throttling for a while, as AWS would."""

from __future__ import annotations

import time

import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError


def no_retries(sandbox):
    """A CloudWatch client without client-side retries, so the test sees each answer."""
    import boto3

    from sandbox.launcher import CREDENTIALS

    config = Config(retries={"max_attempts": 1, "mode": "standard"})
    return boto3.client(
        "cloudwatch",
        endpoint_url=sandbox.endpoints["aws"],
        region_name=sandbox.cfg.region,
        config=config,
        **CREDENTIALS,
    )


def add_fault(sandbox, **fault) -> requests.Response:
    return requests.post(f"{sandbox.endpoints['control']}/faults", json=fault, timeout=5)


@pytest.mark.parametrize(
    ("mode", "code", "status"), [("throttling", "Throttling", 400), ("error", "InternalServiceFault", 500)]
)
def test_calls_fail_with_cloudwatchs_own_error_then_recover(sandbox, mode, code, status):
    cloudwatch = no_retries(sandbox)
    # A first call loads the client's model and moto's CloudWatch backend: on a busy machine (the tier
    # runs in two workers) that alone outlasted a one-second fault.
    assert "MetricAlarms" in cloudwatch.describe_alarms()
    assert add_fault(sandbox, kind="cloudwatch_failure", mode=mode, seconds=2.0).status_code == 201
    with pytest.raises(ClientError) as failed:
        cloudwatch.describe_alarms()
    assert failed.value.response["Error"]["Code"] == code
    assert failed.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    time.sleep(2.1)
    assert "MetricAlarms" in cloudwatch.describe_alarms()  # the fault lasted its seconds


def test_the_fault_can_name_one_action_and_spares_other_services(sandbox, aws):
    cloudwatch = no_retries(sandbox)
    assert add_fault(sandbox, kind="cloudwatch_failure", action="GetMetricData").status_code == 201
    assert "MetricAlarms" in cloudwatch.describe_alarms()
    with pytest.raises(ClientError, match="Throttling"):
        cloudwatch.get_metric_data(
            MetricDataQueries=[
                {
                    "Id": "q",
                    "MetricStat": {
                        "Metric": {"Namespace": "N", "MetricName": "M"},
                        "Period": 60,
                        "Stat": "Sum",
                    },
                }
            ],
            StartTime=time.time() - 60,
            EndTime=time.time(),
        )
    assert aws("route53").list_hosted_zones()["HostedZones"]


def test_bad_settings_are_refused(sandbox):
    assert add_fault(sandbox, kind="cloudwatch_failure", mode="sometimes").status_code == 400
    assert add_fault(sandbox, kind="cloudwatch_failure", seconds=0).status_code == 400
