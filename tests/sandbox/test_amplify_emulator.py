"""The Amplify emulator through boto3's unmodified ``amplify`` client."""

from __future__ import annotations

import io
import itertools
import json

import pytest
from botocore.exceptions import ClientError

from sandbox.amplify import AmplifyEmulator
from sandbox.faults import Faults
from tests.sandbox._poll import poll

_names = itertools.count(1)


@pytest.fixture
def amplify(aws):
    return aws("amplify")


@pytest.fixture
def branch(sandbox):
    """A scratch branch of the seeded app, so tests leave blue and green alone."""
    name = f"contract-{next(_names)}"
    sandbox.amplify.add_branch(sandbox.cfg.amplify.app_id, name, stage="BETA")
    return name


def _status(amplify, app_id, branch, job_id):
    return amplify.get_job(appId=app_id, branchName=branch, jobId=job_id)["job"]["summary"]["status"]


def _commit_of(sandbox, version):
    """A commit of the sandbox's repository tagged ``version`` (made once)."""
    try:
        return sandbox.github.version_at(version)[0]
    except Exception:
        return sandbox.github.add_commits([f"Release {version}"], tag=version)[-1]


def _release(amplify, app_id, branch, version, sandbox):
    """A RELEASE job building the commit tagged ``version`` (the job's commitId)."""
    commit = _commit_of(sandbox, version)
    amplify.update_branch(appId=app_id, branchName=branch, environmentVariables={"APP_VERSION": version})
    job = amplify.start_job(appId=app_id, branchName=branch, jobType="RELEASE", commitId=commit)
    return job["jobSummary"]


def test_seeded_app_and_branches(sandbox, amplify):
    cfg = sandbox.cfg
    app = amplify.get_app(appId=cfg.amplify.app_id)["app"]
    assert app["defaultDomain"] == f"{cfg.amplify.app_id}.amplifyapp.com"
    assert [a["appId"] for a in amplify.list_apps()["apps"]] == [cfg.amplify.app_id]
    names = {b["branchName"] for b in amplify.list_branches(appId=cfg.amplify.app_id)["branches"]}
    assert set(cfg.amplify.branches.values()) <= names

    blue = amplify.get_branch(appId=cfg.amplify.app_id, branchName=cfg.amplify.branches["blue"])["branch"]
    assert blue["environmentVariables"]["APP_VERSION"] == "v1.0.0"
    jobs = amplify.list_jobs(appId=cfg.amplify.app_id, branchName=cfg.amplify.branches["blue"])[
        "jobSummaries"
    ]
    assert [(j["status"], j["commitMessage"]) for j in jobs] == [("SUCCEED", "APP_VERSION=v1.0.0")]
    green = amplify.list_jobs(appId=cfg.amplify.app_id, branchName=cfg.amplify.branches["green"])
    assert green["jobSummaries"] == []
    assert sandbox.version_of("blue") == "v1.0.0"
    assert sandbox.version_of("green") is None


def test_release_job_goes_pending_running_succeed(sandbox, amplify, branch):
    app_id = sandbox.cfg.amplify.app_id
    job = _release(amplify, app_id, branch, "v2.0.0", sandbox)
    assert job["status"] == "PENDING" and job["jobType"] == "RELEASE"
    assert job["commitMessage"] == "APP_VERSION=v2.0.0"
    assert sandbox.amplify.served_version(app_id, branch) is None

    seen = poll(lambda: _status(amplify, app_id, branch, job["jobId"]), lambda s: s == "SUCCEED")
    assert seen == ["PENDING", "RUNNING", "SUCCEED"]
    detail = amplify.get_job(appId=app_id, branchName=branch, jobId=job["jobId"])["job"]
    assert [s["stepName"] for s in detail["steps"]] == ["BUILD", "DEPLOY"]
    assert detail["summary"]["endTime"] >= detail["summary"]["startTime"]
    assert sandbox.amplify.served_version(app_id, branch) == "v2.0.0"

    branch_state = amplify.get_branch(appId=app_id, branchName=branch)["branch"]
    assert branch_state["activeJobId"] == job["jobId"] and branch_state["totalNumberOfJobs"] == "1"


