"""The fault matrix's helpers: production read back from the sandbox, releases driven over REST.

``World`` reads the end state a row asserts from the sandbox itself: CloudFormation, the
traffic split (through the router the configuration names: the front door's KeyValueStore,
read as the pipeline's router reads it, or the Route 53 records), DynamoDB and the deployment
record in S3 through boto3 against the sandbox's AWS endpoint, the Amplify branches through
boto3 and the apps' ``/health``, and what Slack, SMTP and the status page received through
the control API. ``Release`` is one ``deploy_production`` run driven as CI and the approvers
drive it (REST only).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import requests
from _e2e import approve, release_conf
from botocore.exceptions import ClientError

from airflow_stack.client import AirflowClient
from airflow_stack.env import CI_USER, RELEASE_MANAGER
from airflow_stack.sandbox_process import SandboxProcess
from deployment.config import DeploymentConfig, load_config
from sandbox.seed import front_door_router, route53_weights

NEW, OLD = "v1.1.0", "v1.0.0"
CREDENTIALS = {"aws_access_key_id": "sandbox", "aws_secret_access_key": "sandbox"}
RELEASE_TIMEOUT = 420
ROLLBACK_TASKS = (
    "plan",
    "restore_traffic",
    "restore_stack",
    "restore_frontend",
    "verify",
    "record_rollback",
    "page_oncall_slack",
    "incident_email",
    "statuspage_incident",
)


def normalize_template(body: Any) -> Any:
    """A template as data (boto3 hands JSON bodies back parsed, other bodies as text)."""
    if isinstance(body, dict):
        return body
    try:
        return json.loads(body)
    except ValueError:
        return str(body).strip()


class World:
    """Production as the sandbox holds it."""

    def __init__(self, sandbox: SandboxProcess, config_path: Path) -> None:
        self.sandbox = sandbox
        self.cfg: DeploymentConfig = load_config(str(config_path))
        self.endpoints: dict[str, str] = json.loads((sandbox.state_dir / "endpoints.json").read_text())
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = boto3.client(
                service, endpoint_url=self.endpoints["aws"], region_name=self.cfg.region, **CREDENTIALS
            )
        return self._clients[service]

    # ------------------------------------------------------------------ AWS
    def stack(self) -> dict[str, Any]:
        name = self.cfg.stack.name
        stack = self.client("cloudformation").describe_stacks(StackName=name)["Stacks"][0]
        body = self.client("cloudformation").get_template(StackName=name)["TemplateBody"]
        return {
            "status": stack["StackStatus"],
            "parameters": {p["ParameterKey"]: p.get("ParameterValue") for p in stack.get("Parameters", [])},
            "template": normalize_template(body),
        }

    def weights(self, router: str | None = None) -> dict[str, int]:
        """The split as ``router`` (default: the one the stack's configuration names) serves it:
        the front door's KeyValueStore read by the pipeline's own router (boto3's client), or
        the Route 53 weighted records."""
        if (router or self.cfg.traffic.router) == "keyvaluestore":
            return self.front_door().weights()
        return route53_weights(self.cfg, self.client("route53"))

    def front_door(self) -> Any:
        """The ``keyvaluestore`` router on the sandbox's store (``deployment.traffic.front_door``)."""
        if "front_door" not in self._clients:
            self._clients["front_door"] = front_door_router(
                self.cfg, self.endpoints["aws"], self.cfg.traffic.front_door.key_value_store_arn
            )
        return self._clients["front_door"]

    def front_door_probe(self) -> dict[str, Any]:
        """What the front door's function reads from its store now (``GET /__frontdoor``)."""
        url = self.endpoints["frontdoor"] + self.cfg.traffic.front_door.probe_path
        return requests.get(url, timeout=10).json()

    def branch_env(self, colour: str) -> dict[str, str]:
        branch = self.client("amplify").get_branch(
            appId=self.cfg.amplify.app_id, branchName=self.cfg.amplify.branches[colour]
        )["branch"]
        return dict(branch.get("environmentVariables") or {})

    def served(self, colour: str) -> str | None:
        """The version the colour's app serves (its branch's last successful Amplify job)."""
        response = requests.get(f"{self.endpoints[f'app_{colour}']}/health", timeout=10)
        return response.json()["version"] if response.ok else None

    def snapshot(self) -> dict[str, Any]:
        return {
            "stack": self.stack(),
            "weights": self.weights(),
            "env": {c: self.branch_env(c) for c in ("blue", "green")},
            "served": {c: self.served(c) for c in ("blue", "green")},
        }

    def has_item(self, table: str, key: dict[str, str]) -> bool:
        item = self.client("dynamodb").get_item(TableName=table, Key={k: {"S": v} for k, v in key.items()})
        return "Item" in item

    def write_items(self) -> list[tuple[str, dict[str, str]]]:
        """One item written by a user of the live app (content table) and one through the API (users)."""
        content, users = self.cfg.dynamodb.tables
        response = requests.post(
            f"{self.endpoints['app_blue']}/api/content",
            json={"title": "written during the release", "body": "must survive"},
            timeout=10,
        )
        assert response.status_code == 201, response.text
        user_id = f"user-{uuid.uuid4()}"
        self.client("dynamodb").put_item(
            TableName=users, Item={"user_id": {"S": user_id}, "name": {"S": "signed up mid-release"}}
        )
        return [(content, {"id": response.json()["id"]}), (users, {"user_id": user_id})]

    # --------------------------------------------------------- the record
    def record(self, version: str, run_id: str, section: str) -> Any:
        """A section of a run's deployment record, or None."""
        from deployment.ledger import newest_run_prefix

        prefix = newest_run_prefix(self.client("s3"), self.cfg, version, run_id)
        if prefix is None:
            return None
        key = f"{prefix}{section}.json"
        try:
            body = self.client("s3").get_object(Bucket=self.cfg.artifacts.bucket, Key=key)["Body"].read()
        except ClientError as err:
            if err.response["Error"]["Code"] in ("NoSuchKey", "404"):
                return None
            raise
        return json.loads(body)

    # ------------------------------------------------------- control API
    def recorded(self, service: str) -> list[dict[str, Any]]:
        return self.sandbox.control("GET", f"/recorded/{service}")

    def aws_requests(self, since: float, service: str) -> list[dict[str, Any]]:
        return self.sandbox.control("GET", f"/requests?since={since}&service={service}")

    def weight_changes(self, since: float, router: str | None = None) -> list[dict[str, Any]]:
        """Writes of the split the sandbox served since ``since``: the front door's KeyValueStore
        ``UpdateKeys``/``PutKey`` (``keyvaluestore``) or Route 53's ``ChangeResourceRecordSets``."""
        if (router or self.cfg.traffic.router) == "keyvaluestore":
            return [
                r
                for r in self.aws_requests(since, "cloudfront-keyvaluestore")
                if r["status"] < 400 and r["action"].startswith(("POST /key-value-stores/", "PUT "))
            ]
        return [
            r
            for r in self.aws_requests(since, "route53")
            if r["action"].startswith("POST ") and r["action"].rstrip("/").endswith("/rrset")
        ]

    def urgent_notices(self) -> dict[str, list[dict[str, Any]]]:
        """The rollback's notices received: Slack with the on-call mentions, incident mail, incidents."""
        mentions = [f"<@{user}>" for user in self.cfg.notifications.oncall_users]
        return {
            "slack": [m for m in self.recorded("slack") if any(x in (m.get("text") or "") for x in mentions)],
            "email": [m for m in self.recorded("smtp") if (m.get("subject") or "").startswith("[INCIDENT]")],
            # Realtime incidents only: a release that passes its gate also opens a scheduled
            # maintenance, which Statuspage's API creates on the same path (with scheduled_for).
            "statuspage": [
                r
                for r in self.recorded("statuspage")
                if r["method"] == "POST"
                and r["path"].endswith("/incidents")
                and not ((r.get("json") or {}).get("incident") or {}).get("scheduled_for")
            ],
        }

    def set_alarm(self, suffix: str, state: str, reason: str) -> None:
        self.sandbox.control(
            "POST", f"/alarms/{self.cfg.alarms.prefix}{suffix}", {"state": state, "reason": reason}
        )


@dataclass
class Release:
    """One deploy_production run of ``version`` and what the test saw of it."""

    users: dict[str, AirflowClient]
    world: World
    run_id: str
    version: str = NEW
    started: float = field(default_factory=time.time)

    @classmethod
    def trigger(cls, users: dict[str, AirflowClient], world: World, name: str, **conf: Any) -> Release:
        run_id = f"matrix__{name}__{int(time.time() * 1000)}"
        started = time.time()
        users[CI_USER].trigger(release_conf(**conf), run_id=run_id)
        return cls(users, world, run_id, conf.get("version", NEW), started)

    @property
    def ci(self) -> AirflowClient:
        return self.users[CI_USER]

    @property
    def manager(self) -> AirflowClient:
        """A release manager: the role that may clear and rerun (CI's account may not)."""
        return self.users[RELEASE_MANAGER]

    def approve(self) -> list[str]:
        return approve(self.users, self.run_id)

    def wait(self, state: str, timeout: float = RELEASE_TIMEOUT) -> dict:
        return self.ci.wait_for_run(self.run_id, {state}, timeout=timeout)

    def wait_task(
        self, task_id: str, states: Iterable[str], timeout: float = RELEASE_TIMEOUT, poll: float = 0.3
    ) -> dict:
        return self.ci.wait_for_task(self.run_id, task_id, set(states), timeout=timeout, poll=poll)

    def states(self) -> dict[str, str | None]:
        return self.ci.task_states(self.run_id)

    def task(self, task_id: str) -> dict:
        return self.ci.task_instance(self.run_id, task_id)

    def record(self, section: str) -> Any:
        return self.world.record(self.version, self.run_id, section)

    def section(self, name: str) -> Any:
        """A section the run must have written; fails with the run's diagnostics when it did not."""
        found = self.record(name)
        assert found is not None, f"no {name} section in the record\n{self.ci.diagnose(self.run_id)}"
        return found

    def failed(self) -> set[str]:
        return {t for t, s in self.states().items() if s == "failed"}


# --------------------------------------------------------------------------- end states
def assert_nothing_rolled_back(release: Release, before: dict[str, Any]) -> None:
    """A failure before production changed: nothing undone, nobody paged, production as seeded."""
    states = release.states()
    rollback = {t: s for t, s in states.items() if t.startswith("rollback.")}
    assert set(rollback.values()) == {"skipped"}, rollback
    section = release.section("rollback")
    assert section["status"] == "not_needed" and section["needed"] is False, section
    outcome = release.section("outcome")
    assert outcome["status"] == "failed" and outcome["rollback_status"] == "not_needed", outcome
    assert release.world.urgent_notices() == {"slack": [], "email": [], "statuspage": []}
    assert release.world.weight_changes(release.started) == [], "the traffic router must not be touched"
    assert release.world.snapshot() == before


def assert_rolled_back(
    release: Release,
    before: dict[str, Any],
    items: list[tuple[str, dict[str, str]]],
    *,
    traffic_moved: bool,
    undone: set[str],
) -> dict[str, Any]:
    """Production back on the previous version, verified, on-call paged, data and backups kept."""
    world = release.world
    states = release.states()
    assert {t: states[f"rollback.{t}"] for t in ROLLBACK_TASKS} == dict.fromkeys(ROLLBACK_TASKS, "success")
    assert states["record_outcome"] == "failed"
    section = release.section("rollback")
    assert section["status"] == "rolled_back" and section["verified"] is True, section
    assert set(section["undone"]) == undone and section["not_undone"] == [], section
    outcome = release.section("outcome")
    assert outcome["status"] == "rolled_back" and outcome["previous_version"] == OLD, outcome

    now = world.snapshot()
    assert now["weights"] == {"blue": 100, "green": 0}
    if world.cfg.traffic.router == "keyvaluestore":  # and the front door's function serves that
        probe = world.front_door_probe()
        assert (probe["stable"], probe["weight"]) in (("blue", 0), ("green", 100)), probe
    assert now["stack"]["parameters"] == before["stack"]["parameters"]
    assert now["stack"]["parameters"][world.cfg.stack.version_parameter] == OLD
    assert now["stack"]["template"] == before["stack"]["template"], "the template must be the backed-up one"
    assert now["stack"]["status"] in ("UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"), now["stack"]
    assert now["served"]["blue"] == OLD
    assert now["env"] == before["env"], "the idle branch's variables must be restored"

    changes = world.weight_changes(release.started)
    if traffic_moved:
        assert changes, "the traffic step changed the weights and the rollback set them back"
        assert section["steps"]["traffic"]["status"] == "done"
    else:
        assert changes == [], f"the traffic router must not be touched before traffic moved: {changes}"
        assert section["steps"]["traffic"]["status"] == "not_needed"

    if "stack" in undone:  # the build the restored stack runs: named, proven, and read back from Lambda
        build = section["steps"]["verify"]["checks"]["build"]
        assert build["ok"] and build["objects"] and build["functions"], build
        assert all(f["code_sha256"] == f["expected_code_sha256"] for f in build["functions"]), build

    notices = world.urgent_notices()
    assert all(len(found) >= 1 for found in notices.values()), notices
    assert_data_kept(release, items, section)
    return section


def assert_data_kept(
    release: Release, items: list[tuple[str, dict[str, str]]], rollback: dict[str, Any] | None = None
) -> None:
    """Items written during the release are there; every table's backup is in the record and exists."""
    world = release.world
    for table, key in items:
        assert world.has_item(table, key), f"{key} written to {table} during the release was lost"
    backup = release.section("backup")
    arns = {t["table"]: t["backup_arn"] for t in backup["dynamodb"]}
    assert set(arns) == set(world.cfg.dynamodb.tables), backup["dynamodb"]
    for arn in arns.values():
        described = world.client("dynamodb").describe_backup(BackupArn=arn)["BackupDescription"]
        assert described["BackupDetails"]["BackupStatus"] == "AVAILABLE"
    if rollback is not None:
        assert {b["backup_arn"] for b in rollback["dynamodb_backups"]} == set(arns.values())


# smoke_tests.record_results runs ALL_DONE: when the checks never ran (upstream_failed) it fails too,
# recording every check as "did not report".
NO_SMOKE_RESULTS = ("smoke_tests.record_results",)


def failed_with(task_id: str) -> set[str]:
    """The failed tasks of a run whose ``task_id`` failed before the smoke tests."""
    return {task_id, *NO_SMOKE_RESULTS, "record_outcome"}
