"""The deployment plan: what the approvers approve, as JSON (machines) and Markdown (people).

Pure functions: the caller gathers the release info, the check results, the
change set summary and the live state; nothing here talks to a service.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig

RISK_ORDER = ("low", "medium", "high")
REPLACING = {"True", "Conditional"}

# What each emergency flag (the run's ``emergency`` param) takes away from the release.
EMERGENCY_EFFECTS = {
    "force_deploy": "skips the staging checks (rc release, staging workflow run, staging metrics); "
    "the build's verification, this plan and the approvals still run",
    "skip_monitoring": "skips the post-release monitoring phase: nothing watches the metrics after the "
    "100 % step, so a regression found there is not rolled back automatically",
    "ignore_alarms": "the listed alarms may be in ALARM without failing the alarm baseline, the "
    "infrastructure deploy, any traffic step or monitoring",
}


NOTHING_RISKY = ("no infrastructure changes", "only additions and in-place changes of stateless resources")

# DynamoDB changes the version live now may not survive. CloudFormation replaces a table whose
# KeySchema, LocalSecondaryIndexes or AttributeDefinitions change (a new, empty table under the
# stack); a GlobalSecondaryIndexes change adds or deletes an index in place, and the change set
# does not say which, so a query of the running version may lose its index.
DATA_TABLE_TYPES = ("AWS::DynamoDB::Table", "AWS::DynamoDB::GlobalTable")
DATA_SHAPE_PROPERTIES = (
    "KeySchema",
    "LocalSecondaryIndexes",
    "GlobalSecondaryIndexes",
    "AttributeDefinitions",
)


def _raise(level: str, to: str) -> str:
    return max(level, to, key=RISK_ORDER.index)


def assess_risk(cfg: DeploymentConfig, change_set: dict[str, Any], checks: dict[str, Any]) -> dict[str, Any]:
    """low / medium / high with the reasons, from the change set and how the checks went.

    High: a stateful resource (``stack.stateful_resource_types``) removed or replaced
    (``Replacement`` True or Conditional). Medium: any other removal or replacement, a
    stateful resource modified in place, or the pre-deployment checks skipped.
    """
    stateful = set(cfg.stack.stateful_resource_types)
    level, reasons = "low", []
    for change in change_set.get("changes", []):
        label = f"{change['logical_id']} ({change['resource_type']})"
        is_stateful = change["resource_type"] in stateful
        replaced = change.get("replacement") in REPLACING
        if change["action"] == "Remove":
            level = _raise(level, "high" if is_stateful else "medium")
            reasons.append(f"{label} is removed" + (": stateful, its data goes too" if is_stateful else ""))
        elif replaced:
            level = _raise(level, "high" if is_stateful else "medium")
            how = "may be replaced" if change["replacement"] == "Conditional" else "is replaced"
            reasons.append(f"{label} {how}" + (": stateful, a new empty resource" if is_stateful else ""))
        elif change["action"] == "Modify" and is_stateful:
            level = _raise(level, "medium")
            reasons.append(f"{label} is modified in place: stateful")
    if checks.get("skipped"):
        level = _raise(level, "medium")
        reasons.append(f"pre-deployment checks skipped (force_deploy): {checks.get('reason', '')}")
    if not reasons:
        reasons.append(NOTHING_RISKY[0] if not change_set.get("changes") else NOTHING_RISKY[1])
    return {"level": level, "reasons": reasons}


def data_compatibility(change_set: dict[str, Any]) -> dict[str, Any]:
    """Whether the version live now can still read DynamoDB after this change set.

    ``{"compatible": bool, "reasons": [...]}``. Incompatible: a table removed or replaced (``True``
    or ``Conditional``), or its key schema, indexes or attribute definitions changed. Such a
    release cannot be shifted gradually (both versions serve at once) nor undone by moving traffic
    back, so it needs the ``force_deploy`` acknowledgement (``generate_plan``).
    """
    reasons = []
    for change in change_set.get("changes", []):
        if change["resource_type"] not in DATA_TABLE_TYPES:
            continue
        label = f"{change['logical_id']} ({change['resource_type']})"
        shape = sorted(
            {d["name"] for d in change.get("details", []) if d.get("name") in DATA_SHAPE_PROPERTIES}
        )
        if change["action"] == "Remove":
            reasons.append(f"{label} is removed")
        elif change.get("replacement") in REPLACING:
            how = "may be replaced" if change["replacement"] == "Conditional" else "is replaced"
            reasons.append(f"{label} {how}: a new, empty table")
        elif change["action"] == "Modify" and shape:
            reasons.append(f"{label}: {', '.join(shape)} changed")
    return {"compatible": not reasons, "reasons": reasons}


def api_canary(
    cfg: DeploymentConfig, change_set: dict[str, Any], data: dict[str, Any]
) -> dict[str, Any] | None:
    """How the API function goes live (README "The API canary"); None without ``backend``."""
    if cfg.backend is None:
        return None
    live = change_set.get("parameters", {}).get(cfg.backend.version_parameter)
    if live is None:
        return {
            "canaried": False,
            "detail": f"the build's template declares no {cfg.backend.version_parameter}: the stack update "
            f"serves every API request with the new code at once",
        }
    backend = cfg.backend
    if not live:
        detail = f"alias {backend.alias} does not exist yet: the stack creates it on the version it publishes"
    else:
        detail = (
            f"the stack publishes a new version of {backend.function_name}; alias {backend.alias} stays on "
            f"version {live}, the new version passes the smoke checks by qualifier, then the alias moves "
            "with the frontend's steps and is judged per version"
        )
    if not data.get("compatible", True):
        detail += "; the data change is not undone by moving the alias back"
    return {
        "canaried": bool(live),
        "function": cfg.backend.function_name,
        "from_version": live,
        "detail": detail,
    }


def emergency_items(emergency: dict[str, Any] | None) -> dict[str, Any]:
    """The run's emergency flags that are set, each a high-risk item saying what it skips.

    ``{"flags": [{"flag", "value", "skips", "risk"}], "reason": ...}``; a flag this module does
    not know (a later DAG's ``skip_*``) is listed too, as skipping what its name says.
    """
    emergency = emergency or {}
    flags = [
        {
            "flag": name,
            "value": value,
            "skips": EMERGENCY_EFFECTS.get(name, f"{name}: an emergency override; see the DAG's params"),
            "risk": "high",
        }
        for name, value in sorted(emergency.items())
        if name != "reason" and value
    ]
    return {"flags": flags, "reason": emergency.get("reason", "") if flags else ""}


def deployment_steps(cfg: DeploymentConfig, target_colour: str) -> list[dict[str, str]]:
    shifts = " → ".join(f"{s.weight} % (hold {s.hold_seconds} s)" for s in cfg.traffic.steps)
    smoke = ", ".join(c.name for c in cfg.smoke_tests.checks)
    return [
        {
            "phase": "approval_gate",
            "detail": f"{cfg.approvals.required} distinct approvers (not the author), "
            f"then a {cfg.timings.wait_timer_seconds} s cancellation window",
        },
        {
            "phase": "backup",
            "detail": f"stack {cfg.stack.name} template/parameters/outputs to S3, on-demand "
            f"backups of {', '.join(cfg.dynamodb.tables)}, the live Amplify branch tagged",
        },
        {
            "phase": "validate_infrastructure",
            "detail": "SAM transform and cfn-lint on this build's packaged template (digest re-checked); "
            "the change set is made again from it and must match this plan's",
        },
        {
            "phase": "deploy_infrastructure",
            "detail": f"execute the change set on {cfg.stack.name}; no new "
            f"alarms ({cfg.alarms.prefix}*) before or after",
        },
        {
            "phase": "deploy_frontend",
            "detail": f"release on the idle {target_colour} branch "
            f"{cfg.amplify.branches[target_colour]}, then traffic {shifts}",
        },
        {"phase": "smoke_tests", "detail": smoke},
        {
            "phase": "monitoring",
            "detail": f"{cfg.timings.monitoring_seconds} s: error rate < "
            f"{cfg.thresholds.error_rate_percent} %, latency < {cfg.thresholds.latency_ms:g} ms, no alarms",
        },
        {"phase": "notify", "detail": "release notes, GitHub release, Slack, email, status page"},
    ]


def rollback_plan(cfg: DeploymentConfig, previous_version: str | None, live_colour: str) -> list[str]:
    return [
        f"Traffic back to 100 % on {live_colour} ({cfg.amplify.branches[live_colour]}), the colour live now.",
        f"Stack {cfg.stack.name} back to the backed-up template and parameters "
        f"({cfg.stack.version_parameter}={previous_version or 'unknown'}).",
        "Amplify back: the idle branch's environment restored; the live branch was never changed.",
        "Verify: stack status, smoke tests and metrics on the restored colour.",
        "DynamoDB tables are not restored over live data; the on-demand backups are the recovery point.",
        "Urgent notices: on-call mentions in Slack, incident email, status page incident.",
    ]


def build_plan(
    cfg: DeploymentConfig,
    *,
    release: dict[str, Any],
    checks: dict[str, Any],
    build: dict[str, Any] | None,
    change_set: dict[str, Any],
    previous_version: str | None,
    live_colour: str,
    generated_at: str,
) -> dict[str, Any]:
    target = "green" if live_colour == "blue" else "blue"
    emergency = emergency_items(release.get("emergency"))
    risk = assess_risk(cfg, change_set, checks)
    data = data_compatibility(change_set)
    if not data["compatible"]:
        risk = {
            "level": "high",
            "reasons": [f"data the running version cannot read: {r}" for r in data["reasons"]]
            + [r for r in risk["reasons"] if r not in NOTHING_RISKY],
        }
    if emergency["flags"]:
        reasons = [r for r in risk["reasons"] if r not in NOTHING_RISKY]
        risk = {
            "level": "high",
            "reasons": [f"emergency flag {item['flag']}: {item['skips']}" for item in emergency["flags"]]
            + reasons,
        }
    return {
        "generated_at": generated_at,
        "environment": cfg.environment,
        "release": {
            "version": release["version"],
            "commit_sha": release["commit_sha"],
            "author": release["author"],
            "previous_version": previous_version,
            "stack": cfg.stack.name,
            "live_colour": live_colour,
            "target_colour": target,
        },
        "checks": checks,
        "artifact": artifact_summary(build),
        "steps": deployment_steps(cfg, target),
        "rollback_plan": rollback_plan(cfg, previous_version, live_colour),
        "change_set": change_set,
        "data_compatibility": data,
        "api": api_canary(cfg, change_set, data),
        "emergency": emergency,
        "risk": risk,
    }


def artifact_summary(build: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the approvers approve of the build: its commit, where it is, and its digests."""
    if not build:
        return None
    return {
        "commit_sha": build.get("commit_sha"),
        "manifest": f"s3://{build.get('bucket')}/{build.get('manifest_key')}",
        "manifest_sha256": build.get("manifest_sha256"),
        "template": f"s3://{build.get('bucket')}/{build.get('template_key')}",
        "template_sha256": build.get("template_sha256"),
        "built_at": build.get("built_at"),
        "staging_run": build.get("staging_run"),
        "objects": build.get("objects", []),
    }


def _artifact_md(artifact: dict[str, Any] | None, change_set: dict[str, Any]) -> list[str]:
    if not artifact:
        return ["**No verified build.**"]
    lines = [
        f"- Commit: `{artifact['commit_sha']}`, built {artifact.get('built_at')}",
        f"- Manifest: `{artifact['manifest']}` sha256 `{artifact['manifest_sha256']}`",
        f"- Packaged template: `{artifact['template']}` sha256 `{artifact['template_sha256']}`",
        *[f"- Code object: `{o['key']}` sha256 `{o['sha256']}`" for o in artifact["objects"]],
    ]
    if change_set.get("template_sha256") != artifact["template_sha256"]:
        lines.append("- ⚠️ the change-set preview was NOT computed from this template")
    else:
        lines.append("- The change-set preview below was computed from this template.")
    return lines


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _emergency_md(emergency: dict[str, Any] | None) -> list[str]:
    """The flags as a table right under the risk, user-supplied text (alarms, reason) escaped."""
    from deployment.notifications.base import md_escape

    if not emergency or not emergency.get("flags"):
        return []
    lines = [
        "## Emergency flags (each HIGH risk)",
        f"Reason given: {md_escape(emergency.get('reason') or '(none)')}",
        "",
        "| Flag | Value | What it skips |",
        "|---|---|---|",
    ]
    for item in emergency["flags"]:
        value = item["value"]
        shown = (
            "set"
            if value is True
            else ", ".join(md_escape(v) for v in value)
            if isinstance(value, list)
            else md_escape(value)
        )
        lines.append(f"| **{item['flag']}** | {_cell(shown)} | {_cell(item['skips'])} |")
    return [*lines, ""]


def _data_md(data: dict[str, Any] | None) -> list[str]:
    from deployment.notifications.base import md_escape

    if data is None or data["compatible"]:
        return ["## Data compatibility", "The running version can read DynamoDB after this release.", ""]
    return [
        "## Data compatibility: the running version CANNOT read DynamoDB after this release",
        *[f"- {md_escape(reason)}" for reason in data["reasons"]],
        "",
        "Both versions serve during the traffic steps, and moving traffic back does not undo this: "
        "a rollback restores the stack's template, the on-demand backups are the data's recovery point. "
        "The run needs `emergency.force_deploy` with a reason as its acknowledgement.",
        "",
    ]


def _api_md(api: dict[str, Any] | None) -> list[str]:
    if api is None:
        return []
    heading = "## API canary" if api["canaried"] else "## API canary: NOT canaried"
    return [heading, api["detail"] + ".", ""]


def _checks_md(checks: dict[str, Any]) -> list[str]:
    from deployment.notifications.base import md_escape

    if checks.get("skipped"):
        return [
            "**Skipped (force_deploy).** "
            f"Requested by `{checks.get('requested_by')}` at {checks.get('at')}: "
            f"{md_escape(checks.get('reason'))}",
        ]
    lines = ["| Check | Result | Detail |", "|---|---|---|"]
    for name, result in sorted(checks.get("checks", {}).items()):
        verdict = "✅ pass" if result.get("ok") else "❌ fail"
        lines.append(f"| {name} | {verdict} | {_cell(result.get('detail'))} |")
    return lines


def _changes_md(change_set: dict[str, Any]) -> list[str]:
    digest = change_set["template_sha256"][:12]
    header = f"Change set `{change_set['name']}`, packaged template sha256 `{digest}`."
    if not change_set.get("changes"):
        return [header, "", "No resource changes."]
    lines = [
        header,
        "",
        "| Action | Logical id | Type | Replacement | Scope / details |",
        "|---|---|---|---|---|",
    ]
    for c in change_set["changes"]:
        details = ", ".join(f"{d['attribute']}:{d['name']}" for d in c["details"] if d.get("name")) or ""
        scope = ", ".join(c["scope"])
        lines.append(
            f"| {c['action']} | {_cell(c['logical_id'])} | {_cell(c['resource_type'])} | "
            f"{_cell(c.get('replacement') or '-')} | {_cell(' '.join(x for x in (scope, details) if x))} |"
        )
    return lines


def render_markdown(plan: dict[str, Any]) -> str:
    from deployment.notifications.base import md_escape

    release, risk = plan["release"], plan["risk"]
    parameters = ", ".join(f"{k}={v}" for k, v in plan["change_set"]["parameters"].items())
    lines = [
        f"# Deployment plan: {release['version']} to {plan['environment']}",
        "",
        "## Release",
        f"- Version: **{release['version']}** (now live: {release['previous_version'] or 'unknown'})",
        f"- Commit: `{release['commit_sha']}`",
        f"- Author: `{release['author']}` (cannot approve)",
        f"- Stack: `{release['stack']}`; frontend: {release['live_colour']} live → "
        f"release on {release['target_colour']}",
        "",
        f"## Risk: {risk['level'].upper()}",
        *[f"- {md_escape(reason)}" for reason in risk["reasons"]],
        "",
        *_emergency_md(plan.get("emergency")),
        *_data_md(plan.get("data_compatibility")),
        *_api_md(plan.get("api")),
        "## Pre-deployment checks",
        *_checks_md(plan["checks"]),
        "",
        "## Artifact (the release candidate's build)",
        *_artifact_md(plan.get("artifact"), plan["change_set"]),
        "",
        "## Infrastructure changes",
        f"Parameters: {parameters}",
        "",
        *_changes_md(plan["change_set"]),
        "",
        "## Steps",
        *[f"{n}. **{step['phase']}**: {step['detail']}" for n, step in enumerate(plan["steps"], 1)],
        "",
        "## Rollback plan",
        *[f"- {line}" for line in plan["rollback_plan"]],
        "",
        f"_Generated {plan['generated_at']}._",
    ]
    return "\n".join(lines) + "\n"
