"""Seed a fresh sandbox as a live production at the previous version.

GitHub first (the release candidates' commits), then AWS through boto3 against the
running endpoint, as the pipeline sees it: the artifacts bucket, keeping object versions
as the artifact contract requires, with one build per seeded release candidate, packaged
from the sample application (``stack.template``) by scripts/publish_build.py, the script
staging runs; the stack created from the ``v1.0.0`` build's packaged template (transformed
locally by :func:`deployment.aws.sam.transform_template`, since moto cannot run the transform),
so its function runs the version of that build's code object the template pins; a few
items in each of its DynamoDB tables; the front door's KeyValueStore with every viewer on
the stable colour (blue at 100 %, written by the router's own ``seed`` through boto3's
``cloudfront-keyvaluestore`` client, as production's store is seeded); the hosted zone
with the two weighted records (blue 100, green 0) pointing at the branches' Amplify
domains, for a pipeline run on the ``route53`` router; alarms named ``<alarms.prefix>...`` in OK;
healthy production and staging metrics over the last staging window. The
Amplify app and branches are added through the emulator (Amplify ids cannot be
chosen through its API), then blue gets a RELEASE job at ``PREVIOUS_VERSION``
of the ``v1.0.0`` commit through boto3 and green stays idle. GitHub is seeded through
its emulator: releases ``rc-1.0.0`` and ``v1.0.0`` on one commit and ``rc-1.1.0`` on a
later one, each rc commit with a successful staging workflow run, and one more
commit at the head of ``main``.
"""

from __future__ import annotations

import importlib.util
import json
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3

from deployment.aws.sam import transform_template
from deployment.config import PROJECT_ROOT, DeploymentConfig
from sandbox.amplify import AmplifyEmulator
from sandbox.github import GitHubEmulator

PREVIOUS_VERSION = "v1.0.0"
STABLE_COLOUR = "blue"  # the colour live at PREVIOUS_VERSION
NEXT_VERSION = "v1.1.0"
REQUESTS_PER_SECOND = 200
# Distinctive, so that a test can grep every log, XCom and record for the secret (moto takes any
# pair; a word such as "sandbox" would match everywhere). Not in AWS's AKIA format on purpose.
CREDENTIALS = {
    "aws_access_key_id": "SANDBOXKEYID7Q4XK2M9",
    "aws_secret_access_key": "sandbox-aws-secret-5f8c2e91b7d4a6039e1f",
}
# A variable a team would set on its Amplify branches by hand (an API key): never recorded.
AMPLIFY_SECRET_VARIABLES = {"PAYMENTS_API_KEY": "sbx-amplify-secret-3e9b7c14d2a85f60"}
PUBLISH_SCRIPT = PROJECT_ROOT / "scripts" / "publish_build.py"


def aws_client(service: str, endpoint_url: str, region: str) -> Any:
    """A boto3 client for the sandbox AWS endpoint."""
    return boto3.client(service, endpoint_url=endpoint_url, region_name=region, **CREDENTIALS)


def seed_aws(
    cfg: DeploymentConfig, endpoint_url: str, amplify: AmplifyEmulator, releases: dict[str, dict[str, Any]]
) -> None:
    """Seed every AWS system (and the Amplify emulator) of a fresh sandbox.

    ``releases`` is what :func:`seed_github` returned: each seeded release candidate's
    commit and staging run, whose build is published here.
    """

    def client(service: str) -> Any:
        return aws_client(service, endpoint_url, cfg.region)

    s3 = client("s3")
    s3.create_bucket(
        Bucket=cfg.artifacts.bucket, CreateBucketConfiguration={"LocationConstraint": cfg.region}
    )
    for version, release in releases.items():
        publish_sample_build(cfg, s3, release["commit"], version, staging_run=release["staging_run"])
    amplify_client = client("amplify")
    blue_job = _seed_amplify(cfg, amplify, amplify_client, releases[PREVIOUS_VERSION]["commit"])
    _seed_stack(cfg, client("cloudformation"), s3, releases[PREVIOUS_VERSION]["commit"])
    _seed_tables(cfg, client("dynamodb"))
    _seed_records(cfg, client("route53"), amplify)
    _seed_alarms(cfg, client("cloudwatch"))
    _seed_metrics(cfg, client("cloudwatch"))
    _wait_for_job(amplify_client, cfg, blue_job, timeout=amplify.job_seconds + 10)