@pytest.mark.parametrize("matcher", ["version", "branch"])
def test_amplify_job_failure_fault(sandbox, amplify, branch, matcher):
    app_id = sandbox.cfg.amplify.app_id
    _release(amplify, app_id, branch, "v2.0.0", sandbox)
    poll(lambda: sandbox.amplify.served_version(app_id, branch), lambda v: v == "v2.0.0")
    match = {"version": "v2.1.0"} if matcher == "version" else {"branch": branch}
    sandbox.faults.add("amplify_job_failure", reason="npm run build exited 1", **match)

    job = _release(amplify, app_id, branch, "v2.1.0", sandbox)
    poll(lambda: _status(amplify, app_id, branch, job["jobId"]), lambda s: s == "FAILED")
    steps = amplify.get_job(appId=app_id, branchName=branch, jobId=job["jobId"])["job"]["steps"]
    assert steps[-1]["status"] == "FAILED" and steps[-1]["statusReason"] == "npm run build exited 1"
    assert sandbox.amplify.served_version(app_id, branch) == "v2.0.0"  # the failed build never went live

    sandbox.faults.clear()
    retry = amplify.start_job(appId=app_id, branchName=branch, jobType="RETRY", jobId=job["jobId"])
    poll(lambda: _status(amplify, app_id, branch, retry["jobSummary"]["jobId"]), lambda s: s == "SUCCEED")
    assert sandbox.amplify.served_version(app_id, branch) == "v2.1.0"


def test_fault_for_another_version_does_not_fail_the_job(sandbox, amplify, branch):
    app_id = sandbox.cfg.amplify.app_id
    sandbox.faults.add("amplify_job_failure", version="v9.9.9")
    job = _release(amplify, app_id, branch, "v2.0.0", sandbox)
    poll(lambda: _status(amplify, app_id, branch, job["jobId"]), lambda s: s == "SUCCEED")


def test_stop_job_cancels_it(sandbox, amplify, branch):
    app_id = sandbox.cfg.amplify.app_id
    job = _release(amplify, app_id, branch, "v2.0.0", sandbox)
    stopped = amplify.stop_job(appId=app_id, branchName=branch, jobId=job["jobId"])["jobSummary"]
    assert stopped["status"] == "CANCELLED"
    assert _status(amplify, app_id, branch, job["jobId"]) == "CANCELLED"
    assert sandbox.amplify.served_version(app_id, branch) is None


def test_list_jobs_newest_first_and_paginated(sandbox, amplify, branch):
    app_id = sandbox.cfg.amplify.app_id
    ids = [_release(amplify, app_id, branch, f"v3.0.{n}", sandbox)["jobId"] for n in range(3)]
    first = amplify.list_jobs(appId=app_id, branchName=branch, maxResults=2)
    assert [j["jobId"] for j in first["jobSummaries"]] == ids[::-1][:2]
    rest = amplify.list_jobs(appId=app_id, branchName=branch, maxResults=2, nextToken=first["nextToken"])
    assert [j["jobId"] for j in rest["jobSummaries"]] == ids[:1] and "nextToken" not in rest


def test_update_branch_replaces_environment_variables(sandbox, amplify, branch):
    app_id = sandbox.cfg.amplify.app_id
    amplify.update_branch(appId=app_id, branchName=branch, environmentVariables={"A": "1", "B": "2"})
    updated = amplify.update_branch(appId=app_id, branchName=branch, environmentVariables={"A": "3"})
    assert updated["branch"]["environmentVariables"] == {"A": "3"}
    amplify.update_branch(appId=app_id, branchName=branch, description="kept env")
    assert amplify.get_branch(appId=app_id, branchName=branch)["branch"]["environmentVariables"] == {"A": "3"}


def test_tags_on_branch_arn(sandbox, amplify, branch):
    arn = amplify.get_branch(appId=sandbox.cfg.amplify.app_id, branchName=branch)["branch"]["branchArn"]
    amplify.tag_resource(resourceArn=arn, tags={"live-version": "v1.0.0", "backup": "run-1"})
    amplify.untag_resource(resourceArn=arn, tagKeys=["backup"])
    assert amplify.list_tags_for_resource(resourceArn=arn)["tags"] == {"live-version": "v1.0.0"}


