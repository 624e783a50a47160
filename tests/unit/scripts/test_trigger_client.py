"""scripts/trigger_release.py, run as CI runs it, against a small HTTP server speaking Airflow's API.

The server answers like Airflow 3.3 does for the calls the client makes; the
end-to-end tier runs the same script against the real API server.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "trigger_release.py"
SHA = "0123456789abcdef0123456789abcdef01234567"


class FakeAirflow:
    """What the handler serves: one user, one DAG, runs that finish after ``polls_to_finish`` reads."""

    def __init__(self) -> None:
        self.users = {"ci": "ci-pass"}
        self.paused = False
        self.outcome = "success"
        self.polls_to_finish = 2
        self.runs: dict[str, dict] = {}
        self.reads: dict[str, int] = {}
        self.requests: list[tuple[str, str, object]] = []


def _handler(state: FakeAirflow) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _send(self, status: int, body: object) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _body(self) -> object:
            length = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(length)) if length else None

        def _authorised(self) -> bool:
            if self.headers.get("Authorization") == "Bearer token-ci":
                return True
            self._send(401, {"detail": "Not authenticated"})
            return False

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self._body()
            state.requests.append(("POST", self.path, body))
            if self.path == "/auth/token":
                if state.users.get(body.get("username")) == body.get("password"):
                    return self._send(201, {"access_token": f"token-{body['username']}"})
                return self._send(401, {"detail": "Invalid credentials"})
            if self.path == "/api/v2/dags/deploy_production/dagRuns" and self._authorised():
                conf = body["conf"]
                if not re.match(r"^v\d+\.\d+\.\d+$", conf.get("version", "")):
                    return self._send(
                        400,
                        {
                            "detail": f"Invalid input for param version: "
                            f"{conf.get('version')!r} does not match"
                        },
                    )
                run_id = body.get("dag_run_id") or f"manual__{len(state.runs)}"
                if run_id in state.runs:
                    return self._send(409, {"detail": f"DAG run {run_id} already exists"})
                state.runs[run_id] = {"dag_run_id": run_id, "state": "queued", "conf": conf}
                return self._send(200, state.runs[run_id])

        def do_GET(self) -> None:  # noqa: N802
            state.requests.append(("GET", self.path, None))
            if not self._authorised():
                return
            if self.path == "/api/v2/dags/deploy_production":
                return self._send(200, {"dag_id": "deploy_production", "is_paused": state.paused})
            match = re.match(r"^/api/v2/dags/deploy_production/dagRuns/([^/?]+)(/taskInstances)?", self.path)
            if not match or match.group(1) not in state.runs:
                return self._send(404, {"detail": "not found"})
            run = state.runs[match.group(1)]
            if match.group(2):
                done = run["state"] != "running"
                return self._send(
                    200,
                    {
                        "task_instances": [
                            {"task_id": "record_release", "state": "success"},
                            {"task_id": "notify.slack", "state": "success" if done else None},
                        ],
                        "total_entries": 2,
                    },
                )
            state.reads[run["dag_run_id"]] = reads = state.reads.get(run["dag_run_id"], 0) + 1
            run["state"] = state.outcome if reads >= state.polls_to_finish else "running"
            return self._send(200, run)

    return Handler


@pytest.fixture
def airflow() -> Iterator[tuple[str, FakeAirflow]]:
    state = FakeAirflow()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", state
    finally:
        server.shutdown()
        server.server_close()


def run_client(url: str, *args: str, password: str = "ci-pass", env_extra: dict | None = None):
    env = {
        "PATH": "/usr/bin:/bin",
        "AIRFLOW_URL": url,
        "AIRFLOW_USERNAME": "ci",
        "AIRFLOW_PASSWORD": password,
        **(env_extra or {}),
    }
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_triggers_with_conf_from_the_github_environment_and_prints_the_link(airflow):
    url, state = airflow
    result = run_client(
        url, env_extra={"GITHUB_REF_NAME": "v1.4.0", "GITHUB_SHA": SHA, "GITHUB_ACTOR": "octocat"}
    )
    assert result.returncode == 0, result.stderr
    (run,) = state.runs.values()
    assert run["conf"] == {"version": "v1.4.0", "commit_sha": SHA, "author": "octocat"}
    assert f"{url}/dags/deploy_production/runs/{run['dag_run_id']}" in result.stdout


def test_emergency_flags_go_into_the_emergency_object(airflow):
    url, state = airflow
    result = run_client(
        url,
        "--tag",
        "refs/tags/v2.0.1",
        "--commit-sha",
        SHA,
        "--author",
        "alice",
        "--force-deploy",
        "--ignore-alarm",
        "HighLatency",
        "--reason",
        "hotfix for INC-42",
    )
    assert result.returncode == 0, result.stderr
    (run,) = state.runs.values()
    assert run["conf"]["version"] == "v2.0.1"
    assert run["conf"]["emergency"] == {
        "force_deploy": True,
        "ignore_alarms": ["HighLatency"],
        "reason": "hotfix for INC-42",
    }


@pytest.mark.parametrize(("outcome", "code"), [("success", 0), ("failed", 1)])
def test_wait_exits_with_the_outcome(airflow, outcome, code):
    url, state = airflow
    state.outcome = outcome
    result = run_client(
        url, "--tag", "v1.4.0", "--commit-sha", SHA, "--author", "bob", "--wait", "--poll-interval", "0.05"
    )
    assert result.returncode == code, result.stderr
    assert f": {outcome}" in result.stdout
    assert "notify.slack: success" in result.stdout


def test_bad_credentials_exit_3(airflow):
    url, state = airflow
    result = run_client(url, "--tag", "v1.4.0", "--commit-sha", SHA, "--author", "bob", password="wrong")
    assert result.returncode == 3
    assert "refused the credentials of user 'ci'" in result.stderr
    assert not state.runs


def test_unreachable_server_exits_4():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        result = run_client(
            f"http://127.0.0.1:{port}", "--tag", "v1.4.0", "--commit-sha", SHA, "--author", "bob"
        )
    assert result.returncode == 4
    assert f"cannot reach Airflow at http://127.0.0.1:{port}" in result.stderr


def test_refused_conf_exits_5_with_the_reason(airflow):
    url, state = airflow
    result = run_client(url, "--tag", "release-7", "--commit-sha", SHA, "--author", "bob")
    assert result.returncode == 5
    assert "refused the release conf: Invalid input for param version: 'release-7'" in result.stderr


def test_wait_timeout_exits_6(airflow):
    url, state = airflow
    state.polls_to_finish = 10**6
    result = run_client(
        url,
        "--tag",
        "v1.4.0",
        "--commit-sha",
        SHA,
        "--author",
        "bob",
        "--wait",
        "--timeout",
        "0.3",
        "--poll-interval",
        "0.05",
    )
    assert result.returncode == 6
    assert "no outcome after 0s; the run is running" in result.stderr


def test_paused_dag_exits_7_before_triggering(airflow):
    url, state = airflow
    state.paused = True
    result = run_client(url, "--tag", "v1.4.0", "--commit-sha", SHA, "--author", "bob")
    assert result.returncode == 7
    assert "is paused" in result.stderr
    assert not state.runs


def test_a_retried_job_with_the_same_run_id_follows_the_existing_run(airflow):
    url, state = airflow
    args = ("--tag", "v1.4.0", "--commit-sha", SHA, "--author", "bob", "--run-id", "release__v1.4.0__77.1")
    assert run_client(url, *args).returncode == 0
    again = run_client(url, *args)
    assert again.returncode == 0, again.stderr
    assert "already exists (a retried CI job): following it" in again.stdout
    assert list(state.runs) == ["release__v1.4.0__77.1"]


def test_missing_arguments_exit_2_naming_them(airflow):
    url, _ = airflow
    result = run_client(url, "--tag", "v1.4.0")
    assert result.returncode == 2
    assert "missing --commit-sha, --author" in result.stderr


def test_example_workflow_runs_the_client_on_version_tags_with_known_flags():
    import shlex

    import yaml

    workflow_file = SCRIPT.parents[1] / "examples" / "github-actions" / "deploy-production.yml"
    workflow = yaml.safe_load(workflow_file.read_text())
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert triggers == {"push": {"tags": ["v*"]}}
    (step,) = [s for s in workflow["jobs"]["release"]["steps"] if "trigger_release.py" in s.get("run", "")]
    assert {"AIRFLOW_URL", "AIRFLOW_USERNAME", "AIRFLOW_PASSWORD"} <= set(step["env"])
    words = shlex.split(step["run"])
    help_text = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True).stdout
    flags = [w for w in words if w.startswith("--")]
    assert "--wait" in flags
    for flag in flags:
        assert flag in help_text, f"the workflow passes {flag}, which trigger_release.py does not know"
