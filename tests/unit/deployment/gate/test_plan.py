"""The deployment plan: risk assessment, contents and Markdown rendering (pure functions)."""

from __future__ import annotations

from _release import AUTHOR, COMMIT, PREVIOUS, VERSION

from deployment.gate.plan import assess_risk, build_plan, render_markdown
from deployment.release.phase_registry import GROUP_IDS

PASSED = {
    "skipped": False,
    "passed": True,
    "checks": {
        "rc_release": {"ok": True, "detail": "GitHub release 'rc-1.1.0' exists"},
        "staging_workflow": {"ok": True, "detail": "run #3 concluded 'success'"},
        "staging_metrics": {"ok": True, "detail": "error rate 0.2 % | latency 120 ms"},
    },
}
SKIPPED = {
    "skipped": True,
    "reason": "security patch CVE-1",
    "requested_by": AUTHOR,
    "at": "2026-01-02T03:04:05",
}


def _change(logical_id, resource_type, action="Modify", replacement=None):
    return {
        "action": action,
        "logical_id": logical_id,
        "resource_type": resource_type,
        "physical_id": None,
        "replacement": replacement,
        "scope": ["Properties"],
        "details": [
            {
                "attribute": "Properties",
                "name": "Code",
                "requires_recreation": "Never",
                "change_source": "DirectModification",
            }
        ],
    }


def _change_set(*changes):
    return {
        "name": "release-v1-1-0-plan-abc",
        "id": "arn:cs",
        "status": "CREATE_COMPLETE",
        "no_changes": not changes,
        "parameters": {"AppVersion": VERSION, "Environment": "production"},
        "template_sha256": "f" * 64,
        "changes": list(changes),
    }


def test_no_changes_is_low(cfg):
    risk = assess_risk(cfg, _change_set(), PASSED)
    assert risk == {"level": "low", "reasons": ["no infrastructure changes"]}


def test_stateless_modify_is_low(cfg):
    risk = assess_risk(cfg, _change_set(_change("ApiFunction", "AWS::Lambda::Function")), PASSED)
    assert risk["level"] == "low"


def test_stateless_replacement_or_removal_is_medium(cfg):
    replaced = _change("ApiFunction", "AWS::Lambda::Function", replacement="True")
    assert assess_risk(cfg, _change_set(replaced), PASSED)["level"] == "medium"
    removed = _change("Queue", "AWS::SQS::Queue", action="Remove")
    assert assess_risk(cfg, _change_set(removed), PASSED)["level"] == "medium"


def test_stateful_modify_in_place_is_medium(cfg):
    risk = assess_risk(cfg, _change_set(_change("ContentTable", "AWS::DynamoDB::Table")), PASSED)
    assert risk["level"] == "medium"
    assert risk["reasons"] == ["ContentTable (AWS::DynamoDB::Table) is modified in place: stateful"]


def test_stateful_replacement_and_removal_are_high(cfg):
    replaced = _change("ContentTable", "AWS::DynamoDB::Table", replacement="Conditional")
    removed = _change("UsersTable", "AWS::DynamoDB::Table", action="Remove")
    risk = assess_risk(cfg, _change_set(replaced, removed), PASSED)
    assert risk["level"] == "high"
    assert any("ContentTable" in r and "may be replaced" in r for r in risk["reasons"])
    assert any("UsersTable" in r and "removed" in r for r in risk["reasons"])


def test_skipped_checks_raise_the_risk(cfg):
    risk = assess_risk(cfg, _change_set(), SKIPPED)
    assert risk["level"] == "medium"
    assert "force_deploy" in risk["reasons"][0] and "CVE-1" in risk["reasons"][0]


BUILD = {
    "commit_sha": COMMIT,
    "bucket": "artifacts",
    "manifest_key": f"builds/{COMMIT}/manifest.json",
    "manifest_sha256": "1" * 64,
    "template_key": f"builds/{COMMIT}/template.yaml",
    "template_sha256": "2" * 64,
    "built_at": "2026-01-01T00:00:00+00:00",
    "staging_run": {"run_id": 7, "workflow": "deploy-staging.yml"},
    "objects": [{"key": f"builds/{COMMIT}/code/api-3333.zip", "sha256": "3" * 64, "size": 10}],
}


def _plan(cfg, checks=PASSED, change_set=None):
    return build_plan(
        cfg,
        release={"version": VERSION, "commit_sha": COMMIT, "author": AUTHOR},
        checks=checks,
        build=BUILD,
        change_set=change_set or _change_set(_change("ApiFunction", "AWS::Lambda::Function")),
        previous_version=PREVIOUS,
        live_colour="blue",
        generated_at="2026-01-02T03:04:05+00:00",
    )


