"""AWS (in-process moto) and GitHub/Slack/Amplify emulator fixtures for the phase 1–4 unit tests.

``aws`` seeds a production at ``v1.0.0``: the stack from the locally transformed
template, its DynamoDB tables, the artifacts bucket, the weighted Route 53 records
(blue live) and the Amplify app whose blue branch has a SUCCEED job. Amplify is
served by the sandbox emulator on a loopback port and reached through the AWS
connection's ``service_config`` (moto has no Amplify; everything else stays in moto).
"""

from __future__ import annotations

import json
import time

import pytest
from _aws import aws_connection, weighted
from _release import COMMIT, PREVIOUS, PREVIOUS_COMMIT, RUN_ID, VERSION

from deployment import config as config_module
from deployment.config import CONFIG_DIR, load_config
from tests.sandbox._servers import serving as serve

BUILDS = {PREVIOUS: PREVIOUS_COMMIT, VERSION: COMMIT}


# The unit tier runs AWS in-process (moto) and has no front door: its fixtures seed, and its tests
# assert, the weighted Route 53 records. So here ``sandbox`` (by name, or as $DEPLOYMENT_CONFIG
# for the task code that calls ``load_config()``) is sandbox.yaml with ``traffic.router: route53``
# pinned. The sandbox itself routes through the front door (keyvaluestore); the router seam's
# KeyValueStore implementation is tested by test_frontdoor_router.py against the sandbox's KVS
# emulator and front door, and the real-engine tier runs every release through the front door.
UNIT_SANDBOX_YAML = f"""\
extends: {CONFIG_DIR / "sandbox.yaml"}
traffic:
  router: route53
"""


@pytest.fixture(scope="session")
def _unit_config_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("unit-config")
    for path in CONFIG_DIR.glob("*.yaml"):
        (folder / path.name).symlink_to(path)
    (folder / "sandbox.yaml").unlink()
    (folder / "sandbox.yaml").write_text(UNIT_SANDBOX_YAML)
    return folder


@pytest.fixture(autouse=True)
def _sandbox_routes_by_route53(_unit_config_dir, monkeypatch):
    """Configurations by name come from a folder whose sandbox.yaml pins the route53 router."""
    monkeypatch.setattr(config_module, "CONFIG_DIR", _unit_config_dir)


@pytest.fixture(autouse=True)
def _own_task_cache(tmp_path, monkeypatch):
    """Each test its own local cache (``deployment.local_cache``): the tests share run ids and versions."""
    from deployment.local_cache import CACHE_DIR_ENV_VAR

    monkeypatch.setenv(CACHE_DIR_ENV_VAR, str(tmp_path / "deployment-cache"))


@pytest.fixture
def cfg():
    cfg = load_config("sandbox")
    assert cfg.traffic.router == "route53", "the unit tier's sandbox routes by Route 53 (see above)"
    return cfg


@pytest.fixture
def amplify_emulator(cfg):
    from sandbox.amplify import AmplifyEmulator
    from sandbox.faults import Faults

    emulator = AmplifyEmulator(Faults(), region=cfg.region, job_seconds=0.05)
    emulator.add_app(cfg.amplify.app_id, cfg.application)
    for colour, branch in cfg.amplify.branches.items():
        env = {cfg.amplify.version_variable: PREVIOUS, "COLOUR": colour}
        emulator.add_branch(cfg.amplify.app_id, branch, environment=env)
    with serve(emulator) as url:
        yield {"emulator": emulator, "url": url}


def _stack_parameters(cfg, version: str) -> list[dict[str, str]]:
    from deployment.aws.cloudformation import release_parameters

    return [{"ParameterKey": k, "ParameterValue": v} for k, v in release_parameters(cfg, version).items()]


@pytest.fixture
def moto(cfg, monkeypatch):
    """In-process moto behind the AWS connection, with the artifacts bucket (enough for the record)."""
    import boto3
    from moto import mock_aws

    from sandbox.lambda_stack import install

    install()  # the template's Lambda version and alias, as the sandbox's CloudFormation keeps them
    aws_connection(cfg, monkeypatch, service_config={})
    with mock_aws():
        session = boto3.session.Session(region_name=cfg.region)
        session.client("s3").create_bucket(
            Bucket=cfg.artifacts.bucket, CreateBucketConfiguration={"LocationConstraint": cfg.region}
        )
        yield session


