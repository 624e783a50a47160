"""What production runs now, and when a release's first commit was made: read from AWS and GitHub.

Both through the DAG's own connections and helpers (``deployment.cloudformation``,
``deployment.route53``, the Amplify hook, the GitHub provider's hook). A system that
does not answer is reported as such: the view still shows the records.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig
    from deployments_view.records import Record

log = logging.getLogger(__name__)
GITHUB_RETRY_SECONDS = 600  # after GitHub failed, lead times use the trigger time for this long


def live_now(config: DeploymentConfig) -> dict[str, Any]:
    """The stack's version and status, the Route 53 weights, and each colour's branch version."""
    from deployment import amplify, cloudformation, route53

    found: dict[str, Any] = {"stack": None, "weights": None, "colours": {}, "errors": []}
    try:
        stack = cloudformation.describe_stack(config)
        if stack is not None:
            params = {p["ParameterKey"]: p.get("ParameterValue") for p in stack.get("Parameters", [])}
            found["stack"] = {
                "name": config.stack.name,
                "status": stack.get("StackStatus"),
                "version": params.get(config.stack.version_parameter),
                "stack_id": stack.get("StackId"),
            }
    except Exception as err:  # an unreachable AWS endpoint must not take the page down
        found["errors"].append(f"CloudFormation: {err}")
    try:
        found["weights"] = dict(route53.weights(config))
    except Exception as err:
        found["errors"].append(f"Route 53: {err}")
    try:
        client = amplify.client(config)
        for colour, branch in config.amplify.branches.items():
            described = client.get_branch(appId=config.amplify.app_id, branchName=branch)["branch"]
            env = described.get("environmentVariables") or {}
            found["colours"][colour] = {
                "branch": branch,
                "version": env.get(config.amplify.version_variable),
                "weight": (found["weights"] or {}).get(colour),
            }
    except Exception as err:
        found["errors"].append(f"Amplify: {err}")
    weights = found["weights"] or {}
    serving = [colour for colour, weight in weights.items() if weight]
    found["live_colour"] = serving[0] if len(serving) == 1 else None
    found["in_flight"] = len(serving) > 1
    return found


class FirstCommits:
    """The first commit time of each release, from its record or GitHub's compare (cached)."""

    def __init__(self, config: DeploymentConfig) -> None:
        self.config = config
        self._known: dict[tuple[str, str], datetime | None] = {}
        self._github_failed_at = 0.0
        self._lock = threading.Lock()

    def __call__(self, record: Record) -> datetime | None:
        from deployments_view.summary import parse_time

        notes = record.section("release_notes")
        recorded = parse_time(notes.get("first_commit_at"))
        if recorded is not None:
            return recorded
        conf = record.section("conf")
        previous = (
            notes.get("previous_version")
            or record.section("outcome").get("previous_version")
            or record.section("backup").get("previous_version")
        )
        head = conf.get("commit_sha")
        if not previous or not head:
            return None
        key = (previous, head)
        with self._lock:
            if key in self._known:
                return self._known[key]
            if time.monotonic() - self._github_failed_at < GITHUB_RETRY_SECONDS:
                return None
            try:
                found = self._compare(previous, head)
            except Exception as err:  # no GitHub connection here, or GitHub down: fall back, say so once
                log.warning("first commit of %s...%s from GitHub: %s", previous, head, err)
                self._github_failed_at = time.monotonic()
                return None
            self._known[key] = found
            return found

    def _compare(self, base: str, head: str) -> datetime | None:
        from airflow.providers.github.hooks.github import GithubHook

        repo = (
            GithubHook(github_conn_id=self.config.connections.github)
            .get_conn()
            .get_repo(self.config.github.repository)
        )
        dates = [c.commit.author.date for c in repo.compare(base, head).commits if c.commit.author]
        dates = [d if d.tzinfo else d.replace(tzinfo=UTC) for d in dates]
        return min(dates) if dates else None
