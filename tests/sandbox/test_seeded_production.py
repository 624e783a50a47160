"""What a new user sees with ordinary boto3 clients: the seeded production at v1.0.0."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import requests


def test_stack_at_previous_version(sandbox, aws):
    cfg = sandbox.cfg
    stack = aws("cloudformation").describe_stacks(StackName=cfg.stack.name)["Stacks"][0]
    # created, then adopted: LiveVersion names the version its alias serves (seed.adopt_api_alias)
    assert stack["StackStatus"] == "UPDATE_COMPLETE"
    params = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
    assert params == {
        **cfg.stack.parameters,
        cfg.stack.version_parameter: "v1.0.0",
        cfg.backend.version_parameter: "1",
    }
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    assert outputs["AppVersion"] == "v1.0.0"
    resources = aws("cloudformation").list_stack_resources(StackName=cfg.stack.name)["StackResourceSummaries"]
    tables = {r["PhysicalResourceId"] for r in resources if r["ResourceType"] == "AWS::DynamoDB::Table"}
    assert tables == set(cfg.dynamodb.tables)


def test_the_api_function_is_served_through_alias_live_on_version_1(sandbox, aws):
    cfg, cloudformation, lam = sandbox.cfg, aws("cloudformation"), aws("lambda")
    function = cfg.backend.function_name
    alias = lam.get_alias(FunctionName=function, Name=cfg.backend.alias)
    assert (alias["FunctionVersion"], alias.get("RoutingConfig")) == ("1", None)
    published = lam.get_function_configuration(FunctionName=function, Qualifier="1")
    assert published["Environment"]["Variables"]["APP_VERSION"] == "v1.0.0"
    resources = cloudformation.list_stack_resources(StackName=cfg.stack.name)["StackResourceSummaries"]
    owned = {
        r["ResourceType"]: r["PhysicalResourceId"]
        for r in resources
        if r["ResourceType"].startswith("AWS::Lambda::")
    }
    assert owned == {
        "AWS::Lambda::Function": function,
        "AWS::Lambda::Version": published["FunctionArn"],
        "AWS::Lambda::Alias": alias["AliasArn"],
    }
    outputs = {
        o["OutputKey"]: o["OutputValue"]
        for o in cloudformation.describe_stacks(StackName=cfg.stack.name)["Stacks"][0]["Outputs"]
    }
    assert (outputs["ApiFunctionVersion"], outputs["ApiAliasArn"]) == ("1", alias["AliasArn"])
    detection = cloudformation.detect_stack_drift(StackName=cfg.stack.name)["StackDriftDetectionId"]
    status = cloudformation.describe_stack_drift_detection_status(StackDriftDetectionId=detection)
    assert status["StackDriftStatus"] == "IN_SYNC"


def test_tables_have_items_and_bucket_keeps_versions(sandbox, aws):
    for table in sandbox.cfg.dynamodb.tables:
        assert aws("dynamodb").scan(TableName=table)["Count"] >= 3
    # builds are pinned by S3 version id (the artifact contract)
    assert aws("s3").get_bucket_versioning(Bucket=sandbox.cfg.artifacts.bucket)["Status"] == "Enabled"


def test_weighted_records_send_all_traffic_to_blue(sandbox, aws):
    cfg, route53 = sandbox.cfg, aws("route53")
    zone = route53.list_hosted_zones_by_name(DNSName=cfg.traffic.hosted_zone)["HostedZones"][0]
    records = route53.list_resource_record_sets(HostedZoneId=zone["Id"])["ResourceRecordSets"]
    weighted = {r["SetIdentifier"]: r for r in records if r.get("SetIdentifier")}
    assert {c: r["Weight"] for c, r in weighted.items()} == {"blue": 100, "green": 0}
    for colour, record in weighted.items():
        assert record["Name"] == cfg.traffic.record_name and record["Type"] == "CNAME"
        branch = cfg.amplify.branches[colour]
        assert record["ResourceRecords"] == [{"Value": f"{branch}.{cfg.amplify.app_id}.amplifyapp.com"}]


def test_the_front_door_store_sends_every_viewer_to_blue(sandbox):
    """Seeded as production's store is, read back as the pipeline's router reads it (boto3's own
    client), and served so by the front door's function."""
    from sandbox.seed import front_door_router

    router = front_door_router(sandbox.cfg, sandbox.endpoints["aws"], sandbox.kvs_arn)
    assert router.weights() == {"blue": 100, "green": 0} and router.live_colour() == "blue"
    routing, _ = router.routing()
    assert routing["stable"] == "blue" and routing["weight"] == 0 and routing["epoch"] == 1
    probe = requests.get(sandbox.endpoints["frontdoor"] + "/__frontdoor", timeout=10).json()
    assert probe == {"stable": "blue", "new": "green", "weight": 0, "epoch": "1"}


