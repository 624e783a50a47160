"""What a release told whom (the sandbox's recorders), and where a secret could have leaked to.

Used by the release tests in this tier so that the releases they already run also prove
the notices and the secrets rule, instead of running releases of their own.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from airflow_stack.client import AirflowClient, ApiError


class Recorded:
    """The sandbox's recorders from the moment this object is made (reseeding clears only some)."""

    SERVICES = ("slack", "smtp", "pagerduty")

    def __init__(self, sandbox) -> None:
        self.sandbox = sandbox
        self.start = {s: len(self._all(s)) for s in self.SERVICES}

    def _all(self, service: str) -> list[dict[str, Any]]:
        return self.sandbox.control("GET", f"/recorded/{service}")

    def since(self, service: str) -> list[dict[str, Any]]:
        entries = self._all(service)
        return entries[self.start.get(service, 0) :]

    def slack(self) -> list[str]:
        return [m["text"] for m in self.since("slack")]

    def component_statuses(self) -> list[str]:
        """The status page component's statuses as set, in order (the status page is rebuilt on reseed)."""
        statuses = []
        for entry in self._all("statuspage"):
            body = entry.get("json") or {}
            if entry["method"] == "PATCH" and "component" in body:
                statuses.append(body["component"]["status"])
            elif "incident" in body and body["incident"].get("components"):
                statuses.extend(body["incident"]["components"].values())
        return statuses


def assert_release_notices(recorded: Recorded, *, approvers: list[str], notes: str) -> None:
    """A successful release: started, approval asked twice (Slack + email), status page back, no page,
    the approvers named in the release notes."""
    assert f"approved by {', '.join(approvers)}" in notes, notes
    texts = recorded.slack()
    assert sum("Deployment started" in t for t in texts) == 1, texts
    assert sum("waits for your approval" in t for t in texts) == 2, texts
    assert not any("did not reach" in t for t in texts), texts
    mails = [m for m in recorded.since("smtp") if m["subject"].startswith("Approval needed")]
    assert len(mails) == 2, [m["subject"] for m in recorded.since("smtp")]
    statuses = recorded.component_statuses()
    assert statuses[0] == "under_maintenance" and statuses[-1] == "operational", statuses
    assert recorded.since("pagerduty") == []


def assert_rollback_notices(recorded: Recorded, version: str) -> None:
    """A rolled-back release: on-call paged once through PagerDuty, critical, keyed by the run."""
    pages = recorded.since("pagerduty")
    assert [p["event_action"] for p in pages] == ["trigger"], pages
    assert pages[0]["payload"]["severity"] == "critical" and version in pages[0]["payload"]["summary"]
    assert not any("did not reach" in t for t in recorded.slack()), "production was changed"


def secret_values(connections: dict[str, Any]) -> set[str]:
    """Every password, token, routing key and webhook URL of the sandbox's connections (each checked,
    whatever its length: the sandbox's AWS pair is distinctive), and the values of the Amplify
    variables the sandbox seeds as a team's secrets (the backup keeps only their hashes)."""
    from sandbox.seed import AMPLIFY_SECRET_VARIABLES

    found = set(AMPLIFY_SECRET_VARIABLES.values())
    for value in connections.values():
        conn = json.loads(value) if isinstance(value, str) else value
        if isinstance(conn.get("password"), str) and conn["password"]:
            found.add(conn["password"])
    return found


def run_artifacts(client: AirflowClient, run_id: str) -> dict[str, str]:
    """Every task log (each try) and every XCom of a run, by where it came from."""
    found = {}
    for ti in client.task_instances(run_id):
        task_id = ti["task_id"]
        for attempt in range(1, (ti.get("try_number") or 0) + 1):
            try:
                found[f"log {task_id} try {attempt}"] = client.task_log(run_id, task_id, attempt)
            except ApiError as err:  # a try that never started has no log
                if err.status != 404:
                    raise
        base = f"/dags/{client.dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}/xcomEntries"
        try:
            entries = client.request("GET", base)["xcom_entries"]
        except ApiError:
            continue
        for entry in entries:
            value = client.request("GET", f"{base}/{entry['key']}", params={"stringify": "false"})
            found[f"xcom {task_id} {entry['key']}"] = json.dumps(value.get("value"), default=str)
    return found


def record_objects(sandbox, config_path: str, version: str, run_id: str) -> dict[str, str]:
    """Every object of the run's deployment record in the sandbox's S3."""
    import boto3

    from deployment.config import load_config
    from deployment.ledger import newest_run_prefix
    from sandbox.seed import CREDENTIALS

    cfg = load_config(config_path)
    endpoints = json.loads((sandbox.state_dir / "endpoints.json").read_text())
    s3 = boto3.client("s3", endpoint_url=endpoints["aws"], region_name=cfg.region, **CREDENTIALS)
    prefix = newest_run_prefix(s3, cfg, version, run_id)
    if prefix is None:
        return {}
    objects = s3.list_objects_v2(Bucket=cfg.artifacts.bucket, Prefix=prefix).get("Contents", [])
    return {
        o["Key"]: s3.get_object(Bucket=cfg.artifacts.bucket, Key=o["Key"])["Body"].read().decode()
        for o in objects
    }


def assert_no_secret_leaked(secrets: set[str], places: dict[str, str]) -> None:
    assert secrets and places
    leaks = sorted(
        f"{where}: {secret[:4]}…" for where, text in places.items() for secret in secrets if secret in text
    )
    assert not leaks, f"secret values found in {leaks}"
