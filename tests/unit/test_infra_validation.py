"""Phase 4: SAM + cfn-lint findings, and the change set compared with the approved plan."""

from __future__ import annotations

import json

import pytest
from _release import RUN_ID, VERSION

from deployment import infra_validation as iv
from deployment.cloudformation import ensure_change_set, template_body


def _config_with(cfg, path):
    return cfg.model_copy(update={"stack": cfg.stack.model_copy(update={"template": str(path)})})


def test_the_sample_template_is_clean(cfg):
    report = iv.template_report(cfg, VERSION)
    assert report["ok"] is True
    assert report["sam"] == {"ok": True, "error": None, "resources": report["sam"]["resources"]}
    assert report["sam"]["resources"] >= 4
    assert report["cfn_lint"]["error"] == 0
    assert iv.report_problems(report) == []


def test_lint_errors_fail_with_rule_and_line(cfg, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "Transform: AWS::Serverless-2016-10-31\nResources:\n  Q:\n    Type: AWS::SQS::Queue\n"
        "    Properties:\n      Bogus: 1\n"
    )
    report = iv.template_report(_config_with(cfg, path), VERSION)
    assert report["ok"] is False
    assert report["cfn_lint"]["error"] == 1
    assert report["cfn_lint"]["findings"][0] | {"message": None} == {
        "rule": "E3002",
        "level": "error",
        "line": 6,
        "message": None,
    }
    assert iv.report_problems(report) == [
        f"cfn-lint E3002 line 6: {report['cfn_lint']['findings'][0]['message']}"
    ]


def test_sam_errors_fail(cfg, tmp_path):
    path = tmp_path / "bad-sam.yaml"
    path.write_text(
        "Transform: AWS::Serverless-2016-10-31\nResources:\n  Fn:\n    Type: AWS::Serverless::Function\n"
        "    Properties:\n      Runtime: python3.12\n"
    )
    report = iv.template_report(_config_with(cfg, path), VERSION)
    assert report["sam"]["ok"] is False
    assert "SAM transform rejected the template" in report["sam"]["error"]
    assert iv.report_problems(report)[0].startswith("SAM: ")


def _approve(cfg, ledger, change_set):
    ledger.write("plan", {"change_set": change_set})


def test_change_set_identical_to_the_plan(cfg, aws, ledger):
    _approve(cfg, ledger, ensure_change_set(cfg, VERSION, RUN_ID, "plan", poll=0))
    result = iv.verify_change_set(cfg, ledger)
    assert result["identical"] is True and result["differences"] == []
    assert result["change_set"]["name"].startswith("release-v1-1-0-deploy-")
    assert result["template_changed"] is False
    again = iv.verify_change_set(cfg, ledger)
    assert again["change_set"]["id"] == result["change_set"]["id"]


def test_change_set_differs_from_the_plan(cfg, aws, ledger, tmp_path):
    _approve(cfg, ledger, ensure_change_set(cfg, VERSION, RUN_ID, "plan", poll=0))
    template = json.loads(template_body(cfg, VERSION))
    template["Resources"]["Extra"] = {"Type": "AWS::SQS::Queue", "Properties": {}}
    path = tmp_path / "t.json"
    path.write_text(json.dumps(template))
    changed = cfg.model_copy(
        update={"stack": cfg.stack.model_copy(update={"template": str(path), "transform_locally": False})}
    )
    result = iv.verify_change_set(changed, ledger)
    assert result["identical"] is False
    assert result["differences"] == ["Extra: not in the approved plan, now Add (Add AWS::SQS::Queue)"]
    assert result["template_changed"] is True


def test_change_set_needs_an_approved_plan(cfg, aws, ledger):
    with pytest.raises(iv.ValidationFailed, match="no plan in the deployment record"):
        iv.verify_change_set(cfg, ledger)


def test_record_keeps_the_other_key(cfg, aws, ledger):
    iv.record(ledger, "template", {"ok": True})
    iv.record(ledger, "change_set", {"identical": True})
    iv.record(ledger, "template", {"ok": False})
    assert ledger.read("validation") == {"template": {"ok": False}, "change_set": {"identical": True}}
