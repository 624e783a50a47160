"""An Amplify Hosting API emulator speaking Amplify's REST-JSON protocol.

boto3's unmodified ``amplify`` client works against it through ``endpoint_url``.
Operations: GetApp, ListApps, GetBranch, ListBranches, UpdateBranch, StartJob
(RELEASE, RETRY), GetJob, ListJobs, StopJob, TagResource, ListTagsForResource,
UntagResource. Errors have Amplify's shape: the ``x-amzn-ErrorType`` header and a
JSON ``{"message": ...}`` body (``NotFoundException`` 404, ``BadRequestException`` 400,
``ResourceNotFoundException`` 404 for tags).

There is no CreateApp/CreateBranch: real Amplify generates app ids, while the
sandbox needs the configured one, so apps and branches are added with
:meth:`AmplifyEmulator.add_app` and :meth:`AmplifyEmulator.add_branch`.

A job is PENDING for the first quarter of ``job_seconds``, then RUNNING, then
SUCCEED, or FAILED when an ``amplify_job_failure`` fault matched its branch or
version when it started. A RELEASE job builds a commit of the connected repository
(``repository``, the GitHub emulator in the sandbox): StartJob's ``commitId``, or the
head of the branch when none is given, as Amplify does; its version follows from that
commit (``GitHubEmulator.version_at``), so a job without ``commitId`` serves whatever
the head is. Without a repository (unit tests) the version is the branch's
``APP_VERSION`` (the ``version_variable``) at start. The job summary's ``commitMessage``
is ``APP_VERSION=<version>`` unless the caller gave one. :meth:`served_version`
gives the version a branch serves: that of its last SUCCEED job.
"""

from __future__ import annotations

import contextlib
import copy
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

from sandbox.faults import Faults

PENDING_SHARE = 0.25
MAX_RESULTS = 100
EDITABLE_BRANCH_FIELDS = {
    "description",
    "framework",
    "stage",
    "enableNotification",
    "enableAutoBuild",
    "enableBasicAuth",
    "enablePerformanceMode",
    "displayName",
    "ttl",
}


class AmplifyError(Exception):
    def __init__(self, error_type: str, status: int, message: str) -> None:
        super().__init__(message)
        self.error_type, self.status, self.message = error_type, status, message


def not_found(message: str) -> AmplifyError:
    return AmplifyError("NotFoundException", 404, message)


def bad_request(message: str) -> AmplifyError:
    return AmplifyError("BadRequestException", 400, message)


@dataclass
class Job:
    job_id: str
    arn: str
    job_type: str
    version: str | None
    start: float
    duration: float
    commit_id: str
    commit_message: str
    commit_time: float
    failure: str | None  # the fault's reason when the job is to fail
    stopped_at: float | None = None

    def status(self, now: float) -> str:
        if self.stopped_at is not None:
            return "CANCELLED"
        if now < self.start + self.duration * PENDING_SHARE:
            return "PENDING"
        if now < self.start + self.duration:
            return "RUNNING"
        return "FAILED" if self.failure else "SUCCEED"

    def end_time(self, now: float) -> float | None:
        if self.stopped_at is not None:
            return self.stopped_at
        return self.start + self.duration if now >= self.start + self.duration else None

    def summary(self, now: float) -> dict[str, Any]:
        summary = {
            "jobArn": self.arn,
            "jobId": self.job_id,
            "commitId": self.commit_id,
            "commitMessage": self.commit_message,
            "commitTime": self.commit_time,
            "startTime": self.start,
            "status": self.status(now),
            "jobType": self.job_type,
        }
        if (end := self.end_time(now)) is not None:
            summary["endTime"] = end
        return summary

    def steps(self, now: float) -> list[dict[str, Any]]:
        status, end = self.status(now), self.end_time(now)
        if status == "PENDING":
            return []
        step_end = end if end is not None else now
        build_end = self.start + self.duration * 0.6
        build = {"stepName": "BUILD", "startTime": self.start, "status": "RUNNING", "endTime": step_end}
        if status == "FAILED":
            build.update(status="FAILED", statusReason=self.failure)
            return [build]
        if step_end < build_end:
            build["status"] = "CANCELLED" if status == "CANCELLED" else "RUNNING"
            return [build]
        build.update(status="SUCCEED", endTime=build_end)
        deploy_status = {"RUNNING": "RUNNING", "CANCELLED": "CANCELLED"}.get(status, "SUCCEED")
        deploy = {"stepName": "DEPLOY", "startTime": build_end, "status": deploy_status, "endTime": step_end}
        return [build, deploy]


@dataclass
class Branch:
    name: str
    arn: str
    created: float
    fields: dict[str, Any]
    environment: dict[str, str]
    tags: dict[str, str] = field(default_factory=dict)
    jobs: list[Job] = field(default_factory=list)


