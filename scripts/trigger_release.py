#!/usr/bin/env python3
"""Trigger a production release in Airflow from CI, and optionally wait for its outcome.

Standard library only, so any CI runner with Python 3.9+ can run it as is.

    trigger_release.py --url https://airflow.example.com --tag v1.4.0 --commit-sha <40 hex> \\
        --author octocat [--wait]

Credentials come from AIRFLOW_USERNAME / AIRFLOW_PASSWORD (or --username/--password).
In GitHub Actions, --tag, --commit-sha and --author default to GITHUB_REF_NAME,
GITHUB_SHA and GITHUB_ACTOR.

Exit status:
  0  run created (with --wait: the release succeeded)
  1  with --wait: the release ended failed (rolled back or stopped)
  2  usage error (missing or malformed argument)
  3  authentication refused: bad credentials, or the user may not trigger the DAG
  4  Airflow unreachable (connection refused, DNS, TLS, timeout)
  5  the run's conf was refused (HTTP 400/422); the reason names the field
  6  with --wait: no outcome before --timeout
  7  any other API error (DAG missing or paused, server error, ...)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_AUTH, EXIT_UNREACHABLE, EXIT_REFUSED, EXIT_TIMEOUT, EXIT_API = range(8)


class ClientError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class Api:
    def __init__(self, url: str, timeout: float) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.token: str | None = None

    def call(self, method: str, path: str, body: object | None = None) -> tuple[int, object]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, _decode(response.read())
        except urllib.error.HTTPError as err:
            return err.code, _decode(err.read())
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise ClientError(f"cannot reach Airflow at {self.url}: {reason}", EXIT_UNREACHABLE) from None

    def login(self, username: str, password: str) -> None:
        status, body = self.call("POST", "/auth/token", {"username": username, "password": password})
        if status in (401, 403):
            raise ClientError(
                f"Airflow refused the credentials of user {username!r} (HTTP {status}: {_detail(body)})",
                EXIT_AUTH,
            )
        if status not in (200, 201) or not isinstance(body, dict) or "access_token" not in body:
            raise ClientError(f"POST /auth/token answered HTTP {status}: {_detail(body)}", EXIT_API)
        self.token = body["access_token"]


def _decode(raw: bytes) -> object:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode(errors="replace")


def _detail(body: object) -> str:
    detail = body.get("detail", body) if isinstance(body, dict) else body
    return detail if isinstance(detail, str) else json.dumps(detail)


def build_conf(args: argparse.Namespace) -> dict:
    version = args.tag.removeprefix("refs/tags/")
    conf: dict = {"version": version, "commit_sha": args.commit_sha, "author": args.author}
    emergency: dict = {}
    if args.force_deploy:
        emergency["force_deploy"] = True
    if args.skip_monitoring:
        emergency["skip_monitoring"] = True
    if args.ignore_alarm:
        emergency["ignore_alarms"] = args.ignore_alarm
    if args.reason:
        emergency["reason"] = args.reason
    if emergency:
        conf["emergency"] = emergency
    return conf


def ui_link(base: str, dag_id: str, run_id: str) -> str:
    return f"{base.rstrip('/')}/dags/{dag_id}/runs/{urllib.parse.quote(run_id, safe='')}"


def trigger(api: Api, dag_id: str, conf: dict, run_id: str | None) -> str:
    dag_path = f"/api/v2/dags/{urllib.parse.quote(dag_id, safe='')}"
    status, dag = api.call("GET", dag_path)
    if status == 403:
        raise ClientError(f"the user may not read DAG {dag_id} (HTTP 403: {_detail(dag)})", EXIT_AUTH)
    if status != 200:
        raise ClientError(f"DAG {dag_id} not available (HTTP {status}: {_detail(dag)})", EXIT_API)
    if isinstance(dag, dict) and dag.get("is_paused"):
        raise ClientError(f"DAG {dag_id} is paused: a run would wait forever; unpause it first", EXIT_API)
    body: dict = {"logical_date": None, "conf": conf}
    if run_id:
        body["dag_run_id"] = run_id
    status, run = api.call("POST", f"{dag_path}/dagRuns", body)
    if status in (200, 201) and isinstance(run, dict):
        return run["dag_run_id"]
    if status == 409 and run_id:
        print(f"run {run_id} already exists (a retried CI job): following it", flush=True)
        return run_id
    if status in (400, 422):
        raise ClientError(f"Airflow refused the release conf: {_detail(run)}", EXIT_REFUSED)
    if status == 403:
        raise ClientError(f"the user may not trigger DAG {dag_id} (HTTP 403: {_detail(run)})", EXIT_AUTH)
    raise ClientError(f"creating the run failed (HTTP {status}: {_detail(run)})", EXIT_API)


def wait(api: Api, dag_id: str, run_id: str, timeout: float, poll: float) -> str:
    path = f"/api/v2/dags/{urllib.parse.quote(dag_id, safe='')}/dagRuns/{urllib.parse.quote(run_id, safe='')}"
    deadline = time.monotonic() + timeout
    seen: dict[str, str] = {}
    while True:
        status, run = api.call("GET", path)
        if status == 401:
            raise ClientError(
                "the token expired while waiting (see [api_auth] jwt_expiration_time)", EXIT_AUTH
            )
        if status != 200 or not isinstance(run, dict):
            raise ClientError(f"reading the run failed (HTTP {status}: {_detail(run)})", EXIT_API)
        status, tis = api.call("GET", f"{path}/taskInstances?limit=1000")
        if status == 200 and isinstance(tis, dict):
            for ti in tis.get("task_instances", []):
                state = ti.get("state") or "none"
                if seen.get(ti["task_id"]) != state and state not in ("none", "scheduled", "queued"):
                    print(f"  {ti['task_id']}: {state}", flush=True)
                seen[ti["task_id"]] = state
        if run.get("state") in ("success", "failed"):
            return run["state"]
        if time.monotonic() > deadline:
            raise ClientError(f"no outcome after {timeout:.0f}s; the run is {run.get('state')}", EXIT_TIMEOUT)
        time.sleep(poll)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Exit status: see the module docstring (0 ok, 1 failed, 2 usage, "
        "3 auth, 4 unreachable, 5 conf refused, 6 timeout, 7 API).",
    )
    parser.add_argument("--url", default=env("AIRFLOW_URL"), help="Airflow API server base URL [AIRFLOW_URL]")
    parser.add_argument("--ui-url", default=env("AIRFLOW_UI_URL"), help="base URL for links (default: --url)")
    parser.add_argument("--username", default=env("AIRFLOW_USERNAME"), help="[AIRFLOW_USERNAME]")
    parser.add_argument("--password", default=env("AIRFLOW_PASSWORD"), help="[AIRFLOW_PASSWORD]")
    parser.add_argument("--dag-id", default="deploy_production")
    parser.add_argument("--tag", default=env("GITHUB_REF_NAME"), help="release tag vX.Y.Z [GITHUB_REF_NAME]")
    parser.add_argument("--commit-sha", default=env("GITHUB_SHA"), help="40-hex commit [GITHUB_SHA]")
    parser.add_argument("--author", default=env("GITHUB_ACTOR"), help="who cut the release [GITHUB_ACTOR]")
    parser.add_argument("--run-id", help="explicit run id; a retry with the same id follows the existing run")
    parser.add_argument("--force-deploy", action="store_true", help="skip pre-deployment validation")
    parser.add_argument("--skip-monitoring", action="store_true", help="skip post-deployment monitoring")
    parser.add_argument("--ignore-alarm", action="append", default=[], help="alarm allowed to be firing")
    parser.add_argument("--reason", help="required with any emergency flag")
    parser.add_argument("--wait", action="store_true", help="wait for the outcome; exit 1 if it failed")
    parser.add_argument("--timeout", type=float, default=4 * 3600, help="seconds to wait (default 4 h)")
    parser.add_argument("--poll-interval", type=float, default=15.0)
    parser.add_argument("--http-timeout", type=float, default=30.0)
    args = parser.parse_args(argv)
    missing = [
        name
        for name in ("url", "username", "password", "tag", "commit_sha", "author")
        if not getattr(args, name)
    ]
    if missing:
        parser.error("missing " + ", ".join("--" + m.replace("_", "-") for m in missing))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    api = Api(args.url, args.http_timeout)
    try:
        api.login(args.username, args.password)
        run_id = trigger(api, args.dag_id, build_conf(args), args.run_id)
        print(f"release run: {run_id}", flush=True)
        print(f"watch it at: {ui_link(args.ui_url or args.url, args.dag_id, run_id)}", flush=True)
        if not args.wait:
            return EXIT_OK
        outcome = wait(api, args.dag_id, run_id, args.timeout, args.poll_interval)
    except ClientError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.code
    print(f"release {run_id}: {outcome}", flush=True)
    return EXIT_OK if outcome == "success" else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
