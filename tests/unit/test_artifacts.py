"""The artifact contract: publishing (scripts/publish_build.py), verifying (deployment.artifacts),
the tag and provenance checks, and ``pre_deployment_validation.verify_artifact``."""

from __future__ import annotations

import json

import pytest
from _release import AUTHOR, COMMIT, PREVIOUS, RUN_ID, VERSION
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowFailException
from airflow.sdk.execution_time.context import set_current_context

from deployment.artifacts import (
    ArtifactError,
    packaged_template,
    sha256_hex,
    template_code_uris,
    verify_build,
)
from deployment.github_checks import check_staging_build, check_tags
from deployment.groups.validation import pre_deployment_validation_group
from sandbox.seed import publish_sample_build, publisher, remove_build_manifest, tamper_build_object

PREFIX = f"builds/{COMMIT}"


def _manifest(cfg, s3, commit=COMMIT):
    key = f"builds/{commit}/manifest.json"
    return json.loads(s3.get_object(Bucket=cfg.artifacts.bucket, Key=key)["Body"].read())


def test_publish_packages_the_sample_app_into_the_contract(cfg, moto):
    s3 = moto.client("s3")
    manifest = publish_sample_build(cfg, s3, COMMIT, VERSION, staging_run={"run_id": 7, "workflow": "w.yml"})
    assert manifest == _manifest(cfg, s3)
    assert manifest["commit_sha"] == COMMIT and manifest["version"] == VERSION and manifest["built_at"]
    assert manifest["template"]["key"] == f"{PREFIX}/template.yaml"
    (code,) = manifest["objects"]
    assert code["key"].startswith(f"{PREFIX}/code/api-") and code["source"] == "functions/api/"
    body = s3.get_object(Bucket=cfg.artifacts.bucket, Key=code["key"])["Body"].read()
    assert sha256_hex(body) == code["sha256"] and len(body) == code["size"]
    text = packaged_template(cfg, COMMIT, manifest["template"]["sha256"], s3)
    assert f"CodeUri: s3://{cfg.artifacts.bucket}/{code['key']}" in text
    assert template_code_uris(text) == [(cfg.artifacts.bucket, code["key"])]
    head = s3.head_object(Bucket=cfg.artifacts.bucket, Key=code["key"], ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"]  # uploaded with a SHA-256 S3 checked on arrival


def test_each_commit_gets_its_own_code_object(cfg, moto):
    s3 = moto.client("s3")
    one = publish_sample_build(cfg, s3, COMMIT, VERSION)["objects"][0]
    other = publish_sample_build(cfg, s3, "b" * 40, PREVIOUS)["objects"][0]
    assert one["sha256"] != other["sha256"]
    again = publish_sample_build(cfg, s3, COMMIT, VERSION)["objects"][0]
    assert again == one  # reproducible: same commit, same bytes


def test_publish_takes_a_sam_package_output(cfg, moto, tmp_path):
    """What ``sam package --s3-prefix builds/<commit>/code`` writes: CodeUri already in S3."""
    s3 = moto.client("s3")
    key = f"{PREFIX}/code/5f0c8a1b2e"
    s3.put_object(Bucket=cfg.artifacts.bucket, Key=key, Body=b"zip bytes")
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
    assert manifest["objects"] == [{"key": key, "sha256": sha256_hex(b"zip bytes"), "size": 9}]
    assert verify_build(cfg, COMMIT, VERSION, s3)["objects"] == manifest["objects"]


def test_publish_refuses_code_outside_the_commit_prefix(cfg, moto, tmp_path):
    packaged = tmp_path / "packaged.yaml"
    packaged.write_text("Resources:\n  Fn:\n    Properties:\n      CodeUri: s3://elsewhere/abc\n")
    script = publisher()
    with pytest.raises(script.PublishError, match="outside s3://"):
        script.publish(
            moto.client("s3"),
            bucket=cfg.artifacts.bucket,
            prefix="builds",
            commit=COMMIT,
            version=VERSION,
            packaged_template=packaged,
        )


def test_verify_build_proves_every_object(cfg, moto):
    s3 = moto.client("s3")
    manifest = publish_sample_build(cfg, s3, COMMIT, VERSION)
    build = verify_build(cfg, COMMIT, VERSION)
    raw = s3.get_object(Bucket=cfg.artifacts.bucket, Key=f"{PREFIX}/manifest.json")["Body"].read()
    assert build["manifest_sha256"] == sha256_hex(raw)
    assert build["template_sha256"] == manifest["template"]["sha256"]
    assert [o["sha256"] for o in build["objects"]] == [o["sha256"] for o in manifest["objects"]]


def test_verify_build_names_what_is_wrong(cfg, moto):
    s3 = moto.client("s3")
    missing = f"no build manifest s3://{cfg.artifacts.bucket}/{PREFIX}/manifest.json"
    with pytest.raises(ArtifactError, match=missing):
        verify_build(cfg, COMMIT, VERSION)
    publish_sample_build(cfg, s3, COMMIT, VERSION)
    with pytest.raises(ArtifactError, match="names version v1.1.0, not v9.9.9"):
        verify_build(cfg, COMMIT, "v9.9.9")
    key = tamper_build_object(cfg, s3, COMMIT)
    with pytest.raises(ArtifactError, match=f"build object s3://{cfg.artifacts.bucket}/{key} was changed"):
        verify_build(cfg, COMMIT, VERSION)
    s3.delete_object(Bucket=cfg.artifacts.bucket, Key=key)
    with pytest.raises(ArtifactError, match=f"build object s3://{cfg.artifacts.bucket}/{key} is missing"):
        verify_build(cfg, COMMIT, VERSION)
    assert remove_build_manifest(cfg, s3, COMMIT) == f"{PREFIX}/manifest.json"


def test_verify_build_refuses_a_template_pointing_outside_the_manifest(cfg, moto):
    s3 = moto.client("s3")
    manifest = publish_sample_build(cfg, s3, COMMIT, VERSION)
    text = s3.get_object(Bucket=cfg.artifacts.bucket, Key=f"{PREFIX}/template.yaml")["Body"].read().decode()
    text = text.replace(manifest["objects"][0]["key"], f"{PREFIX}/code/other.zip")
    manifest["template"]["sha256"] = sha256_hex(text.encode())
    s3.put_object(Bucket=cfg.artifacts.bucket, Key=f"{PREFIX}/template.yaml", Body=text.encode())
    body = json.dumps(manifest).encode()
    s3.put_object(Bucket=cfg.artifacts.bucket, Key=f"{PREFIX}/manifest.json", Body=body)
    with pytest.raises(ArtifactError, match="code/other.zip, which the manifest .* does not list"):
        verify_build(cfg, COMMIT, VERSION)


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
        cause = f"build object s3://{cfg.artifacts.bucket}/{tamper_build_object(cfg, s3, sha)} was changed"
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
    from _release import PREVIOUS_COMMIT

    from deployment.artifacts import build_of_template
    from deployment.cloudformation import live_stack

    body = live_stack(cfg)["template_body"]
    build = build_of_template(cfg, body, PREVIOUS)
    assert build["commit_sha"] == PREVIOUS_COMMIT and build["version"] == PREVIOUS
    tamper_build_object(cfg, aws["s3"], PREVIOUS_COMMIT)
    with pytest.raises(ArtifactError, match="was changed"):
        build_of_template(cfg, body, PREVIOUS)
    with pytest.raises(ArtifactError, match="are not one build's"):
        build_of_template(cfg, "Resources: {}\n", PREVIOUS)
