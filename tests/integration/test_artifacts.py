"""The release candidate's build on the real engine: a broken build or tag stops the release in
``pre_deployment_validation``, naming the cause, before anyone is asked to approve, with production
untouched; a code object replaced after the approvals never runs. (A successful release's build is
checked in test_manual_rollback's release, through ``_artifacts.assert_released_the_build``.)"""

from __future__ import annotations

import time
from datetime import datetime

import pytest
from _artifacts import build_manifest, code_sha256, running_code
from _e2e import RC_COMMITS
from _matrix import NEW, Release, assert_nothing_rolled_back

pytestmark = pytest.mark.integration

V = "pre_deployment_validation"


def test_a_broken_build_or_tag_stops_the_release_before_approval(local, world, sandbox, seeded):
    """Tampered code object, missing manifest, rc tag moved: each fails verify_artifact, fast."""
    commit = RC_COMMITS[NEW]
    bucket = world.cfg.artifacts.bucket
    for n, kind in enumerate(("tampered_object", "missing_manifest", "rc_tag_moved")):
        if n:
            sandbox.reseed()  # publishes the builds again: the stack's template pins new S3 versions
            seeded = world.snapshot()
            assert seeded["weights"] == {"blue": 100, "green": 0} and seeded["served"]["blue"] == "v1.0.0"
        done = sandbox.control("POST", f"/builds/{NEW}/faults", {"kind": kind})
        cause = {
            "tampered_object": f"build object s3://{bucket}/{done.get('key')} was changed",
            "missing_manifest": f"no build manifest s3://{bucket}/{done.get('key')}",
            "rc_tag_moved": f"tag 'rc-1.1.0' points at {done.get('now')}, not at commit_sha {commit}",
        }[kind]
        release = Release.trigger(world=world, users=local, name=f"artifact-{kind}")
        release.wait("failed")
        states = release.states()
        assert states[f"{V}.verify_artifact"] == "failed", (kind, states)
        assert states[f"{V}.generate_plan"] == "upstream_failed", (kind, states)
        assert states["approval_gate.first_approval"] == "upstream_failed", (kind, states)
        assert release.record("plan") is None and release.record("approvals") is None
        section = release.section("artifact")
        assert section["ok"] is False and any(cause in p for p in section["problems"]), (cause, section)
        assert cause in release.ci.task_log(release.run_id, f"{V}.verify_artifact", 1)
        assert release.record("backup") is None
        # nothing undone, nobody paged; stack, weights, branches and what each colour serves as seeded
        assert_nothing_rolled_back(release, seeded)


def test_a_code_object_replaced_after_the_approvals_never_runs(local, world, sandbox, seeded):
    """The approvers approved the build's code objects; right after the second approval someone
    writes other bytes to the API function's code object (same key). The release deploys the
    version the manifest pins, and reads back that Lambda runs it."""
    release = Release.trigger(world=world, users=local, name="artifact-replaced-after-approval")
    approved = build_manifest(release, RC_COMMITS[NEW])["objects"]
    release.approve()
    replaced_at = time.time()
    replaced = sandbox.control("POST", f"/builds/{NEW}/faults", {"kind": "tampered_object"})
    release.wait("success")

    infrastructure = release.section("infrastructure")
    assert datetime.fromisoformat(infrastructure["executed_at"]).timestamp() > replaced_at, infrastructure
    bucket = world.cfg.artifacts.bucket
    now_at_key = world.client("s3").get_object(Bucket=bucket, Key=replaced["key"])["Body"].read()
    assert now_at_key.endswith(b"tampered")  # the key holds other bytes now; they never ran:
    assert running_code(release) == {code_sha256(o["sha256"]) for o in approved}
    running = infrastructure["running_build"]
    assert running["ok"] is True, running
    assert {f["code_sha256"] for f in running["functions"]} == {code_sha256(o["sha256"]) for o in approved}
