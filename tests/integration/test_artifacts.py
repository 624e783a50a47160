"""The release candidate's build on the real engine: a broken build or tag stops the release in
``pre_deployment_validation``, naming the cause, before anyone is asked to approve, with production
untouched. (A successful release's build is checked in test_manual_rollback's release, through
``_artifacts.assert_released_the_build``.)"""

from __future__ import annotations

import pytest
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
            sandbox.reseed()
            assert world.snapshot() == seeded
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