@dataclass
class App:
    app_id: str
    arn: str
    name: str
    created: float
    repository: str
    environment: dict[str, str]
    tags: dict[str, str] = field(default_factory=dict)
    branches: dict[str, Branch] = field(default_factory=dict)

    @property
    def default_domain(self) -> str:
        return f"{self.app_id}.amplifyapp.com"


class AmplifyEmulator:
    """The Amplify state plus a WSGI app serving its API."""

    def __init__(
        self,
        faults: Faults,
        *,
        region: str,
        account_id: str = "123456789012",
        job_seconds: float = 2.0,
        version_variable: str = "APP_VERSION",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.faults = faults
        self.region, self.account_id = region, account_id
        self.job_seconds = job_seconds
        self.version_variable = version_variable
        self.clock = clock
        self._lock = threading.RLock()
        self._apps: dict[str, App] = {}
        # ``commitId or None -> (commit, version)``: the connected repository (the sandbox sets
        # the GitHub emulator's ``version_at``); None builds the branch's version variable.
        self.repository: Callable[[str | None], tuple[str, str]] | None = None

    # --- state, for seeding and for the other emulators ------------------------------

    def add_app(self, app_id: str, name: str, *, repository: str = "", environment=None) -> None:
        arn = f"arn:aws:amplify:{self.region}:{self.account_id}:apps/{app_id}"
        with self._lock:
            self._apps[app_id] = App(app_id, arn, name, self.clock(), repository, dict(environment or {}))

    def add_branch(self, app_id: str, branch: str, *, stage: str = "PRODUCTION", environment=None) -> None:
        with self._lock:
            app = self._app(app_id)
            arn = f"{app.arn}/branches/{branch}"
            fields = {"stage": stage, "description": "", "displayName": branch.replace("/", "-")}
            app.branches[branch] = Branch(branch, arn, self.clock(), fields, dict(environment or {}))

    def reset(self) -> None:
        with self._lock:
            self._apps.clear()

    @contextlib.contextmanager
    def immediate(self) -> Iterator[None]:
        """Jobs started meanwhile are done at once: the seed's job builds what production serves
        before any test, and is not a pipeline's job to wait for."""
        with self._lock:
            slow, self.job_seconds = self.job_seconds, 0.0
        try:
            yield
        finally:
            with self._lock:
                self.job_seconds = slow

    def branch_domain(self, app_id: str, branch: str) -> str:
        """The default domain Amplify gives a branch: ``<branch>.<appId>.amplifyapp.com``."""
        with self._lock:
            return f"{branch.replace('/', '-')}.{self._app(app_id).default_domain}"

    def served_version(self, app_id: str, branch: str) -> str | None:
        """The version ``branch`` serves: that of its last SUCCEED job (None before any)."""
        now = self.clock()
        with self._lock:
            jobs = self._branch(app_id, branch).jobs
            done = [j for j in jobs if j.status(now) == "SUCCEED"]
            return max(done, key=lambda j: j.start + j.duration).version if done else None

    # --- the API ---------------------------------------------------------------------

    def get_app(self, app_id: str) -> dict[str, Any]:
        with self._lock:
            return {"app": self._app_json(self._app(app_id))}

    def list_apps(self, query: dict[str, str]) -> dict[str, Any]:
        with self._lock:
            apps = [self._app_json(a) for a in self._apps.values()]
        page, token = _paginate(apps, query)
        return {"apps": page, **token}

    def get_branch(self, app_id: str, branch: str) -> dict[str, Any]:
        with self._lock:
            return {"branch": self._branch_json(self._branch(app_id, branch))}

    def list_branches(self, app_id: str, query: dict[str, str]) -> dict[str, Any]:
        with self._lock:
            branches = [self._branch_json(b) for b in self._app(app_id).branches.values()]
        page, token = _paginate(branches, query)
        return {"branches": page, **token}

    def update_branch(self, app_id: str, branch_name: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            branch = self._branch(app_id, branch_name)
            if "environmentVariables" in body:
                env = body["environmentVariables"]
                if not isinstance(env, dict) or not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in env.items()
                ):
                    raise bad_request("environmentVariables must map strings to strings")
                branch.environment = dict(env)
            branch.fields.update({k: v for k, v in body.items() if k in EDITABLE_BRANCH_FIELDS})
            branch.fields["updated"] = self.clock()
            return {"branch": self._branch_json(branch)}

    def start_job(self, app_id: str, branch_name: str, body: dict[str, Any]) -> dict[str, Any]:
        job_type = body.get("jobType")
        if job_type not in ("RELEASE", "RETRY"):
            raise bad_request(f"jobType must be RELEASE or RETRY in the sandbox, got {job_type!r}")
        with self._lock:
            branch = self._branch(app_id, branch_name)
            if job_type == "RETRY":
                retried = self._job(branch, body.get("jobId"))
                if retried.status(self.clock()) != "FAILED":
                    raise bad_request(f"job {retried.job_id} did not fail; only failed jobs can be retried")
            if job_type == "RETRY":
                commit_id, version = retried.commit_id, retried.version
            else:
                commit_id, version = self._build_source(branch, body.get("commitId"))
            fault = self.faults.find("amplify_job_failure", branch=branch_name, version=version)
            now = self.clock()
            job_id = str(len(branch.jobs) + 1)
            job = Job(
                job_id=job_id,
                arn=f"{branch.arn}/jobs/{job_id.zfill(10)}",
                job_type=job_type,
                version=version,
                start=now,
                duration=self.job_seconds,
                commit_id=commit_id,
                commit_message=body.get("commitMessage") or f"{self.version_variable}={version}",
                commit_time=float(body.get("commitTime") or now),
                failure=(fault.get("reason") or "Build failed (injected fault)") if fault else None,
            )
            branch.jobs.append(job)
            return {"jobSummary": job.summary(now)}

    def get_job(self, app_id: str, branch_name: str, job_id: str) -> dict[str, Any]:
        now = self.clock()
        with self._lock:
            job = self._job(self._branch(app_id, branch_name), job_id)
            return {"job": {"summary": job.summary(now), "steps": job.steps(now)}}

    def list_jobs(self, app_id: str, branch_name: str, query: dict[str, str]) -> dict[str, Any]:
        now = self.clock()
        with self._lock:
            jobs = [j.summary(now) for j in reversed(self._branch(app_id, branch_name).jobs)]
        page, token = _paginate(jobs, query)
        return {"jobSummaries": page, **token}

    def stop_job(self, app_id: str, branch_name: str, job_id: str) -> dict[str, Any]:
        now = self.clock()
        with self._lock:
            job = self._job(self._branch(app_id, branch_name), job_id)
            if job.status(now) in ("PENDING", "RUNNING"):
                job.stopped_at = now
            return {"jobSummary": job.summary(now)}

    def tag_resource(self, arn: str, body: dict[str, Any]) -> dict[str, Any]:
        tags = body.get("tags")
        if not isinstance(tags, dict) or not tags:
            raise bad_request("tags must be a non-empty map of strings")
        with self._lock:
            self._tagged(arn).update({str(k): str(v) for k, v in tags.items()})
        return {}

    def list_tags(self, arn: str) -> dict[str, Any]:
        with self._lock:
            return {"tags": dict(self._tagged(arn))}

    def untag_resource(self, arn: str, keys: list[str]) -> dict[str, Any]:
        if not keys:
            raise bad_request("tagKeys must name at least one tag")
        with self._lock:
            tags = self._tagged(arn)
            for key in keys:
                tags.pop(key, None)
        return {}

    # --- lookups and JSON ------------------------------------------------------------

    def _build_source(self, branch: Branch, commit_id: Any) -> tuple[str, str | None]:
        """``(commit, version)`` a RELEASE job builds: ``commitId``, else the head of the branch."""
        if commit_id is not None and (not isinstance(commit_id, str) or not commit_id):
            raise bad_request("commitId must be a non-empty string")
        if self.repository is None:
            return commit_id or "HEAD", branch.environment.get(self.version_variable)
        try:
            return self.repository(commit_id)
        except Exception:
            raise bad_request(f"commit {commit_id} is not in the app's repository") from None

    def _app(self, app_id: str) -> App:
        try:
            return self._apps[app_id]
        except KeyError:
            raise not_found(f"App {app_id} not found.") from None

    def _branch(self, app_id: str, branch: str) -> Branch:
        try:
            return self._app(app_id).branches[branch]
        except KeyError:
            raise not_found(f"Branch {branch} not found for app {app_id}.") from None

    def _job(self, branch: Branch, job_id: Any) -> Job:
        if not isinstance(job_id, str) or not job_id:
            raise bad_request("jobId is required")
        for job in branch.jobs:
            if job.job_id == job_id:
                return job
        raise not_found(f"Job {job_id} not found for branch {branch.name}.")

    def _tagged(self, arn: str) -> dict[str, str]:
        prefix = f"arn:aws:amplify:{self.region}:{self.account_id}:apps/"
        if not arn.startswith("arn:aws:amplify:"):
            raise bad_request(f"{arn} is not an Amplify resource ARN")
        for app in self._apps.values():
            if arn == app.arn:
                return app.tags
            for branch in app.branches.values():
                if arn == branch.arn:
                    return branch.tags
        raise AmplifyError(
            "ResourceNotFoundException", 404, f"No resource {arn} (resources under {prefix}...)"
        )

    def _app_json(self, app: App) -> dict[str, Any]:
        return {
            "appId": app.app_id,
            "appArn": app.arn,
            "name": app.name,
            "tags": dict(app.tags),
            "description": "",
            "repository": app.repository,
            "platform": "WEB",
            "createTime": app.created,
            "updateTime": app.created,
            "environmentVariables": dict(app.environment),
            "defaultDomain": app.default_domain,
            "enableBranchAutoBuild": False,
            "enableBasicAuth": False,
        }

    def _branch_json(self, branch: Branch) -> dict[str, Any]:
        fields = copy.deepcopy(branch.fields)
        updated = fields.pop("updated", branch.created)
        return {
            "branchArn": branch.arn,
            "branchName": branch.name,
            "tags": dict(branch.tags),
            "enableNotification": False,
            "enableAutoBuild": False,
            "enableBasicAuth": False,
            "framework": "Next.js - SSR",
            "ttl": "5",
            "enablePullRequestPreview": False,
            **fields,
            "createTime": branch.created,
            "updateTime": updated,
            "environmentVariables": dict(branch.environment),
            "customDomains": [],
            "activeJobId": branch.jobs[-1].job_id if branch.jobs else "",
            "totalNumberOfJobs": str(len(branch.jobs)),
        }

    # --- WSGI ------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> list[bytes]:
        try:
            operation, result = self._dispatch(environ)
            status, payload, headers = 200, result, []
        except AmplifyError as err:
            operation = environ.get("sandbox.action") or "Unknown"
            status, payload = err.status, {"message": err.message}
            headers = [("x-amzn-ErrorType", err.error_type)]
        environ["sandbox.action"] = operation
        body = json.dumps(payload).encode()
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}[status]
        start_response(
            f"{status} {reason}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *headers],
        )
        return [body]

    def _dispatch(self, environ: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        method = environ["REQUEST_METHOD"]
        raw_path = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", "")
        path, _, raw_query = raw_path.partition("?")
        query = {k: v[-1] for k, v in parse_qs(raw_query or environ.get("QUERY_STRING", "")).items()}
        parts = [unquote(p) for p in path.strip("/").split("/")]
        body = _json_body(environ) if method in ("POST", "PUT") else {}

        if parts[0] == "tags" and len(parts) == 2:
            arn = parts[1]
            if method == "GET":
                return "ListTagsForResource", self.list_tags(arn)
            if method == "POST":
                return "TagResource", self.tag_resource(arn, body)
            if method == "DELETE":
                keys = parse_qs(raw_query or environ.get("QUERY_STRING", "")).get("tagKeys", [])
                return "UntagResource", self.untag_resource(arn, keys)
        routes: dict[tuple[str, int], tuple[str, Callable[..., dict[str, Any]]]] = {
            ("GET", 1): ("ListApps", lambda: self.list_apps(query)),
            ("GET", 2): ("GetApp", lambda: self.get_app(parts[1])),
            ("GET", 3): ("ListBranches", lambda: self.list_branches(parts[1], query)),
            ("GET", 4): ("GetBranch", lambda: self.get_branch(parts[1], parts[3])),
            ("POST", 4): ("UpdateBranch", lambda: self.update_branch(parts[1], parts[3], body)),
            ("GET", 5): ("ListJobs", lambda: self.list_jobs(parts[1], parts[3], query)),
            ("POST", 5): ("StartJob", lambda: self.start_job(parts[1], parts[3], body)),
            ("GET", 6): ("GetJob", lambda: self.get_job(parts[1], parts[3], parts[5])),
        }
        shape_ok = (
            parts[0] == "apps"
            and all(parts[1:])
            and (len(parts) < 3 or parts[2] == "branches")
            and (len(parts) < 5 or parts[4] == "jobs")
        )
        if shape_ok and (method, len(parts)) in routes:
            operation, handler = routes[(method, len(parts))]
            environ["sandbox.action"] = operation
            return operation, handler()
        if shape_ok and method == "DELETE" and len(parts) == 7 and parts[6] == "stop":
            environ["sandbox.action"] = "StopJob"
            return "StopJob", self.stop_job(parts[1], parts[3], parts[5])
        raise bad_request(f"{method} {path} is not an Amplify operation the sandbox emulates")


def _json_body(environ: dict[str, Any]) -> dict[str, Any]:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(length) if length else b""
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise bad_request("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object")
    return body


def _paginate(items: list[dict[str, Any]], query: dict[str, str]) -> tuple[list[dict[str, Any]], dict]:
    try:
        size = int(query.get("maxResults", MAX_RESULTS))
        start = int(query.get("nextToken", 0))
    except ValueError:
        raise bad_request("maxResults and nextToken must be numbers") from None
    if not 0 <= size <= MAX_RESULTS or start < 0:
        raise bad_request(f"maxResults must be between 0 and {MAX_RESULTS}")
    page = items[start : start + size]
    return page, ({"nextToken": str(start + size)} if start + size < len(items) else {})