def test_plan_contents(cfg):
    plan = _plan(cfg)
    assert plan["release"] == {
        "version": VERSION,
        "commit_sha": COMMIT,
        "author": AUTHOR,
        "previous_version": PREVIOUS,
        "stack": cfg.stack.name,
        "live_colour": "blue",
        "target_colour": "green",
    }
    assert [s["phase"] for s in plan["steps"]] == list(GROUP_IDS[1:])  # every phase after the plan's own
    assert any("100 % on blue" in line for line in plan["rollback_plan"])
    assert any(f"AppVersion={PREVIOUS}" in line for line in plan["rollback_plan"])
    assert plan["risk"]["level"] == "low"


def test_markdown_shows_release_checks_changes_and_risk(cfg):
    markdown = render_markdown(_plan(cfg))
    assert markdown.startswith(f"# Deployment plan: {VERSION} to {cfg.environment}")
    assert f"`{COMMIT}`" in markdown and f"`{AUTHOR}` (cannot approve)" in markdown
    assert "## Risk: LOW" in markdown
    assert "| staging_metrics | ✅ pass | error rate 0.2 % \\| latency 120 ms |" in markdown
    assert "| Modify | ApiFunction | AWS::Lambda::Function | - | Properties Properties:Code |" in markdown
    assert "## Rollback plan" in markdown


def test_markdown_shows_the_force_deploy_skip(cfg):
    markdown = render_markdown(_plan(cfg, checks=SKIPPED))
    assert "**Skipped (force_deploy).**" in markdown
    # The reason is the user's text: Markdown-escaped (it renders as "CVE-1").
    assert f"Requested by `{AUTHOR}`" in markdown and "CVE\\-1" in markdown
    assert "## Risk: MEDIUM" in markdown


def test_markdown_without_changes(cfg):
    assert "No resource changes." in render_markdown(_plan(cfg, change_set=_change_set()))


def test_plan_shows_the_build_and_that_the_preview_comes_from_its_template(cfg):
    plan = _plan(cfg, change_set={**_change_set(), "template_sha256": "2" * 64})
    assert plan["artifact"]["manifest_sha256"] == "1" * 64
    assert plan["artifact"]["template_sha256"] == "2" * 64
    assert plan["artifact"]["manifest"] == f"s3://artifacts/builds/{COMMIT}/manifest.json"
    markdown = render_markdown(plan)
    assert "## Artifact (the release candidate's build)" in markdown
    assert f"Manifest: `s3://artifacts/builds/{COMMIT}/manifest.json` sha256 `{'1' * 64}`" in markdown
    template = f"s3://artifacts/builds/{COMMIT}/template.yaml"
    assert f"Packaged template: `{template}` sha256 `{'2' * 64}`" in markdown
    assert f"`builds/{COMMIT}/code/api-3333.zip` sha256 `{'3' * 64}`" in markdown
    assert "The change-set preview below was computed from this template." in markdown


def test_plan_warns_when_the_preview_is_not_from_the_build(cfg):
    markdown = render_markdown(_plan(cfg, change_set={**_change_set(), "template_sha256": "9" * 64}))
    assert "the change-set preview was NOT computed from this template" in markdown


# ------------------------------------------------------------------ emergency flags
EMERGENCY = {
    "force_deploy": True,
    "skip_monitoring": True,
    "ignore_alarms": ["bayon-<!channel>-5xx"],
    "reason": "security patch *CVE-1* <!channel>",
}


def _emergency_plan(cfg, emergency):
    return build_plan(
        cfg,
        release={"version": VERSION, "commit_sha": COMMIT, "author": AUTHOR, "emergency": emergency},
        checks=PASSED,
        build=BUILD,
        change_set=_change_set(),
        previous_version=PREVIOUS,
        live_colour="blue",
        generated_at="2026-01-02T03:04:05+00:00",
    )


def test_every_emergency_flag_is_a_high_risk_item_with_what_it_skips(cfg):
    plan = _emergency_plan(cfg, EMERGENCY)
    items = {item["flag"]: item for item in plan["emergency"]["flags"]}
    assert set(items) == {"force_deploy", "skip_monitoring", "ignore_alarms"}
    assert all(item["risk"] == "high" for item in items.values())
    assert "staging" in items["force_deploy"]["skips"]
    assert "monitoring" in items["skip_monitoring"]["skips"]
    assert items["ignore_alarms"]["value"] == ["bayon-<!channel>-5xx"]
    assert plan["emergency"]["reason"] == EMERGENCY["reason"]
    assert plan["risk"]["level"] == "high"  # no infrastructure change: the flags alone
    assert sum(reason.startswith("emergency flag") for reason in plan["risk"]["reasons"]) == 3


def test_a_single_flag_is_high_and_no_flag_adds_nothing(cfg):
    only = _emergency_plan(cfg, {"skip_monitoring": True, "reason": "monitoring backend down today"})
    assert only["risk"]["level"] == "high"
    assert [i["flag"] for i in only["emergency"]["flags"]] == ["skip_monitoring"]
    calm = _emergency_plan(cfg, {"force_deploy": False, "skip_monitoring": False, "ignore_alarms": []})
    assert calm["emergency"] == {"flags": [], "reason": ""}
    assert calm["risk"] == {"level": "low", "reasons": ["no infrastructure changes"]}


