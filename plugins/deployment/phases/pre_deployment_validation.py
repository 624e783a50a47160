"""Phase 1, pre-deployment validation: staging evidence, then the deployment plan.

``verify_artifact`` proves the release candidate's build (manifest, SHA-256 of every
object, tags resolving to ``commit_sha``, the staging run that published it) on every
path, ``force_deploy`` included: it is what gets deployed, not staging evidence.
``choose_checks`` branches on ``emergency.force_deploy``: either the three checks
run (each fails on its own with the value at fault; ``record_checks`` keeps all
three results in ``staging_checks`` and fails if any did), or ``skip_checks``
records and announces the skip. ``generate_plan`` runs on either path; it fails, with the
plan in the record, when the release changes DynamoDB in a way the running version cannot read
and the run does not acknowledge it with ``force_deploy``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import TaskGroup, TriggerRule, get_current_context

from deployment.run_context import current_release
from deployment.tasks import task

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig

GROUP_ID = "pre_deployment_validation"
CHECKS = ("check_rc_release", "check_staging_workflow", "check_staging_metrics")
RESULT_KEY = "result"


def _report(result: dict[str, Any]) -> dict[str, Any]:
    """Keep the result for ``record_checks`` (also when failing), then fail on a failed check."""
    from airflow.sdk.exceptions import AirflowFailException

    get_current_context()["ti"].xcom_push(key=RESULT_KEY, value=result)
    if not result["ok"]:
        raise AirflowFailException(f"{result['check']} failed: {result['detail']}")
    return result


def refuse_unacknowledged_data_change(plan: dict[str, Any], params: dict[str, Any]) -> None:
    """A release whose data the running version cannot read needs ``force_deploy`` (with its reason,
    from an emergency user: the run contract and the gate proof check both) before anyone approves it."""
    from airflow.sdk.exceptions import AirflowFailException

    from deployment.run_contract import emergency_flags

    data = plan["data_compatibility"]
    if data["compatible"] or emergency_flags(params)["force_deploy"]:
        return
    raise AirflowFailException(
        "this release changes DynamoDB in a way the running version cannot read ("
        + "; ".join(data["reasons"])
        + "): it cannot be shifted gradually nor undone by moving traffic back. Trigger it again "
        "with emergency.force_deploy and a reason to acknowledge it (the plan is in the record)"
    )


def group_doc(config: DeploymentConfig) -> str:
    """The group's doc in the UI, with the configuration's numbers."""
    from deployment.docs import duration, number

    t = config.thresholds
    return (
        "**Phase 1, pre-deployment validation:** the staging evidence, then the plan the approvers see.\n\n"
        "- `verify_artifact`: the release candidate's build, its SHA-256 digests and tags (always runs).\n"
        f"- Staging checks: the GitHub release `{config.github.rc_tag_prefix}X.Y.Z` exists, "
        f"`{config.github.staging_workflow}` succeeded for the commit, and over the last "
        f"{duration(config.timings.staging_window_seconds)} staging's error rate stayed under "
        f"{number(t.error_rate_percent)} % and its mean latency under {number(t.latency_ms)} ms. "
        "`emergency.force_deploy` skips these three.\n"
        "- `generate_plan`: the change-set preview and the deployment plan.\n\n"
        "A failure here changed nothing. Fix what the failed task names (its log, `staging_checks` in "
        "the record), then clear the group. A plan refused for a DynamoDB change the running version "
        "cannot read needs a new run with `emergency.force_deploy` and a reason."
    )


def pre_deployment_validation_group(config: DeploymentConfig) -> TaskGroup:
    with TaskGroup(
        group_id=GROUP_ID,
        tooltip="Staging evidence (GitHub, CloudWatch) and the deployment plan with its change-set preview",
        doc_md=group_doc(config),
    ) as group:
        check_ids = [group.child_id(name) for name in CHECKS]

        @task.branch(task_id="choose_checks")
        def choose_checks() -> str | list[str]:
            """Skip the checks when ``force_deploy`` is set (the skip is recorded and announced)."""
            from deployment.run_contract import emergency_flags

            if emergency_flags(get_current_context()["params"])["force_deploy"]:
                return group.child_id("skip_checks")
            return check_ids

        @task(task_id="skip_checks", retries=2)
        def skip_checks() -> dict[str, Any]:
            """force_deploy: write the skip into ``staging_checks`` and tell the team channel."""
            from deployment.ledger import now_iso
            from deployment.notifications.announce import announce_team
            from deployment.notifications.base import slack_escape
            from deployment.run_contract import emergency_flags

            rel = current_release()
            cfg, ledger, params = rel.cfg, rel.ledger, rel.params
            reason = emergency_flags(params)["reason"]
            record = {
                "skipped": True,
                "reason": reason,
                "requested_by": params["author"],
                "at": now_iso(),
                "announced_at": None,
            }
            ledger.write("staging_checks", record)
            announce_team(
                cfg,
                f":rotating_light: EMERGENCY release {params['version']} ({cfg.environment}): pre-deployment "
                f"validation SKIPPED (force_deploy) by {slack_escape(params['author'])}. "
                f"Reason: {slack_escape(reason)}. "
                f"Run {rel.run_id}. {cfg.approvals.required} approvals are still required.",
            )
            record["announced_at"] = now_iso()
            ledger.write("staging_checks", record)
            return record

        @task(task_id="check_rc_release")
        def check_rc_release() -> dict[str, Any]:
            """The GitHub release rc-X.Y.Z exists."""
            from deployment.checks.github import check_rc_release as check

            rel = current_release()
            return _report(check(rel.cfg, rel.version))

        @task(task_id="check_staging_workflow")
        def check_staging_workflow() -> dict[str, Any]:
            """The latest staging workflow run for the release commit concluded success."""
            from deployment.checks.github import check_staging_workflow as check

            rel = current_release()
            return _report(check(rel.cfg, rel.params["commit_sha"]))

        @task(task_id="check_staging_metrics")
        def check_staging_metrics() -> dict[str, Any]:
            """Staging error rate and latency over the configured window are under the thresholds."""
            from deployment.aws.cloudwatch_metrics import staging_health

            try:
                health = staging_health(current_release().cfg)
            except Exception as err:  # the check could not be made: a failed check, said so
                health = {"ok": False, "detail": f"could not read staging metrics: {err}"}
            return _report({"check": "staging_metrics", **health})

        @task(task_id="record_checks", trigger_rule=TriggerRule.ALL_DONE)
        def record_checks() -> dict[str, Any]:
            """All three results into ``staging_checks``; fails naming every failed check."""
            from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

            from deployment.ledger import now_iso

            rel, ti = current_release(), get_current_context()["ti"]
            if rel.emergency["force_deploy"]:
                raise AirflowSkipException("force_deploy: the checks were skipped")
            results = {}
            for name, task_id in zip(CHECKS, check_ids, strict=True):
                result = ti.xcom_pull(task_ids=task_id, key=RESULT_KEY)
                results[name.removeprefix("check_")] = result or {
                    "check": name.removeprefix("check_"),
                    "ok": False,
                    "detail": f"{task_id} ended without reporting a result (see its log)",
                }
            passed = all(r["ok"] for r in results.values())
            rel.ledger.write(
                "staging_checks", {"skipped": False, "passed": passed, "checks": results, "at": now_iso()}
            )
            if not passed:
                failures = "; ".join(f"{n}: {r['detail']}" for n, r in results.items() if not r["ok"])
                raise AirflowFailException(f"pre-deployment validation failed: {failures}")
            return {"passed": True}

        @task(task_id="verify_artifact")
        def verify_artifact() -> dict[str, Any]:
            """The build of ``commit_sha``: manifest names ``version``, every object's SHA-256 matches,
            the rc tag (and ``vX.Y.Z`` if it exists) resolves to ``commit_sha``, and staging published it.

            Runs under ``force_deploy`` too: an emergency may skip staging evidence, never the proof
            of what is deployed. Every failure is named; the run stops before any approval.
            """
            from airflow.sdk.exceptions import AirflowFailException

            from deployment.aws.artifacts import ArtifactError, verify_build
            from deployment.checks.github import check_staging_build, check_tags
            from deployment.ledger import now_iso

            rel = current_release()
            cfg, ledger = rel.cfg, rel.ledger
            version, commit_sha = rel.version, rel.params["commit_sha"]
            problems, build = [], {}
            try:
                build = verify_build(cfg, commit_sha, version)
            except ArtifactError as err:
                problems.append(f"artifact: {err}")
            checks = [check_tags(cfg, version, commit_sha)]
            if build:
                checks.append(check_staging_build(cfg, commit_sha, build))
            problems += [f"{c['check']}: {c['detail']}" for c in checks if not c["ok"]]
            section = {
                **build,
                "commit_sha": commit_sha,
                "version": version,
                "ok": not problems,
                "problems": problems,
                "checks": {c["check"]: c for c in checks},
                "at": now_iso(),
            }
            ledger.write("artifact", section)
            if problems:
                raise AirflowFailException("the release's build cannot be trusted: " + "; ".join(problems))
            return {k: section[k] for k in ("commit_sha", "manifest_sha256", "template_sha256")}

        @task(task_id="generate_plan", trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
        def generate_plan() -> str:
            """Change-set preview + plan (JSON and Markdown) into the record; returns the Markdown."""
            from deployment.aws.change_sets import ensure_change_set
            from deployment.aws.cloudformation import deployed_version
            from deployment.gate.plan import build_plan, render_markdown
            from deployment.ledger import now_iso
            from deployment.traffic import router_for

            rel = current_release()
            cfg, ledger, params = rel.cfg, rel.ledger, rel.params
            checks = ledger.read("staging_checks")
            if checks is None:
                raise RuntimeError(f"no staging_checks section at {ledger.uri('staging_checks')}")
            from deployment.aws.cloudformation import release_template

            build = ledger.read("artifact")
            change_set = ensure_change_set(
                cfg,
                params["version"],
                rel.run_id,
                "plan",
                ledger=ledger,
                packaged=release_template(cfg, ledger),
            )
            plan = build_plan(
                cfg,
                release=params,
                checks=checks,
                build=build,
                change_set=change_set,
                previous_version=deployed_version(cfg),
                live_colour=router_for(cfg).live_colour(),
                generated_at=now_iso(),
            )
            markdown = render_markdown(plan)
            ledger.write("plan", plan)
            ledger.write_text("plan", markdown, "md")
            refuse_unacknowledged_data_change(plan, params)
            # The Task SDK (3.3) offers no call to set the run's note from a task; the plan is
            # the approval request's body and plan.md in the record instead.
            return markdown

        branch = choose_checks()
        checks = [check_rc_release(), check_staging_workflow(), check_staging_metrics()]
        recorded = record_checks()
        skipped = skip_checks()
        branch >> checks >> recorded
        branch >> skipped
        [recorded, skipped, verify_artifact()] >> generate_plan()
    return group