def test_alarms_ok(sandbox, aws):
    alarms = aws("cloudwatch").describe_alarms(AlarmNamePrefix=sandbox.cfg.alarms.prefix)["MetricAlarms"]
    assert len(alarms) >= 3
    assert {a["StateValue"] for a in alarms} == {"OK"}


@pytest.mark.parametrize("dimensions", ["staging_dimensions", "dimensions"])
def test_metrics_healthy_over_the_staging_window(sandbox, aws, dimensions):
    cfg, cloudwatch = sandbox.cfg, aws("cloudwatch")
    end = datetime.now(UTC)
    start = end - timedelta(seconds=cfg.timings.staging_window_seconds)
    dims = [{"Name": k, "Value": v} for k, v in getattr(cfg.metrics, dimensions).items()]

    def total(metric, statistic):
        points = cloudwatch.get_metric_statistics(
            Namespace=cfg.metrics.namespace, MetricName=metric, Dimensions=dims,
            StartTime=start, EndTime=end, Period=cfg.timings.staging_window_seconds, Statistics=[statistic],
        )["Datapoints"]  # fmt: skip
        return points[0][statistic]

    served = total(cfg.metrics.requests_metric, "Sum")
    assert served > cfg.thresholds.min_requests_per_poll
    assert 100 * total(cfg.metrics.errors_metric, "Sum") / served < cfg.thresholds.error_rate_percent
    assert total(cfg.metrics.latency_metric, "Average") < cfg.thresholds.latency_ms


def test_github_release_candidates_and_staging_runs(sandbox):
    repo, headers = sandbox.cfg.github.repository, {"Authorization": "token sandbox-github-token"}
    base = f"{sandbox.endpoints['github']}/repos/{repo}"
    for tag in ("rc-1.0.0", "rc-1.1.0"):
        release = requests.get(f"{base}/releases/tags/{tag}", headers=headers, timeout=5).json()
        assert release["prerelease"] is True
        sha = requests.get(f"{base}/commits/{tag}", headers=headers, timeout=5).json()["sha"]
        runs = requests.get(
            f"{base}/actions/workflows/{sandbox.cfg.github.staging_workflow}/runs",
            params={"head_sha": sha}, headers=headers, timeout=5,
        ).json()["workflow_runs"]  # fmt: skip
        assert [r["conclusion"] for r in runs] == ["success"]


def test_apps_serve_blue_only(sandbox):
    blue = requests.get(f"{sandbox.endpoints['app_blue']}/health", timeout=5)
    assert blue.json()["version"] == "v1.0.0"
    assert requests.get(f"{sandbox.endpoints['app_green']}/health", timeout=5).status_code == 503


def test_connections_point_at_the_sandbox(sandbox):
    env = sandbox.connections_env()
    # Every external system's connection; airflow_api is Airflow's own API server, which the stack
    # that runs it sets (airflow_stack.env: the pipeline's reader user), not the sandbox.
    ids = {cid for name, cid in sandbox.cfg.connections.model_dump().items() if name != "airflow_api"}
    assert set(env) == {f"AIRFLOW_CONN_{cid.upper()}" for cid in ids}
    aws_conn = json.loads(env[f"AIRFLOW_CONN_{sandbox.cfg.connections.aws.upper()}"])
    kvs = {"endpoint_url": sandbox.endpoints["aws"], "proxy_url": sandbox.endpoints["aws"]}
    assert aws_conn["extra"] == {
        "endpoint_url": sandbox.endpoints["aws"],
        "region_name": sandbox.cfg.region,
        "service_config": {"cloudfront-keyvaluestore": kvs},
    }


def test_airflow_aws_hook_reaches_moto_and_amplify(sandbox, monkeypatch):
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    monkeypatch.setenv(*next((k, v) for k, v in sandbox.connections_env().items() if "AWS" in k))
    conn_id, cfg = sandbox.cfg.connections.aws, sandbox.cfg
    cloudformation = AwsBaseHook(aws_conn_id=conn_id, client_type="cloudformation").get_conn()
    assert cloudformation.describe_stacks(StackName=cfg.stack.name)["Stacks"][0]["StackStatus"]
    amplify = AwsBaseHook(aws_conn_id=conn_id, client_type="amplify").get_conn()
    assert amplify.get_app(appId=cfg.amplify.app_id)["app"]["appId"] == cfg.amplify.app_id
    from deployment.hooks.aws import KeyValueStoreHook

    kvs = KeyValueStoreHook(aws_conn_id=conn_id).get_conn()
    assert kvs.describe_key_value_store(KvsARN=sandbox.kvs_arn)["Status"] == "READY"