def _error(call, **kwargs):
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    return info.value.response["Error"]["Code"], info.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_errors_have_amplify_shape(sandbox, amplify, branch):
    app_id = sandbox.cfg.amplify.app_id
    assert _error(amplify.get_app, appId="dnope") == ("NotFoundException", 404)
    assert _error(amplify.get_branch, appId=app_id, branchName="nope") == ("NotFoundException", 404)
    assert _error(amplify.get_job, appId=app_id, branchName=branch, jobId="99") == ("NotFoundException", 404)
    assert _error(amplify.start_job, appId=app_id, branchName=branch, jobType="MANUAL") == (
        "BadRequestException",
        400,
    )
    assert _error(amplify.start_job, appId=app_id, branchName=branch, jobType="RETRY") == (
        "BadRequestException",
        400,
    )
    unknown_arn = f"arn:aws:amplify:{sandbox.cfg.region}:123456789012:apps/dnope"
    assert _error(amplify.list_tags_for_resource, resourceArn=unknown_arn) == (
        "ResourceNotFoundException",
        404,
    )
    assert _error(amplify.tag_resource, resourceArn="arn:aws:s3:::bucket", tags={"a": "b"})[0] == (
        "BadRequestException"
    )
    with pytest.raises(amplify.exceptions.NotFoundException, match="App dnope not found"):
        amplify.get_app(appId="dnope")


def test_error_response_wire_shape():
    emulator = AmplifyEmulator(Faults(), region="us-west-2")
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/apps/dx/branches/main/jobs",
        "CONTENT_LENGTH": "8",
        "wsgi.input": io.BytesIO(b"not json"),
    }
    captured = {}
    body = emulator(environ, lambda status, headers: captured.update(status=status, headers=dict(headers)))
    assert captured["status"].startswith("400")
    assert captured["headers"]["x-amzn-ErrorType"] == "BadRequestException"
    assert json.loads(b"".join(body)) == {"message": "the request body is not valid JSON"}


def test_release_job_builds_the_commit_it_names_and_the_version_follows(sandbox, amplify, branch):
    app_id = sandbox.cfg.amplify.app_id
    rc = sandbox.github.version_at("rc-1.1.0")[0]
    job = amplify.start_job(appId=app_id, branchName=branch, jobType="RELEASE", commitId=rc)["jobSummary"]
    assert job["commitId"] == rc
    poll(lambda: _status(amplify, app_id, branch, job["jobId"]), lambda s: s == "SUCCEED")
    got = amplify.get_job(appId=app_id, branchName=branch, jobId=job["jobId"])["job"]["summary"]
    assert got["commitId"] == rc
    assert sandbox.amplify.served_version(app_id, branch) == "v1.1.0"


def test_release_job_without_commit_id_builds_the_branch_head(sandbox, amplify, branch):
    """No commitId: the head of main (untagged, past rc-1.1.0), whatever APP_VERSION says."""
    app_id = sandbox.cfg.amplify.app_id
    sandbox.github.add_commits(["Untagged work on main"])
    amplify.update_branch(appId=app_id, branchName=branch, environmentVariables={"APP_VERSION": "v1.1.0"})
    job = amplify.start_job(appId=app_id, branchName=branch, jobType="RELEASE")["jobSummary"]
    head, version = sandbox.github.version_at(None)
    assert job["commitId"] == head != sandbox.github.version_at("rc-1.1.0")[0]
    poll(lambda: _status(amplify, app_id, branch, job["jobId"]), lambda s: s == "SUCCEED")
    assert sandbox.amplify.served_version(app_id, branch) == version != "v1.1.0"
    assert version.endswith(f"-dev.{head[:7]}")


def test_release_job_of_an_unknown_commit_is_refused(sandbox, amplify, branch):
    with pytest.raises(ClientError) as err:
        amplify.start_job(
            appId=sandbox.cfg.amplify.app_id, branchName=branch, jobType="RELEASE", commitId="0" * 40
        )
    assert err.value.response["Error"]["Code"] == "BadRequestException"


def test_the_seeds_job_is_done_at_once_and_the_pipelines_take_their_time():
    now = 1000.0
    emulator = AmplifyEmulator(Faults(), region="us-west-2", job_seconds=2.0, clock=lambda: now)
    emulator.add_app("dx", "app")
    emulator.add_branch("dx", "main", environment={"APP_VERSION": "v1.0.0"})
    with emulator.immediate():
        seeded = emulator.start_job("dx", "main", {"jobType": "RELEASE"})["jobSummary"]
    released = emulator.start_job("dx", "main", {"jobType": "RELEASE"})["jobSummary"]
    assert (seeded["status"], released["status"]) == ("SUCCEED", "PENDING")
    assert emulator.job_seconds == 2.0
