"""Phase 4: SAM + cfn-lint findings, and the change set compared with the approved plan."""

from __future__ import annotations

import pytest
from _release import COMMIT, RUN_ID, VERSION

from deployment.aws.artifacts import ArtifactError
from deployment.aws.change_sets import compare, ensure_change_set
from deployment.checks import template as iv


def test_the_release_build_is_clean(cfg, aws, ledger):
    _approve(cfg, ledger, ensure_change_set(cfg, VERSION, RUN_ID, "plan", ledger=ledger, poll=0))
    report = iv.template_report(cfg, ledger)
    assert report["ok"] is True
    assert report["template"] == f"s3://{cfg.artifacts.bucket}/builds/{COMMIT}/template.yaml"
    assert report["template_sha256"] == ledger.read("artifact")["template_sha256"]
    assert report["sam"] == {"ok": True, "error": None, "resources": report["sam"]["resources"]}
    assert report["sam"]["resources"] >= 4
    assert report["cfn_lint"]["error"] == 0
    assert iv.report_problems(report) == []


def test_the_report_refuses_a_template_other_than_the_approved_one(cfg, aws, ledger):
    _approve(cfg, ledger, ensure_change_set(cfg, VERSION, RUN_ID, "plan", ledger=ledger, poll=0))
    key = f"builds/{COMMIT}/template.yaml"
    aws["s3"].put_object(Bucket=cfg.artifacts.bucket, Key=key, Body=aws["builds"][VERSION] + "# again\n")
    with pytest.raises(ArtifactError, match="not the .* that was verified and approved"):
        iv.template_report(cfg, ledger)
    with pytest.raises(ArtifactError, match="not the .* that was verified and approved"):
        iv.verify_change_set(cfg, ledger)


def test_lint_errors_fail_with_rule_and_line(cfg):
    bad = (
        "Transform: AWS::Serverless-2016-10-31\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n"
        "    Properties:\n      Bogus: 1\n"
    )
    findings = iv.lint_findings(cfg, bad)
    assert [f | {"message": None} for f in findings if f["level"] == "error"] == [
        {"rule": "E3002", "level": "error", "line": 6, "message": None}
    ]
    report = {"sam": {"ok": True}, "cfn_lint": {"findings": findings}}
    assert iv.report_problems(report) == [f"cfn-lint E3002 line 6: {findings[0]['message']}"]


def test_sam_errors_fail(cfg):
    bad = (
        "Transform: AWS::Serverless-2016-10-31\nResources:\n  Fn:\n    Type: AWS::Serverless::Function\n"
        "    Properties:\n      Runtime: python3.12\n"
    )
    sam = iv.sam_check(cfg, VERSION, bad)
    assert sam["ok"] is False
    assert "SAM transform rejected the template" in sam["error"]


def _approve(cfg, ledger, change_set):
    ledger.write("plan", {"change_set": change_set})


def test_change_set_identical_to_the_plan(cfg, aws, ledger):
    _approve(cfg, ledger, ensure_change_set(cfg, VERSION, RUN_ID, "plan", ledger=ledger, poll=0))
    result = iv.verify_change_set(cfg, ledger)
    assert result["identical"] is True and result["differences"] == []
    assert result["change_set"]["name"].startswith("release-v1-1-0-deploy-")
    assert result["template_changed"] is False
    again = iv.verify_change_set(cfg, ledger)
    assert again["change_set"]["id"] == result["change_set"]["id"]


def test_change_set_differs_from_the_plan(cfg, aws, ledger):
    """A plan approved on another template (digest) and another change: both differences named."""
    approved = ensure_change_set(cfg, VERSION, RUN_ID, "plan", ledger=ledger, poll=0)
    _approve(cfg, ledger, {**approved, "changes": [], "template_sha256": "0" * 64})
    differences = compare(ledger.read("plan")["change_set"], approved)
    now = approved["template_sha256"]
    assert differences[0] == f"packaged template differs: approved sha256 {'0' * 64}, now {now}"
    assert any(d.startswith("ApiFunction: not in the approved plan") for d in differences)


def test_change_set_needs_an_approved_plan(cfg, aws, ledger):
    with pytest.raises(iv.ValidationFailed, match="no plan in the deployment record"):
        iv.verify_change_set(cfg, ledger)


def test_record_keeps_the_other_key(cfg, aws, ledger):
    iv.record(ledger, "template", {"ok": True})
    iv.record(ledger, "change_set", {"identical": True})
    iv.record(ledger, "template", {"ok": False})
    assert ledger.read("validation") == {"template": {"ok": False}, "change_set": {"identical": True}}