def test_an_unknown_flag_is_shown_too(cfg):
    plan = _emergency_plan(cfg, {"skip_smoke_tests": True, "reason": "a flag a later DAG adds"})
    (item,) = plan["emergency"]["flags"]
    assert item["flag"] == "skip_smoke_tests" and item["risk"] == "high"
    assert "skip_smoke_tests" in item["skips"]


def test_markdown_puts_the_flags_under_the_risk_escaped(cfg):
    markdown = render_markdown(_emergency_plan(cfg, EMERGENCY))
    risk = markdown.index("## Risk: HIGH")
    section = markdown.index("## Emergency flags")
    assert risk < section < markdown.index("## Pre-deployment checks")
    body = markdown[section : markdown.index("## Pre-deployment checks")]
    for flag in ("force_deploy", "skip_monitoring", "ignore_alarms"):
        assert flag in body
    assert "<!channel>" not in markdown and "&lt;\\!channel&gt;" in body


def _described(logical_id, action="Modify", replacement="False", properties=(), resource_type=None):
    """One ``ResourceChange`` as CloudFormation's DescribeChangeSet returns it."""
    return {
        "Type": "Resource",
        "ResourceChange": {
            "Action": action,
            "LogicalResourceId": logical_id,
            "PhysicalResourceId": f"bayon-{logical_id.lower()}",
            "ResourceType": resource_type or "AWS::DynamoDB::Table",
            "Replacement": replacement,
            "Scope": ["Properties"] if properties else [],
            "Details": [
                {
                    "Target": {"Attribute": "Properties", "Name": name, "RequiresRecreation": recreation},
                    "Evaluation": "Static",
                    "ChangeSource": "DirectModification",
                }
                for name, recreation in properties
            ],
        },
    }


def _from_aws(*described):
    from deployment.aws.change_sets import summarize

    return _change_set(*summarize(list(described)))


def test_a_table_whose_key_schema_changes_is_data_the_running_version_cannot_read(cfg):
    change_set = _from_aws(
        _described("ContentTable", replacement="True", properties=[("KeySchema", "Always")]),
        _described("UsersTable", properties=[("GlobalSecondaryIndexes", "Never")]),
        _described("ApiFunction", properties=[("Code", "Never")], resource_type="AWS::Lambda::Function"),
    )
    plan = _plan(cfg, change_set=change_set)
    assert plan["data_compatibility"] == {
        "compatible": False,
        "reasons": [
            "ContentTable (AWS::DynamoDB::Table) is replaced: a new, empty table",
            "UsersTable (AWS::DynamoDB::Table): GlobalSecondaryIndexes changed",
        ],
    }
    assert plan["risk"]["level"] == "high"
    assert plan["risk"]["reasons"][0].startswith("data the running version cannot read: ContentTable")
    markdown = render_markdown(plan)
    assert "## Data compatibility: the running version CANNOT read DynamoDB after this release" in markdown
    assert "needs `emergency.force_deploy` with a reason" in markdown


def test_in_place_table_changes_and_other_resources_keep_the_data_readable(cfg):
    change_set = _from_aws(
        _described("ContentTable", properties=[("BillingMode", "Never"), ("Tags", "Never")]),
        _described("ApiFunction", properties=[("Code", "Never")], resource_type="AWS::Lambda::Function"),
    )
    plan = _plan(cfg, change_set=change_set)
    assert plan["data_compatibility"] == {"compatible": True, "reasons": []}
    assert "The running version can read DynamoDB after this release." in render_markdown(plan)


def test_a_removed_table_is_incompatible(cfg):
    plan = _plan(cfg, change_set=_from_aws(_described("ContentTable", action="Remove", replacement=None)))
    assert plan["data_compatibility"]["reasons"] == ["ContentTable (AWS::DynamoDB::Table) is removed"]


def test_generate_plan_refuses_an_unacknowledged_data_change_and_takes_force_deploy():
    import pytest
    from airflow.sdk.exceptions import AirflowFailException

    from deployment.phases.pre_deployment_validation import refuse_unacknowledged_data_change

    plan = {"data_compatibility": {"compatible": False, "reasons": ["ContentTable (T) is removed"]}}
    with pytest.raises(AirflowFailException, match=r"cannot read \(ContentTable \(T\) is removed\)"):
        refuse_unacknowledged_data_change(plan, {"emergency": {}})
    acknowledged = {"emergency": {"force_deploy": True, "reason": "the new key schema is migrated"}}
    refuse_unacknowledged_data_change(plan, acknowledged)
    refuse_unacknowledged_data_change({"data_compatibility": {"compatible": True, "reasons": []}}, {})
