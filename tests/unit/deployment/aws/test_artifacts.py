"""The artifact contract: publishing (scripts/publish_build.py), verifying and proving again
(deployment.aws.artifacts), reading back what runs (deployment.checks.running_build), the tag and provenance
checks, and ``pre_deployment_validation.verify_artifact``."""

from __future__ import annotations

import json

import pytest
import yaml
from _release import AUTHOR, COMMIT, PREVIOUS, PREVIOUS_COMMIT, RUN_ID, VERSION
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowFailException
from airflow.sdk.execution_time.context import set_current_context

from deployment.aws.artifacts import (
    ArtifactError,
    CodeRef,
    packaged_template,
    prove_approved_build,
    sha256_hex,
    template_code,
    verify_build,
)
from deployment.checks.github import check_staging_build, check_tags
from deployment.phases.pre_deployment_validation import pre_deployment_validation_group
from sandbox.seed import (
    keep_versions,
    publish_sample_build,
    publisher,
    remove_build_manifest,
    tamper_build_object,
)

PREFIX = f"builds/{COMMIT}"


def _manifest(cfg, s3, commit=COMMIT):
    key = f"builds/{commit}/manifest.json"
    return json.loads(s3.get_object(Bucket=cfg.artifacts.bucket, Key=key)["Body"].read())


def _put_manifest(cfg, s3, manifest):
    body = json.dumps(manifest).encode()
    s3.put_object(
        Bucket=cfg.artifacts.bucket, Key=f"builds/{manifest['commit_sha']}/manifest.json", Body=body
    )


def _republish_template(cfg, s3, manifest, text):
    """Put ``text`` as the build's template and a manifest that pins it (a consistent, edited build)."""
    key = manifest["template"]["key"]
    version = s3.put_object(Bucket=cfg.artifacts.bucket, Key=key, Body=text.encode())["VersionId"]
    manifest["template"].update(sha256=sha256_hex(text.encode()), version_id=version, size=len(text))
    _put_manifest(cfg, s3, manifest)


