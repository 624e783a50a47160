"""What a successful release must show of the release candidate's build, read back from
the sandbox: the functions run the build's code objects, the Amplify job built ``commit_sha``, the
GitHub release targets it. Called from a test that already has a successful release (no release of
its own: CI time)."""

from __future__ import annotations

import base64
import json

import requests
from _matrix import Release


def build_manifest(release: Release, commit: str) -> dict:
    cfg = release.world.cfg
    key = f"{cfg.artifacts.builds_prefix}/{commit}/manifest.json"
    body = release.world.client("s3").get_object(Bucket=cfg.artifacts.bucket, Key=key)["Body"].read()
    return json.loads(body)


def code_sha256(sha256_hex: str) -> str:
    """Lambda's ``CodeSha256`` of a package whose SHA-256 is ``sha256_hex``: the digest in base64."""
    return base64.b64encode(bytes.fromhex(sha256_hex)).decode()


def running_code(release: Release) -> set[str]:
    """The ``CodeSha256`` of every function the sandbox's Lambda runs."""
    functions = release.world.client("lambda").list_functions()["Functions"]
    assert functions, "the stack created no Lambda function"
    return {f["CodeSha256"] for f in functions}


def assert_released_the_build(release: Release, commit: str) -> None:
    world, cfg = release.world, release.world.cfg
    manifest = build_manifest(release, commit)
    assert manifest["commit_sha"] == commit and manifest["version"] == release.version

    built = {code_sha256(o["sha256"]) for o in manifest["objects"]}
    assert running_code(release) <= built, manifest["objects"]

    plan, verified = release.section("plan"), release.section("artifact")
    assert verified["ok"] is True and verified["commit_sha"] == commit
    template_sha256 = manifest["template"]["sha256"]
    assert plan["artifact"]["template_sha256"] == verified["template_sha256"] == template_sha256
    assert plan["change_set"]["template_sha256"] == verified["template_sha256"]
    deployed = release.section("validation")["change_set"]["change_set"]
    assert deployed["template_sha256"] == verified["template_sha256"]

    job = release.section("frontend")["amplify_job"]
    assert job["commit_id"] == commit
    amplify = world.client("amplify")
    branch = cfg.amplify.branches[release.section("frontend")["target_colour"]]
    got = amplify.get_job(appId=cfg.amplify.app_id, branchName=branch, jobId=job["job_id"])["job"]
    assert got["summary"]["commitId"] == commit

    assert world.sandbox.commit_of(release.version) == commit  # the tag GitHub's release created
    github = json.loads(world.sandbox.connections()[f"AIRFLOW_CONN_{cfg.connections.github.upper()}"])
    response = requests.get(
        f"{github['host'].rstrip('/')}/repos/{cfg.github.repository}/releases/tags/{release.version}",
        headers={"Authorization": f"token {github['password']}"},
        timeout=10,
    )
    assert response.ok and response.json()["target_commitish"] == commit, response.text
