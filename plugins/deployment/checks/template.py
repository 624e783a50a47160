"""Phase 4: the template is valid, and the change about to be made is the one approved.

Both results go into the record's ``validation`` section, each task owning one
key of it (``template``, ``change_set``); the two tasks run one after the other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig
    from deployment.ledger import Ledger

SECTION = "validation"


class ValidationFailed(RuntimeError):
    """The template has errors, or the change set differs from the approved one."""


def sam_check(cfg: DeploymentConfig, version: str, packaged: str) -> dict[str, Any]:
    """Run the SAM transform on the packaged template, whether or not it is submitted transformed."""
    import json

    from deployment.aws.cloudformation import release_parameters
    from deployment.aws.sam import SamTransformError, transform_template

    try:
        transformed = transform_template(packaged, release_parameters(cfg, version), cfg.region)
    except SamTransformError as err:
        return {"ok": False, "error": str(err)}
    resources = json.loads(transformed).get("Resources", {})
    return {"ok": True, "error": None, "resources": len(resources)}


def lint_findings(cfg: DeploymentConfig, packaged: str) -> list[dict[str, Any]]:
    """cfn-lint's findings on the packaged template (SAM included), for the configured region."""
    from cfnlint.api import ManualArgs, lint

    matches = lint(packaged, config=ManualArgs(regions=[cfg.region]))
    findings = [
        {
            "rule": match.rule.id,
            "level": match.rule.severity,
            "message": match.message,
            "line": match.linenumber,
        }
        for match in matches
    ]
    return sorted(findings, key=lambda f: (f["line"], f["rule"]))


def template_report(cfg: DeploymentConfig, ledger: Ledger) -> dict[str, Any]:
    """SAM transform and cfn-lint on the approved build's packaged template (its digest re-checked)."""
    from deployment.aws.cloudformation import release_template

    plan = ledger.read("plan") or {}
    approved = (plan.get("change_set") or {}).get("template_sha256")
    packaged = release_template(cfg, ledger, approved)
    findings = lint_findings(cfg, packaged)
    levels = ("error", "warning", "informational")
    counts = {level: sum(f["level"] == level for f in findings) for level in levels}
    sam = sam_check(cfg, ledger.version, packaged)
    build = ledger.read("artifact") or {}
    return {
        "template": f"s3://{build.get('bucket')}/{build.get('template_key')}",
        "template_sha256": approved or build.get("template_sha256"),
        "sam": sam,
        "cfn_lint": {"findings": findings, **counts},
        "ok": sam["ok"] and counts["error"] == 0,
    }


def report_problems(report: dict[str, Any]) -> list[str]:
    problems = []
    if not report["sam"]["ok"]:
        problems.append(f"SAM: {report['sam']['error']}")
    problems += [
        f"cfn-lint {f['rule']} line {f['line']}: {f['message']}"
        for f in report["cfn_lint"]["findings"]
        if f["level"] == "error"
    ]
    return problems


def verify_change_set(cfg: DeploymentConfig, ledger: Ledger) -> dict[str, Any]:
    """Make the deploy change set and compare it, in effect, with the one in the approved plan."""
    from deployment.aws.change_sets import compare, ensure_change_set

    plan = ledger.read("plan")
    if plan is None:
        raise ValidationFailed(f"no plan in the deployment record {ledger.uri('plan')}: nothing was approved")
    from deployment.aws.cloudformation import release_template

    approved = plan["change_set"].get("template_sha256")
    packaged = release_template(cfg, ledger, approved)
    actual = ensure_change_set(cfg, ledger.version, ledger.run_id, "deploy", ledger=ledger, packaged=packaged)
    differences = compare(plan["change_set"], actual)
    return {
        "approved": {k: plan["change_set"].get(k) for k in ("name", "id", "template_sha256")},
        "change_set": actual,
        "identical": not differences,
        "differences": differences,
        "template_changed": plan["change_set"].get("template_sha256") != actual["template_sha256"],
    }


def record(ledger: Ledger, key: str, value: Any) -> None:
    """Set this task's key of the ``validation`` section, leaving the other task's key alone."""
    section = ledger.read(SECTION) or {}
    section[key] = value
    ledger.write(SECTION, section)
