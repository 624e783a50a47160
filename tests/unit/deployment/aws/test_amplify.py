"""The idle branch's variables and its RELEASE job, against the sandbox Amplify emulator."""

from __future__ import annotations

import time

import boto3
import pytest
from _release import COMMIT, PREVIOUS

from deployment.aws import amplify


@pytest.fixture
def client(amplify_emulator, cfg):
    return boto3.client(
        "amplify",
        endpoint_url=amplify_emulator["url"],
        region_name=cfg.region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def env(client, cfg, colour):
    branch = client.get_branch(appId=cfg.amplify.app_id, branchName=cfg.amplify.branches[colour])["branch"]
    return branch["environmentVariables"]


def test_prepare_sets_release_variables_and_keeps_the_others(client, cfg):
    result = amplify.prepare_branch(cfg, "green", "v1.1.0", amplify=client)
    assert result["changed"] is True and result["branch"] == cfg.amplify.branches["green"]
    assert env(client, cfg, "green") == {
        **cfg.amplify.environment_variables,
        "APP_VERSION": "v1.1.0",
        "COLOUR": "green",
    }
    assert env(client, cfg, "blue")["APP_VERSION"] == PREVIOUS
    assert amplify.prepare_branch(cfg, "green", "v1.1.0", amplify=client)["changed"] is False


def test_start_release_is_idempotent_per_version_and_run(client, cfg, amplify_emulator):
    amplify.prepare_branch(cfg, "green", "v1.1.0", amplify=client)
    first = amplify.start_release(cfg, "green", "v1.1.0", "run-1", COMMIT, amplify=client)
    again = amplify.start_release(cfg, "green", "v1.1.0", "run-1", COMMIT, amplify=client)
    assert first["started"] is True and again["started"] is False
    assert again["job_id"] == first["job_id"]
    other_run = amplify.start_release(cfg, "green", "v1.1.0", "run-2", COMMIT, amplify=client)
    assert other_run["started"] is True and other_run["job_id"] != first["job_id"]
    time.sleep(0.1)
    assert (
        amplify_emulator["emulator"].served_version(cfg.amplify.app_id, cfg.amplify.branches["green"])
        == "v1.1.0"
    )


def test_a_failed_job_is_not_reused_and_its_reason_is_read(client, cfg, amplify_emulator):
    emulator = amplify_emulator["emulator"]
    fault = emulator.faults.add(
        "amplify_job_failure", branch=cfg.amplify.branches["green"], reason="lint failed"
    )
    failed = amplify.start_release(cfg, "green", "v1.1.0", "run-1", COMMIT, amplify=client)
    time.sleep(0.1)
    status, reason = amplify.job_state(client, cfg.amplify.app_id, failed["branch"], failed["job_id"])
    assert status == "FAILED" and "lint failed" in reason
    emulator.faults.remove(fault)
    retried = amplify.start_release(cfg, "green", "v1.1.0", "run-1", COMMIT, amplify=client)
    assert retried["started"] is True and retried["job_id"] != failed["job_id"]


def test_the_release_job_builds_the_release_commit_and_records_it(client, cfg, amplify_emulator):
    job = amplify.start_release(cfg, "green", "v1.1.0", "run-1", COMMIT, amplify=client)
    assert job["commit_id"] == COMMIT
    summary = client.get_job(appId=cfg.amplify.app_id, branchName=job["branch"], jobId=job["job_id"])["job"]
    assert summary["summary"]["commitId"] == COMMIT
    again = amplify.start_release(cfg, "green", "v1.1.0", "run-1", COMMIT, amplify=client)
    assert again["commit_id"] == COMMIT and again["started"] is False


def test_a_job_building_another_commit_is_refused(client, cfg, amplify_emulator):
    """The job this run started is found again, but for another commit: not the release's build."""
    amplify.start_release(cfg, "green", "v1.1.0", "run-1", COMMIT, amplify=client)
    with pytest.raises(amplify.WrongCommit, match=f"builds commit {COMMIT}, not the release's {'b' * 40}"):
        amplify.start_release(cfg, "green", "v1.1.0", "run-1", "b" * 40, amplify=client)