@pytest.fixture
def aws(cfg, moto, amplify_emulator, monkeypatch):
    """The seeded production in moto + the Amplify emulator; yields boto3 clients and the emulator."""
    from deployment.aws.cloudformation import template_body
    from sandbox.seed import adopt_api_alias

    aws_connection(cfg, monkeypatch, service_config={"amplify": {"endpoint_url": amplify_emulator["url"]}})
    session = moto
    builds = publish_builds(cfg, session.client("s3"))
    cfn = session.client("cloudformation")
    cfn.create_stack(
        StackName=cfg.stack.name,
        TemplateBody=template_body(cfg, PREVIOUS, builds[PREVIOUS]),
        Parameters=_stack_parameters(cfg, PREVIOUS),
        Capabilities=list(cfg.stack.capabilities),
    )
    adopt_api_alias(cfg, cfn)
    route53 = session.client("route53")
    zone = route53.create_hosted_zone(Name=cfg.traffic.hosted_zone, CallerReference="unit")["HostedZone"]
    route53.change_resource_record_sets(
        HostedZoneId=zone["Id"],
        ChangeBatch={
            "Changes": [
                {"Action": "CREATE", "ResourceRecordSet": weighted(cfg, "blue", 100)},
                {"Action": "CREATE", "ResourceRecordSet": weighted(cfg, "green", 0)},
            ]
        },
    )
    emulator = amplify_emulator["emulator"]
    # Production's blue branch serves the previous release's build, as the sandbox seeds it.
    emulator.start_job(
        cfg.amplify.app_id, cfg.amplify.branches["blue"], {"jobType": "RELEASE", "commitId": PREVIOUS_COMMIT}
    )
    time.sleep(0.1)  # the job SUCCEEDs after job_seconds
    return {
        "session": session,
        "s3": session.client("s3"),
        "cfn": cfn,
        "dynamodb": session.client("dynamodb"),
        "route53": route53,
        "zone_id": zone["Id"],
        "amplify": emulator,
        "builds": builds,
    }


def publish_builds(cfg, s3) -> dict[str, str]:
    """Both releases' builds of the sample application, published by scripts/publish_build.py; the
    release's build verified into this run's record (as ``verify_artifact`` does). Returns
    ``{version: packaged template}``."""
    from deployment.aws.artifacts import verify_build
    from deployment.ledger import Ledger
    from sandbox.seed import packaged_template, publish_sample_build

    staging_run = {"run_id": 7, "workflow": cfg.github.staging_workflow}
    for version, commit in BUILDS.items():
        publish_sample_build(cfg, s3, commit, version, staging_run=staging_run)
    Ledger(cfg, VERSION, RUN_ID).write("artifact", {**verify_build(cfg, COMMIT, VERSION), "ok": True})
    return {version: packaged_template(cfg, s3, commit) for version, commit in BUILDS.items()}


@pytest.fixture
def record(cfg, moto):
    """This release's deployment record, on moto's S3 only (no stack, no Amplify)."""
    from deployment.ledger import Ledger

    return Ledger(cfg, VERSION, RUN_ID)


@pytest.fixture
def ledger(cfg, aws):
    from deployment.ledger import Ledger

    return Ledger(cfg, VERSION, RUN_ID)


@pytest.fixture
def github(cfg, monkeypatch):
    """The GitHub emulator with ``rc-1.1.0`` released and a successful staging run for its commit."""
    from sandbox.github import GitHubEmulator

    emulator = GitHubEmulator(cfg.github.repository, "unit-token")
    sha = emulator.add_commits(["Release 1.1.0"])[-1]
    emulator.add_release("rc-1.1.0", prerelease=True)
    emulator.add_workflow_run(cfg.github.staging_workflow, sha, conclusion="success")
    with serve(emulator) as url:
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{cfg.connections.github.upper()}",
            json.dumps({"conn_type": "github", "password": "unit-token", "host": url}),
        )
        yield {"emulator": emulator, "sha": sha, "url": url}


@pytest.fixture
def slack(cfg, monkeypatch):
    """The Slack webhook sink behind the team channel's connection."""
    from sandbox.slack import SlackWebhooks

    path = "T0UNIT/B0TEAM/secret"
    sink = SlackWebhooks({path: cfg.notifications.slack_team_channel})
    with serve(sink) as url:
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{cfg.connections.slack_team.upper()}",
            json.dumps({"conn_type": "slackwebhook", "host": f"{url}/services", "password": path}),
        )
        yield sink


@pytest.fixture
def airflow_api(monkeypatch):
    """The Airflow API the pipeline reads as its own user (connection ``airflow_api``), over real HTTP."""
    from _airflow_api import FakeAirflowApi

    api = FakeAirflowApi()
    monkeypatch.setenv("AIRFLOW_CONN_AIRFLOW_API", api.connection_uri)
    yield api
    api.close()
