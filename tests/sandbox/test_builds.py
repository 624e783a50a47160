"""The seeded release-candidate builds and the control API's build faults."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
import requests

from sandbox.seed import NEXT_VERSION, PREVIOUS_VERSION


def _manifest(sandbox, s3, commit):
    key = f"{sandbox.cfg.artifacts.builds_prefix}/{commit}/manifest.json"
    return json.loads(s3.get_object(Bucket=sandbox.cfg.artifacts.bucket, Key=key)["Body"].read())


def _fault(sandbox, version, body):
    return requests.post(f"{sandbox.endpoints['control']}/builds/{version}/faults", json=body, timeout=10)


@pytest.fixture
def reseeded(sandbox):
    yield sandbox
    sandbox.reseed()


def test_each_release_candidate_has_its_build_and_production_runs_v1_0_0s(sandbox, aws):
    s3, github = aws("s3"), sandbox.github
    manifests = {}
    for version in (PREVIOUS_VERSION, NEXT_VERSION):
        commit = github.version_at(f"rc-{version.removeprefix('v')}")[0]
        manifests[version] = _manifest(sandbox, s3, commit)
        assert manifests[version]["commit_sha"] == commit and manifests[version]["version"] == version
        run = manifests[version]["staging_run"]
        assert github._runs[run["run_id"]]["head_sha"] == commit  # the staging run that published it
    code = {v: m["objects"][0]["sha256"] for v, m in manifests.items()}
    assert code[PREVIOUS_VERSION] != code[NEXT_VERSION]
    assert all(o["version_id"] for m in manifests.values() for o in [m["template"], *m["objects"]])
    (function,) = aws("lambda").list_functions()["Functions"]
    assert function["CodeSha256"] == base64.b64encode(bytes.fromhex(code[PREVIOUS_VERSION])).decode()
    template = aws("cloudformation").get_template(StackName=sandbox.cfg.stack.name)["TemplateBody"]
    pinned = manifests[PREVIOUS_VERSION]["objects"][0]
    assert (
        template["Resources"]["ApiFunction"]["Properties"]["Code"]["S3ObjectVersion"] == pinned["version_id"]
    )
    blue = aws("amplify").list_jobs(
        appId=sandbox.cfg.amplify.app_id, branchName=sandbox.cfg.amplify.branches["blue"]
    )["jobSummaries"]
    assert blue[0]["commitId"] == manifests[PREVIOUS_VERSION]["commit_sha"]


def test_build_faults_break_what_they_name(reseeded, aws):
    sandbox, s3 = reseeded, aws("s3")
    commit = sandbox.github.version_at("rc-1.1.0")[0]
    before = _manifest(sandbox, s3, commit)

    tampered = _fault(sandbox, NEXT_VERSION, {"kind": "tampered_object"})
    assert tampered.status_code == 201 and tampered.json()["key"] == before["objects"][0]["key"]
    bucket, pinned = sandbox.cfg.artifacts.bucket, before["objects"][0]
    body = s3.get_object(Bucket=bucket, Key=tampered.json()["key"])["Body"].read()
    assert body.endswith(b"tampered")  # a new version of the key; the pinned one keeps its bytes:
    kept = s3.get_object(Bucket=bucket, Key=pinned["key"], VersionId=pinned["version_id"])["Body"].read()
    assert body == kept + b"tampered"

    moved = _fault(sandbox, NEXT_VERSION, {"kind": "rc_tag_moved"}).json()
    assert moved["now"] == sandbox.github.head() != commit
    assert sandbox.github.version_at("rc-1.1.0")[0] == moved["now"]

    missing = _fault(sandbox, PREVIOUS_VERSION, {"kind": "missing_manifest"})
    assert missing.status_code == 201
    with pytest.raises(s3.exceptions.NoSuchKey):
        s3.get_object(Bucket=sandbox.cfg.artifacts.bucket, Key=missing.json()["key"])


def test_republished_build_is_a_valid_build_of_other_bytes(reseeded, aws):
    sandbox, s3 = reseeded, aws("s3")
    commit = sandbox.github.version_at("rc-1.1.0")[0]
    before = _manifest(sandbox, s3, commit)
    template = sandbox.cfg.stack.template_path.read_text() + "\n# republished\n"
    done = _fault(sandbox, NEXT_VERSION, {"kind": "republished", "template": template}).json()
    after = _manifest(sandbox, s3, commit)
    assert done["manifest"] == after and after["staging_run"] == before["staging_run"]
    assert after["template"]["sha256"] != before["template"]["sha256"]

    def unversioned(manifest):
        return [{k: v for k, v in o.items() if k != "version_id"} for o in manifest["objects"]]

    assert unversioned(after) == unversioned(before)  # the same bytes, uploaded again: new versions


def test_lambda_runs_the_code_version_it_is_given(reseeded, aws):
    """moto's Lambda alone reads a code object's newest version; the sandbox's reads the one named
    (``S3ObjectVersion``), as Lambda does."""
    sandbox, s3 = reseeded, aws("s3")
    bucket, key = sandbox.cfg.artifacts.bucket, "lambda-version-probe.zip"
    first = s3.put_object(Bucket=bucket, Key=key, Body=b"first package")["VersionId"]
    s3.put_object(Bucket=bucket, Key=key, Body=b"second package")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    role = aws("iam").create_role(RoleName="version-probe", AssumeRolePolicyDocument=json.dumps(trust))[
        "Role"
    ]
    function = aws("lambda").create_function(
        FunctionName="version-probe",
        Runtime="python3.12",
        Role=role["Arn"],
        Handler="index.handler",
        Code={"S3Bucket": bucket, "S3Key": key, "S3ObjectVersion": first},
    )
    assert function["CodeSha256"] == base64.b64encode(hashlib.sha256(b"first package").digest()).decode()


def test_build_fault_errors(sandbox):
    assert _fault(sandbox, NEXT_VERSION, {"kind": "nope"}).status_code == 400
    assert _fault(sandbox, "v9.9.9", {"kind": "missing_manifest"}).status_code == 404