def test_publish_packages_the_sample_app_into_the_contract(cfg, moto):
    s3 = moto.client("s3")
    manifest = publish_sample_build(cfg, s3, COMMIT, VERSION, staging_run={"run_id": 7, "workflow": "w.yml"})
    assert manifest == _manifest(cfg, s3) and manifest["schema"] == 2
    assert manifest["commit_sha"] == COMMIT and manifest["version"] == VERSION and manifest["built_at"]
    assert manifest["template"]["key"] == f"{PREFIX}/template.yaml" and manifest["template"]["version_id"]
    (code,) = manifest["objects"]
    assert code["key"].startswith(f"{PREFIX}/code/api-") and code["source"] == "functions/api/"
    found = s3.get_object(Bucket=cfg.artifacts.bucket, Key=code["key"])
    body = found["Body"].read()
    assert sha256_hex(body) == code["sha256"] and len(body) == code["size"]
    assert found["VersionId"] == code["version_id"]
    text = packaged_template(cfg, COMMIT, manifest["template"]["sha256"], s3)
    function = yaml.safe_load(text.replace("!", ""))["Resources"]["ApiFunction"]["Properties"]
    # SAM's FunctionCode: Bucket, Key, Version (passed to the Lambda function's Code as S3ObjectVersion)
    assert function["CodeUri"] == {
        "Bucket": cfg.artifacts.bucket,
        "Key": code["key"],
        "Version": code["version_id"],
    }
    assert template_code(text) == [
        CodeRef("ApiFunction", cfg.artifacts.bucket, code["key"], code["version_id"])
    ]
    head = s3.head_object(Bucket=cfg.artifacts.bucket, Key=code["key"], ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"]  # uploaded with a SHA-256 S3 checked on arrival


def test_the_transformed_template_pins_the_lambda_code_version(cfg, moto):
    from deployment.aws.cloudformation import template_body

    s3 = moto.client("s3")
    code = publish_sample_build(cfg, s3, COMMIT, VERSION)["objects"][0]
    transformed = template_body(
        cfg, VERSION, packaged_template(cfg, COMMIT, _manifest(cfg, s3)["template"]["sha256"])
    )
    assert json.loads(transformed)["Resources"]["ApiFunction"]["Properties"]["Code"] == {
        "S3Bucket": cfg.artifacts.bucket,
        "S3Key": code["key"],
        "S3ObjectVersion": code["version_id"],
    }
    assert template_code(transformed) == [
        CodeRef("ApiFunction", cfg.artifacts.bucket, code["key"], code["version_id"])
    ]


def test_each_commit_gets_its_own_code_object(cfg, moto):
    s3 = moto.client("s3")
    one = publish_sample_build(cfg, s3, COMMIT, VERSION)["objects"][0]
    other = publish_sample_build(cfg, s3, "b" * 40, PREVIOUS)["objects"][0]
    assert one["sha256"] != other["sha256"]
    again = publish_sample_build(cfg, s3, COMMIT, VERSION)["objects"][0]
    assert (again["key"], again["sha256"]) == (one["key"], one["sha256"])  # reproducible: same bytes
    assert again["version_id"] != one["version_id"]  # uploaded again: a version of its own


def test_publish_refuses_a_bucket_that_does_not_keep_versions(cfg, moto):
    s3 = moto.client("s3")
    script = publisher()
    with pytest.raises(
        script.PublishError, match=f"bucket {cfg.artifacts.bucket} does not keep object versions"
    ):
        script.publish(
            s3, bucket=cfg.artifacts.bucket, prefix="builds", commit=COMMIT, version=VERSION,
            template=cfg.stack.template_path,
        )  # fmt: skip
    assert "Contents" not in s3.list_objects_v2(Bucket=cfg.artifacts.bucket)  # nothing written
    assert script.main(["--bucket", cfg.artifacts.bucket, "--commit", COMMIT, "--version", VERSION,
                        "--template", str(cfg.stack.template_path)]) == 1  # fmt: skip


def test_publish_takes_a_sam_package_output_and_pins_its_versions(cfg, moto, tmp_path):
    """What ``sam package --s3-prefix builds/<commit>/code`` writes: CodeUri an s3:// key, no version."""
    s3 = moto.client("s3")
    keep_versions(cfg, s3)
    key = f"{PREFIX}/code/5f0c8a1b2e"
    version = s3.put_object(Bucket=cfg.artifacts.bucket, Key=key, Body=b"zip bytes")["VersionId"]
    packaged = tmp_path / "packaged.yaml"
    uri = f"CodeUri: s3://{cfg.artifacts.bucket}/{key}"
    packaged.write_text(cfg.stack.template_path.read_text().replace("CodeUri: functions/api/", uri))
    manifest = publisher().publish(
        s3,
        bucket=cfg.artifacts.bucket,
        prefix="builds",
        commit=COMMIT,
        version=VERSION,
        packaged_template=packaged,
    )
    assert manifest["objects"] == [
        {"key": key, "version_id": version, "sha256": sha256_hex(b"zip bytes"), "size": 9}
    ]
    text = packaged_template(cfg, COMMIT, manifest["template"]["sha256"], s3)
    assert template_code(text) == [CodeRef("ApiFunction", cfg.artifacts.bucket, key, version)]
    assert verify_build(cfg, COMMIT, VERSION, s3)["objects"] == manifest["objects"]


def test_publish_refuses_code_outside_the_commit_prefix(cfg, moto, tmp_path):
    packaged = tmp_path / "packaged.yaml"
    packaged.write_text("Resources:\n  Fn:\n    Properties:\n      CodeUri: s3://elsewhere/abc\n")
    script = publisher()
    keep_versions(cfg, moto.client("s3"))
    with pytest.raises(script.PublishError, match="outside s3://"):
        script.publish(
            moto.client("s3"),
            bucket=cfg.artifacts.bucket,
            prefix="builds",
            commit=COMMIT,
            version=VERSION,
            packaged_template=packaged,
        )


def test_verify_build_proves_every_pinned_version(cfg, moto):
    s3 = moto.client("s3")
    manifest = publish_sample_build(cfg, s3, COMMIT, VERSION)
    build = verify_build(cfg, COMMIT, VERSION)
    raw = s3.get_object(Bucket=cfg.artifacts.bucket, Key=f"{PREFIX}/manifest.json")
    assert build["manifest_version_id"] == raw["VersionId"]
    assert build["manifest_sha256"] == sha256_hex(raw["Body"].read())
    assert build["template_sha256"] == manifest["template"]["sha256"]
    assert build["template_version_id"] == manifest["template"]["version_id"]
    assert [{k: o[k] for k in ("key", "version_id", "sha256", "size")} for o in manifest["objects"]] == build[
        "objects"
    ]


def test_verify_build_names_what_is_wrong(cfg, moto):
    s3 = moto.client("s3")
    missing = f"no build manifest s3://{cfg.artifacts.bucket}/{PREFIX}/manifest.json"
    with pytest.raises(ArtifactError, match=missing):
        verify_build(cfg, COMMIT, VERSION)
    manifest = publish_sample_build(cfg, s3, COMMIT, VERSION)
    code = manifest["objects"][0]
    with pytest.raises(ArtifactError, match="names version v1.1.0, not v9.9.9"):
        verify_build(cfg, COMMIT, "v9.9.9")
    # other bytes written to the key (a new version): named, with both versions
    key = tamper_build_object(cfg, s3, COMMIT)
    newest = s3.head_object(Bucket=cfg.artifacts.bucket, Key=key)["VersionId"]
    replaced = (
        f"build object s3://{cfg.artifacts.bucket}/{key} was changed after it was published: "
        f"its newest version is {newest}, the manifest .* pins {code['version_id']}"
    )
    with pytest.raises(ArtifactError, match=replaced):
        verify_build(cfg, COMMIT, VERSION)
    # the pinned version itself gone
    s3.delete_object(Bucket=cfg.artifacts.bucket, Key=key, VersionId=code["version_id"])
    gone = f"build object s3://{cfg.artifacts.bucket}/{key} version {code['version_id']} is missing"
    with pytest.raises(ArtifactError, match=gone):
        verify_build(cfg, COMMIT, VERSION)
    assert remove_build_manifest(cfg, s3, COMMIT) == f"{PREFIX}/manifest.json"


def test_verify_build_refuses_a_version_whose_bytes_are_not_the_manifests(cfg, moto):
    s3 = moto.client("s3")
    manifest = publish_sample_build(cfg, s3, COMMIT, VERSION)
    code = dict(manifest["objects"][0])
    manifest["objects"][0]["sha256"] = "0" * 64
    _put_manifest(cfg, s3, manifest)
    changed = (
        f"build object s3://{cfg.artifacts.bucket}/{code['key']} version {code['version_id']} was changed: "
        f"its SHA-256 is {code['sha256']}, the manifest says {'0' * 64}"
    )
    with pytest.raises(ArtifactError, match=changed):
        verify_build(cfg, COMMIT, VERSION)


def test_verify_build_refuses_a_template_whose_pinned_version_differs(cfg, moto):
    s3 = moto.client("s3")
    manifest = publish_sample_build(cfg, s3, COMMIT, VERSION)
    code = manifest["objects"][0]
    text = packaged_template(cfg, COMMIT, manifest["template"]["sha256"], s3)
    other = s3.put_object(Bucket=cfg.artifacts.bucket, Key=code["key"], Body=b"other bytes")["VersionId"]
    _republish_template(cfg, s3, manifest, text.replace(code["version_id"], other))
    pins = f"ApiFunction runs s3://{cfg.artifacts.bucket}/{code['key']} at version {other}, not the version"
    with pytest.raises(ArtifactError, match=f"{pins} {code['version_id']} the manifest .* pins"):
        verify_build(cfg, COMMIT, VERSION)
    _republish_template(cfg, s3, manifest, text.replace(f'Version: "{code["version_id"]}"', ""))
    with pytest.raises(ArtifactError, match="ApiFunction runs .* at no version \\(the key's newest bytes\\)"):
        verify_build(cfg, COMMIT, VERSION)


def test_verify_build_refuses_a_build_published_without_versions(cfg, moto):
    s3 = moto.client("s3")
    manifest = publish_sample_build(cfg, s3, COMMIT, VERSION)
    del manifest["objects"][0]["version_id"]
    _put_manifest(cfg, s3, manifest)
    with pytest.raises(ArtifactError, match=f"pins no S3 version of {manifest['objects'][0]['key']}"):
        verify_build(cfg, COMMIT, VERSION)


def test_verify_build_refuses_a_template_pointing_outside_the_manifest(cfg, moto):
    s3 = moto.client("s3")
    manifest = publish_sample_build(cfg, s3, COMMIT, VERSION)
    text = packaged_template(cfg, COMMIT, manifest["template"]["sha256"], s3)
    _republish_template(
        cfg, s3, manifest, text.replace(manifest["objects"][0]["key"], f"{PREFIX}/code/other.zip")
    )
    with pytest.raises(ArtifactError, match="code/other.zip.*, which the manifest .* does not list"):
        verify_build(cfg, COMMIT, VERSION)


# ------------------------------------------------------------ proven again before execute
def test_the_approved_build_is_proven_again_from_the_record(cfg, moto):
    s3 = moto.client("s3")
    publish_sample_build(cfg, s3, COMMIT, VERSION)
    build = {**verify_build(cfg, COMMIT, VERSION), "ok": True}
    key = tamper_build_object(cfg, s3, COMMIT)  # written after approval: not what deploys
    publish_sample_build(cfg, s3, COMMIT, VERSION)  # even a whole build published again since
    proof = prove_approved_build(cfg, build)
    assert proof["ok"] is True and proof["objects"] == build["objects"]
    assert proof["template"]["version_id"] == build["template_version_id"]
    assert {r["key"] for r in proof["replaced"]} == {build["template_key"], key}
    pinned = build["objects"][0]["version_id"]
    s3.delete_object(Bucket=cfg.artifacts.bucket, Key=key, VersionId=pinned)
    with pytest.raises(
        ArtifactError, match=f"build object s3://{cfg.artifacts.bucket}/{key} version {pinned} is missing"
    ):
        prove_approved_build(cfg, build)
    with pytest.raises(ArtifactError, match="no verified build pinned by S3 version"):
        prove_approved_build(cfg, {**build, "ok": False})


# ------------------------------------------------------------------ GitHub
def test_tags_must_resolve_to_the_commit(cfg, github):
    emulator, sha = github["emulator"], github["sha"]
    assert check_tags(cfg, VERSION, sha)["ok"] is True
    later = emulator.add_commits(["later"])[-1]
    emulator.add_tag(VERSION, later)
    result = check_tags(cfg, VERSION, sha)
    assert result["ok"] is False
    assert result["detail"] == f"tag 'v1.1.0' points at {later}, not at commit_sha {sha}"
    emulator.move_tag("rc-1.1.0", later)
    assert "tag 'rc-1.1.0' points at" in check_tags(cfg, VERSION, sha)["detail"]
    missing = check_tags(cfg, "v7.0.0", sha)
    assert missing["ok"] is False
    assert missing["detail"] == f"tag 'rc-7.0.0' does not exist in {cfg.github.repository}"


def test_the_build_must_come_from_a_successful_staging_run_of_the_commit(cfg, github):
    emulator, sha = github["emulator"], github["sha"]
    good = emulator.add_workflow_run(cfg.github.staging_workflow, sha)
    build = {"manifest_key": f"builds/{sha}/manifest.json"}
    assert check_staging_build(cfg, sha, {**build, "staging_run": {"run_id": good}})["ok"] is True
    failed = emulator.add_workflow_run(cfg.github.staging_workflow, sha, conclusion="failure")
    detail = check_staging_build(cfg, sha, {**build, "staging_run": {"run_id": failed}})["detail"]
    assert "concluded 'failure'" in detail
    other = emulator.add_workflow_run("lint.yml", sha)
    detail = check_staging_build(cfg, sha, {**build, "staging_run": {"run_id": other}})["detail"]
    assert "not of deploy-staging.yml" in detail
    assert "names no staging run" in check_staging_build(cfg, sha, {**build, "staging_run": None})["detail"]


# ------------------------------------------------------------------ the task
@pytest.fixture
def verify_task(cfg):
    with DAG("phase_1", schedule=None) as dag:
        pre_deployment_validation_group(cfg)
    task = dag.get_task("pre_deployment_validation.verify_artifact")

    def call(params):
        with set_current_context({"params": params, "run_id": RUN_ID, "ti": None}):
            return task.python_callable()

    return call


def _rc_build(cfg, moto, github):
    run_id = github["emulator"].add_workflow_run(cfg.github.staging_workflow, github["sha"])
    publish_sample_build(
        cfg,
        moto.client("s3"),
        github["sha"],
        VERSION,
        staging_run={"run_id": run_id, "workflow": cfg.github.staging_workflow},
    )
    return {
        "version": VERSION,
        "commit_sha": github["sha"],
        "author": AUTHOR,
        "emergency": {"force_deploy": True, "reason": "integrity is never skipped"},
    }


def test_verify_artifact_records_the_proven_build(cfg, moto, github, verify_task, record):
    params = _rc_build(cfg, moto, github)
    digests = verify_task(params)
    section = record.read("artifact")
    assert section["ok"] is True and section["problems"] == []
    assert digests == {k: section[k] for k in ("commit_sha", "manifest_sha256", "template_sha256")}
    assert set(section["checks"]) == {"tags", "staging_build"}


@pytest.mark.parametrize("fault", ["tampered_object", "missing_manifest", "rc_tag_moved"])
def test_verify_artifact_fails_naming_the_cause(cfg, moto, github, verify_task, record, fault):
    params = _rc_build(cfg, moto, github)
    s3, sha = moto.client("s3"), github["sha"]
    if fault == "tampered_object":
        key = tamper_build_object(cfg, s3, sha)
        cause = f"build object s3://{cfg.artifacts.bucket}/{key} was changed after it was published"
    elif fault == "missing_manifest":
        cause = f"no build manifest s3://{cfg.artifacts.bucket}/{remove_build_manifest(cfg, s3, sha)}"
    else:
        later = github["emulator"].add_commits(["later"])[-1]
        github["emulator"].move_tag("rc-1.1.0", later)
        cause = f"tag 'rc-1.1.0' points at {later}, not at commit_sha {sha}"
    with pytest.raises(AirflowFailException, match="the release's build cannot be trusted: ") as err:
        verify_task(params)
    assert cause in str(err.value)
    section = record.read("artifact")
    assert section["ok"] is False and any(cause in p for p in section["problems"])


def test_a_rollback_target_is_proven_from_the_template_it_puts_back(cfg, aws):
    """The live stack (seeded from the v1.0.0 build, transformed) names its build through its code."""
    from deployment.aws.artifacts import build_of_template
    from deployment.aws.cloudformation import live_stack

    body = live_stack(cfg)["template_body"]
    build = build_of_template(cfg, body, PREVIOUS)
    assert build["commit_sha"] == PREVIOUS_COMMIT and build["version"] == PREVIOUS
    (code,) = build["objects"]
    tamper_build_object(cfg, aws["s3"], PREVIOUS_COMMIT)  # a later write: the template pins the version
    assert build_of_template(cfg, body, PREVIOUS)["objects"] == [code]
    aws["s3"].delete_object(Bucket=cfg.artifacts.bucket, Key=code["key"], VersionId=code["version_id"])
    with pytest.raises(ArtifactError, match=f"version {code['version_id']} is missing"):
        build_of_template(cfg, body, PREVIOUS)
    with pytest.raises(ArtifactError, match="is the build of .* v1.0.0, not of v1.1.0"):
        build_of_template(cfg, body, VERSION)
    with pytest.raises(ArtifactError, match="are not one build's"):
        build_of_template(cfg, "Resources: {}\n", PREVIOUS)


# ------------------------------------------------------------------ what runs, read back
def _deploy(cfg, aws, version):
    """Update the seeded stack to ``version``'s build, as the change set would (moto applies it at once)."""
    from deployment.aws.cloudformation import release_parameters, template_body

    aws["cfn"].update_stack(
        StackName=cfg.stack.name,
        TemplateBody=template_body(cfg, version, aws["builds"][version]),
        Parameters=[
            {"ParameterKey": k, "ParameterValue": v} for k, v in release_parameters(cfg, version).items()
        ],
        Capabilities=list(cfg.stack.capabilities),
    )


def test_read_back_compares_each_function_with_its_approved_package(cfg, aws, ledger):
    """moto's Lambda, like Lambda, reports CodeSha256 as the base64 SHA-256 of the package it read."""
    from deployment.checks.running_build import code_sha256, read_back_release

    approved = ledger.read("artifact")["objects"][0]
    stale = read_back_release(cfg, ledger, cfg.stack.name)  # production still runs v1.0.0
    (function,) = stale["functions"]
    assert stale["ok"] is False and function["logical_id"] == "ApiFunction" and function["ok"] is False
    assert stale["problems"] == [
        f"{function['function_name']} runs code {function['code_sha256']}, not {function['object']} "
        f"({code_sha256(approved['sha256'])})"
    ]
    _deploy(cfg, aws, VERSION)
    running = read_back_release(cfg, ledger, cfg.stack.name)
    assert running["ok"] is True and running["commit_sha"] == COMMIT and running["problems"] == []
    (function,) = running["functions"]
    assert function["code_sha256"] == code_sha256(approved["sha256"]) == function["expected_code_sha256"]
    lambda_client = aws["session"].client("lambda")
    assert (
        lambda_client.get_function(FunctionName=function["function_name"])["Configuration"]["CodeSha256"]
        == (function["code_sha256"])
    )


def test_read_back_catches_code_other_than_the_pinned_version(cfg, aws, ledger):
    """moto's own Lambda reads a code object's newest version whatever S3ObjectVersion says (the
    sandbox makes it honour the version): a key written after approval then runs, and the read-back
    names the function."""
    from deployment.checks.running_build import read_back_release

    tamper_build_object(cfg, aws["s3"], COMMIT)
    _deploy(cfg, aws, VERSION)
    running = read_back_release(cfg, ledger, cfg.stack.name)
    assert running["ok"] is False
    assert "runs code" in running["problems"][0] and running["functions"][0]["ok"] is False


def test_the_restored_build_is_proven_and_read_back(cfg, aws, ledger):
    """What the rollback calls once the backup is back: the backed-up template's pinned code against
    the previous build's manifest, and each function's CodeSha256."""
    from deployment.aws.cloudformation import live_stack
    from deployment.backup.take import backup_stack
    from deployment.checks.running_build import code_sha256, verify_restored_build

    backup = {"stack": backup_stack(cfg, ledger)}
    previous = _manifest(cfg, aws["s3"], PREVIOUS_COMMIT)["objects"][0]
    restored = verify_restored_build(cfg, backup, live_stack(cfg))
    assert restored["ok"] is True, restored
    assert restored["commit_sha"] == PREVIOUS_COMMIT
    assert restored["manifest_key"] == f"builds/{PREVIOUS_COMMIT}/manifest.json"
    assert [(o["key"], o["version_id"], o["pinned"]) for o in restored["objects"]] == [
        (previous["key"], previous["version_id"], True)
    ]
    assert [f["code_sha256"] for f in restored["functions"]] == [code_sha256(previous["sha256"])]

    _deploy(cfg, aws, VERSION)  # the stack was not put back: its function runs the release's code
    restored = verify_restored_build(cfg, backup, live_stack(cfg))
    assert restored["ok"] is False and restored["functions"][0]["ok"] is False
    assert restored["problems"] == [
        f"{restored['functions'][0]['function_name']} runs code {restored['functions'][0]['code_sha256']}, "
        f"not {restored['functions'][0]['object']} ({code_sha256(previous['sha256'])})"
    ]
    aws["s3"].delete_object(
        Bucket=cfg.artifacts.bucket, Key=previous["key"], VersionId=previous["version_id"]
    )
    gone = verify_restored_build(cfg, backup, live_stack(cfg))
    assert gone["ok"] is False and f"version {previous['version_id']} is missing" in gone["problems"][0]