def stack_parameters(cfg: DeploymentConfig, version: str) -> dict[str, str]:
    return {**cfg.stack.parameters, cfg.stack.version_parameter: version}


def publisher() -> Any:
    """scripts/publish_build.py as a module: the sandbox publishes builds the way staging does."""
    spec = importlib.util.spec_from_file_location("publish_build", PUBLISH_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def keep_versions(cfg: DeploymentConfig, s3: Any) -> None:
    """Versioning on for the artifacts bucket: builds are pinned by S3 version id."""
    s3.put_bucket_versioning(Bucket=cfg.artifacts.bucket, VersioningConfiguration={"Status": "Enabled"})


def publish_sample_build(
    cfg: DeploymentConfig, s3: Any, commit: str, version: str, *, staging_run: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Package the sample application (``stack.template``) as ``commit``'s build; return its manifest.

    The sandbox owns its bucket: versioning goes on first (a bucket made elsewhere, such as the
    unit tier's, may not have it yet), as the seed sets it."""
    keep_versions(cfg, s3)
    return publisher().publish(
        s3,
        bucket=cfg.artifacts.bucket,
        prefix=cfg.artifacts.builds_prefix,
        commit=commit,
        version=version,
        template=cfg.stack.template_path,
        staging_run=staging_run,
    )


def packaged_template(cfg: DeploymentConfig, s3: Any, commit: str) -> str:
    key = f"{cfg.artifacts.builds_prefix.strip('/')}/{commit}/template.yaml"
    return s3.get_object(Bucket=cfg.artifacts.bucket, Key=key)["Body"].read().decode()


def _seed_stack(cfg: DeploymentConfig, cloudformation: Any, s3: Any, commit: str) -> None:
    parameters = stack_parameters(cfg, PREVIOUS_VERSION)
    body = transform_template(packaged_template(cfg, s3, commit), parameters, cfg.region)
    cloudformation.create_stack(
        StackName=cfg.stack.name,
        TemplateBody=body,
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=cfg.stack.capabilities,
        Tags=[{"Key": "application", "Value": cfg.application}],
    )
    status = cloudformation.describe_stacks(StackName=cfg.stack.name)["Stacks"][0]["StackStatus"]
    if status != "CREATE_COMPLETE":
        raise RuntimeError(f"seeding stack {cfg.stack.name} ended {status}")
    adopt_api_alias(cfg, cloudformation)


def adopt_api_alias(cfg: DeploymentConfig, cloudformation: Any, timeout: float = 60) -> None:
    """Write the version the stack's alias serves into ``backend.version_parameter``, as a team does
    once when it adopts the API canary (a release's sync does it after each release). A stack
    created with the parameter empty points the alias at the version it published; a restore of
    such a stack's backup would point it at the copy the restore publishes, not at that version."""
    from deployment.traffic.api_stack import sync_parameters

    stack = cloudformation.describe_stacks(StackName=cfg.stack.name)["Stacks"][0]
    parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    if cfg.backend is None or parameters.get(cfg.backend.version_parameter, "x") != "":
        return
    update = sync_parameters(cfg, parameters, outputs[cfg.backend.version_output])
    cloudformation.update_stack(
        StackName=cfg.stack.name,
        UsePreviousTemplate=True,
        Parameters=update,
        Capabilities=list(cfg.stack.capabilities),
    )
    deadline = time.monotonic() + timeout
    while (
        status := cloudformation.describe_stacks(StackName=cfg.stack.name)["Stacks"][0]["StackStatus"]
    ) != ("UPDATE_COMPLETE"):
        if status.endswith("FAILED") or "ROLLBACK" in status or time.monotonic() > deadline:
            raise RuntimeError(f"adopting the API alias in stack {cfg.stack.name}: the update is {status}")
        time.sleep(0.05)


def _seed_tables(cfg: DeploymentConfig, dynamodb: Any) -> None:
    """A few items per table, keyed by whatever key schema the template gave it."""
    for table in cfg.dynamodb.tables:
        try:
            schema = dynamodb.describe_table(TableName=table)["Table"]["KeySchema"]
        except dynamodb.exceptions.ResourceNotFoundException:
            raise RuntimeError(
                f"dynamodb.tables names {table}, which the stack template does not create"
            ) from None
        keys = {k["KeyType"]: k["AttributeName"] for k in schema}
        for n in range(1, 4):
            item = {keys["HASH"]: {"S": f"seed-{n}"}, "note": {"S": f"seeded at {PREVIOUS_VERSION}"}}
            if "RANGE" in keys:
                item[keys["RANGE"]] = {"S": f"{n:04d}"}
            dynamodb.put_item(TableName=table, Item=item)


def _seed_amplify(cfg: DeploymentConfig, amplify: AmplifyEmulator, client: Any, commit: str) -> str:
    """Add the app and both branches; start blue's RELEASE job of ``commit`` and return its id."""
    app_id, branches = cfg.amplify.app_id, cfg.amplify.branches
    amplify.add_app(app_id, cfg.application, repository=f"https://github.com/{cfg.github.repository}")
    for colour in ("blue", "green"):
        environment = {**AMPLIFY_SECRET_VARIABLES, **cfg.amplify.environment_variables}
        amplify.add_branch(app_id, branches[colour], environment=environment)
    client.update_branch(
        appId=app_id,
        branchName=branches["blue"],
        environmentVariables={
            **AMPLIFY_SECRET_VARIABLES,
            **cfg.amplify.environment_variables,
            cfg.amplify.version_variable: PREVIOUS_VERSION,
        },
    )
    job = client.start_job(
        appId=app_id, branchName=branches["blue"], jobType="RELEASE", jobReason="seed", commitId=commit
    )
    return job["jobSummary"]["jobId"]


def _wait_for_job(client: Any, cfg: DeploymentConfig, job_id: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    branch = cfg.amplify.branches["blue"]
    while True:
        status = client.get_job(appId=cfg.amplify.app_id, branchName=branch, jobId=job_id)["job"]["summary"][
            "status"
        ]
        if status == "SUCCEED":
            return
        if status in ("FAILED", "CANCELLED") or time.monotonic() > deadline:
            raise RuntimeError(f"seeding: the {branch} RELEASE job {job_id} ended {status}")
        time.sleep(0.1)


def _seed_records(cfg: DeploymentConfig, route53: Any, amplify: AmplifyEmulator) -> None:
    traffic = cfg.traffic
    if traffic.record_type != "CNAME":
        raise RuntimeError(f"the sandbox serves CNAME records to Amplify domains, not {traffic.record_type}")
    zone = route53.create_hosted_zone(Name=traffic.hosted_zone, CallerReference=f"sandbox-{time.time_ns()}")
    changes = [
        {
            "Action": "UPSERT",
            "ResourceRecordSet": {
                "Name": traffic.record_name,
                "Type": "CNAME",
                "SetIdentifier": colour,
                "Weight": weight,
                "TTL": traffic.ttl,
                "ResourceRecords": [
                    {"Value": amplify.branch_domain(cfg.amplify.app_id, cfg.amplify.branches[colour])}
                ],
            },
        }
        for colour, weight in (("blue", 100), ("green", 0))
    ]
    route53.change_resource_record_sets(
        HostedZoneId=zone["HostedZone"]["Id"], ChangeBatch={"Comment": "sandbox seed", "Changes": changes}
    )


def kvs_client(endpoint_url: str, region: str) -> Any:
    """boto3's own ``cloudfront-keyvaluestore`` client for the sandbox's store (SigV4A, needs
    ``awscrt``). Its endpoint rules put the account ID in front of the endpoint's host, which
    loopback cannot resolve, so the requests go through the endpoint as an HTTP proxy (as the
    sandbox's AWS connection does: ``service_config``'s ``proxy_url``)."""
    from botocore.config import Config

    return boto3.client(
        "cloudfront-keyvaluestore",
        endpoint_url=endpoint_url,
        region_name=region,
        config=Config(proxies={"http": endpoint_url, "https": endpoint_url}),
        **CREDENTIALS,
    )


def front_door_router(cfg: DeploymentConfig, endpoint_url: str, arn: str) -> Any:
    """The ``keyvaluestore`` router on the sandbox's store ``arn``, through :func:`kvs_client`."""
    from deployment.config import FrontDoor
    from deployment.traffic.front_door import KeyValueStoreRouter

    door = (cfg.traffic.front_door or FrontDoor()).model_copy(update={"key_value_store_arn": arn})
    pinned = cfg.model_copy(update={"traffic": cfg.traffic.model_copy(update={"front_door": door})})
    return KeyValueStoreRouter(pinned, kvs=kvs_client(endpoint_url, cfg.region))


def seed_front_door(cfg: DeploymentConfig, endpoint_url: str, arn: str, colour: str = STABLE_COLOUR) -> None:
    """Write the front door's routing into the (new, empty) store ``arn``: every viewer on
    ``colour``, epoch 1, with the store's ETag, as ``KeyValueStoreRouter.seed`` does in production."""
    from deployment.traffic.router import full

    router = front_door_router(cfg, endpoint_url, arn)
    router.seed(colour)
    if router.weights() != full(colour):
        raise RuntimeError(f"seeding the front door's store {arn} did not put {colour} at 100 %")


def route53_weights(cfg: DeploymentConfig, route53: Any) -> dict[str, int]:
    """The weights of ``traffic.record_name``'s blue/green records (the ``route53`` router's split)."""
    traffic = cfg.traffic
    zones = route53.list_hosted_zones_by_name(DNSName=traffic.hosted_zone)["HostedZones"]
    zone = next((z["Id"] for z in zones if z["Name"].rstrip(".") == traffic.hosted_zone.rstrip(".")), None)
    if zone is None:
        return {}
    records = route53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
    return {
        r["SetIdentifier"]: int(r["Weight"])
        for r in records
        if r["Name"].rstrip(".") == traffic.record_name.rstrip(".") and r.get("SetIdentifier")
    }


def alarm_definitions(cfg: DeploymentConfig) -> list[dict[str, Any]]:
    """The production alarms: 5xx errors and latency of the app, throttles of the first table."""
    metrics, thresholds = cfg.metrics, cfg.thresholds
    app_dims = [{"Name": k, "Value": v} for k, v in metrics.dimensions.items()]
    common = {"EvaluationPeriods": 3, "TreatMissingData": "notBreaching", "ActionsEnabled": False}
    return [
        {
            "AlarmName": f"{cfg.alarms.prefix}5xx-errors",
            "Namespace": metrics.namespace,
            "MetricName": metrics.errors_metric,
            "Dimensions": app_dims,
            "Statistic": "Sum",
            "Period": metrics.period_seconds,
            "Threshold": 10.0,
            "ComparisonOperator": "GreaterThanThreshold",
            **common,
        },
        {
            "AlarmName": f"{cfg.alarms.prefix}latency",
            "Namespace": metrics.namespace,
            "MetricName": metrics.latency_metric,
            "Dimensions": app_dims,
            "Statistic": "Average",
            "Period": metrics.period_seconds,
            "Threshold": float(thresholds.latency_ms),
            "ComparisonOperator": "GreaterThanThreshold",
            **common,
        },
        {
            "AlarmName": f"{cfg.alarms.prefix}throttles",
            "Namespace": "AWS/DynamoDB",
            "MetricName": "ThrottledRequests",
            "Dimensions": [{"Name": "TableName", "Value": cfg.dynamodb.tables[0]}],
            "Statistic": "Sum",
            "Period": max(metrics.period_seconds, 60),
            "Threshold": 0.0,
            "ComparisonOperator": "GreaterThanThreshold",
            **common,
        },
    ]


def _seed_alarms(cfg: DeploymentConfig, cloudwatch: Any) -> None:
    for alarm in alarm_definitions(cfg):
        cloudwatch.put_metric_alarm(**alarm)
        cloudwatch.set_alarm_state(
            AlarmName=alarm["AlarmName"], StateValue="OK", StateReason="Seeded healthy"
        )


def _seed_metrics(cfg: DeploymentConfig, cloudwatch: Any) -> None:
    """Healthy history (0.2 % errors, ~120 ms) for production and staging over the last window.

    The traffic simulator publishes from now on; this covers the windows the
    pipeline looks back over when a release starts right after the sandbox.
    """
    metrics = cfg.metrics
    period = metrics.period_seconds
    window = max(cfg.timings.staging_window_seconds, cfg.timings.baseline_window_seconds)
    now = datetime.now(UTC).replace(microsecond=0)
    requests = REQUESTS_PER_SECOND * period
    data: list[dict[str, Any]] = []
    for n in range(1, window // period + 1):
        stamp = now - timedelta(seconds=n * period)
        for dimensions in (metrics.dimensions, metrics.staging_dimensions):
            common = {
                "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
                "Timestamp": stamp,
                "StorageResolution": 1 if period < 60 else 60,
            }
            latency = {"SampleCount": requests, "Sum": 120.0 * requests, "Minimum": 40.0, "Maximum": 400.0}
            data += [
                {"MetricName": metrics.requests_metric, "Value": requests, "Unit": "Count", **common},
                {"MetricName": metrics.errors_metric, "Value": requests // 500, "Unit": "Count", **common},
                {
                    "MetricName": metrics.latency_metric,
                    "StatisticValues": latency,
                    "Unit": "Milliseconds",
                    **common,
                },
            ]
    for start in range(0, len(data), 900):
        cloudwatch.put_metric_data(Namespace=metrics.namespace, MetricData=data[start : start + 900])


def seed_github(cfg: DeploymentConfig, github: GitHubEmulator, amplify: AmplifyEmulator) -> dict[str, dict]:
    """Releases rc-1.0.0 and v1.0.0 (production) and rc-1.1.0, each rc with a green staging run,
    then a commit past rc-1.1.0 at the head of ``main`` (a build of the head is not v1.1.0).

    Connects ``amplify`` to the repository (its jobs build commits of it). Returns
    ``{version: {"commit", "staging_run"}}`` per release candidate.
    """
    prefix, workflow = cfg.github.rc_tag_prefix, cfg.github.staging_workflow
    previous, following = PREVIOUS_VERSION.lstrip("v"), NEXT_VERSION.lstrip("v")
    releases: dict[str, dict] = {}
    github.add_commits(["Initial import", "Content editor", f"Release {previous}"], tag=PREVIOUS_VERSION)
    commit = github.head()
    github.add_tag(f"{prefix}{previous}", commit)
    github.add_release(f"{prefix}{previous}", prerelease=True, body=f"Release candidate {previous}")
    github.add_release(PREVIOUS_VERSION, body=f"Production release {previous}")
    run_id = github.add_workflow_run(workflow, commit)
    releases[PREVIOUS_VERSION] = {"commit": commit, "staging_run": {"run_id": run_id, "workflow": workflow}}
    github.add_commits(["AI assistant prompts", "Payments: retry intents", f"Release candidate {following}"])
    commit = github.head()
    github.add_tag(f"{prefix}{following}", commit)
    github.add_release(f"{prefix}{following}", prerelease=True, body=f"Release candidate {following}")
    run_id = github.add_workflow_run(workflow, commit)
    releases[NEXT_VERSION] = {"commit": commit, "staging_run": {"run_id": run_id, "workflow": workflow}}
    github.add_commits(["Dashboard: work in progress"])
    amplify.repository = github.version_at
    return releases


# ------------------------------------------------------------------- build faults
BUILD_FAULTS = ("tampered_object", "missing_manifest", "rc_tag_moved", "republished")


def inject_build_fault(
    cfg: DeploymentConfig,
    s3: Any,
    github: GitHubEmulator,
    version: str,
    kind: str,
    template: str | None = None,
) -> dict[str, Any]:
    """Break ``version``'s release candidate: ``kind`` is one of :data:`BUILD_FAULTS`.

    ``republished`` publishes the commit's build again, properly, from ``template`` (the
    sample application's template as edited): a valid build, other bytes. Undone only by
    reseeding. Returns what was changed (the object key, the tag or the new manifest).
    """
    tag = f"{cfg.github.rc_tag_prefix}{version.removeprefix('v')}"
    commit = github.version_at(tag)[0]
    if kind == "tampered_object":
        return {"kind": kind, "commit": commit, "key": tamper_build_object(cfg, s3, commit)}
    if kind == "missing_manifest":
        return {"kind": kind, "commit": commit, "key": remove_build_manifest(cfg, s3, commit)}
    if kind == "republished":
        if not template:
            raise ValueError("republished needs the template to publish")
        return {"kind": kind, "commit": commit, "manifest": republish(cfg, s3, commit, version, template)}
    if kind == "rc_tag_moved":
        head = github.head()
        github.move_tag(tag, head)
        return {"kind": kind, "commit": commit, "tag": tag, "now": head}
    raise ValueError(f"kind must be one of {list(BUILD_FAULTS)}, got {kind!r}")


def tamper_build_object(cfg: DeploymentConfig, s3: Any, commit: str) -> str:
    """Write other bytes to the first code object's key of ``commit``'s build (a new S3 version:
    the version the manifest pins keeps its bytes); return the key."""
    manifest = _manifest(cfg, s3, commit)
    key = manifest["objects"][0]["key"]
    data = s3.get_object(Bucket=cfg.artifacts.bucket, Key=key)["Body"].read()
    s3.put_object(Bucket=cfg.artifacts.bucket, Key=key, Body=data + b"tampered")
    return key


def remove_build_manifest(cfg: DeploymentConfig, s3: Any, commit: str) -> str:
    """Delete the manifest of ``commit``'s build; return its key."""
    key = f"{cfg.artifacts.builds_prefix.strip('/')}/{commit}/manifest.json"
    s3.delete_object(Bucket=cfg.artifacts.bucket, Key=key)
    return key


def republish(cfg: DeploymentConfig, s3: Any, commit: str, version: str, template: str) -> dict[str, Any]:
    """Publish ``commit``'s build again from ``template`` beside the sample application's code."""
    staging_run = _manifest(cfg, s3, commit).get("staging_run")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / cfg.stack.template_path.name
        path.write_text(template)
        for item in cfg.stack.template_path.parent.iterdir():
            if item.is_dir():
                (Path(folder) / item.name).symlink_to(item)
        stack = cfg.stack.model_copy(update={"template": str(path)})
        edited = cfg.model_copy(update={"stack": stack})
        return publish_sample_build(edited, s3, commit, version, staging_run=staging_run)


def _manifest(cfg: DeploymentConfig, s3: Any, commit: str) -> dict[str, Any]:
    key = f"{cfg.artifacts.builds_prefix.strip('/')}/{commit}/manifest.json"
    return json.loads(s3.get_object(Bucket=cfg.artifacts.bucket, Key=key)["Body"].read())
