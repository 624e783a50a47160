"""Phase 7, smoke tests: each configured check against production (the colour traffic now goes to).

One task per check (``check_<name>``), so each shows, fails and retries on its own in
the UI; each writes its own record section ``smoke_tests.<name>`` (no two tasks write
one section). ``record_results`` runs whatever happened to them, gathers every
result into the ``smoke_tests`` section, and fails unless all passed (a pass only
counts while the release is live). The checks are the run's configuration snapshot's: a check
added to the file during the release skips, and one removed from it runs in ``record_results``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import TaskGroup, TriggerRule, get_current_context
from airflow.sdk.exceptions import AirflowSkipException

from deployment.run_context import current_release
from deployment.tasks import task

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig
    from deployment.ledger import Ledger

GROUP_ID = "smoke_tests"
SECTION = "smoke_tests"


class SmokeTestsFailed(RuntimeError):
    """A smoke check failed, or did not report."""


def check_section(name: str) -> str:
    return f"{SECTION}.{name}"


def release_colour(cfg: DeploymentConfig, ledger: Ledger, what: str) -> str:
    """The colour the release was deployed to, provided the release is what production serves.

    After a rollback in this run the live colour is the old one again; testing it would
    pass the old version off as the release, so the shared guard refuses with the way out.
    """
    from deployment.guards import ReleaseNotLive, check_release_live

    try:
        check_release_live(cfg, ledger, what)
    except ReleaseNotLive as err:
        raise SmokeTestsFailed(str(err)) from err
    return ledger.read("frontend")["target_colour"]


def run_one(cfg: DeploymentConfig, ledger: Ledger, name: str) -> dict[str, Any]:
    """Run the check ``name`` against the release's colour, record it, and fail when it failed."""
    from deployment.checks.smoke import run_smoke_checks
    from deployment.ledger import now_iso

    # Overwrites any earlier attempt's result first, so a crash below never leaves a stale pass.
    ledger.write(
        check_section(name), {"name": name, "ok": False, "error": "did not finish", "started_at": now_iso()}
    )
    colour = release_colour(cfg, ledger, f"smoke check {name}")
    (result,) = run_smoke_checks(cfg, colour, [name])
    api = _through_alias(cfg, ledger, name, colour)
    if api is not None:
        result = {**result, "api": api, "ok": result["ok"] and api["ok"]}
    ledger.write(check_section(name), result)
    if not result["ok"]:
        failed = result if not result.get("api") or result["api"]["ok"] else result["api"]
        where = f"the API alias {failed['qualifier']}" if failed is not result else colour
        raise SmokeTestsFailed(
            f"smoke check {name} failed on {where} ({failed['method']} {failed['path']}): {failed['error']}"
            + (f"; response: {failed['response_excerpt'][:200]}" if failed.get("response_excerpt") else "")
        )
    return {k: result[k] for k in ("name", "colour", "status", "latency_ms", "ok")}


def _through_alias(cfg: DeploymentConfig, ledger: Ledger, name: str, colour: str) -> dict[str, Any] | None:
    """The check ``name`` through the API alias too, once it serves the new version alone (None
    without an API canary)."""
    from airflow.sdk import BaseHook

    from deployment.aws.lambda_alias import lambda_client
    from deployment.checks.api_smoke import invoke_check
    from deployment.traffic.api_alias import api_versions

    if api_versions(cfg, ledger) is None:
        return None
    check = next(c for c in cfg.smoke_tests.checks if c.name == name)
    connection = BaseHook.get_connection(cfg.connections.app(colour))
    return invoke_check(cfg, lambda_client(cfg), cfg.backend.alias, check, connection)


def gather(cfg: DeploymentConfig, ledger: Ledger, check_tasks: set[str] | None = None) -> dict[str, Any]:
    """Every configured check's result in one ``smoke_tests`` section; raises unless all passed.

    Failures are recorded whatever production serves: the rollback starts on the first
    failed check and may have put traffic back already. A pass is recorded only while
    the release is live.
    """
    from deployment.ledger import now_iso

    results = {c.name: ledger.read(check_section(c.name)) for c in cfg.smoke_tests.checks}
    for name in [
        n for n, result in results.items() if result is None and n not in (check_tasks or set(results))
    ]:
        # A check of the run's configuration with no task in the DAG as parsed now (the file was
        # edited during the release): run here, so that the run's own checks are what counts. A
        # check whose task did not run (its upstream failed) stays "did not report".
        try:
            run_one(cfg, ledger, name)
        except SmokeTestsFailed:
            pass
        results[name] = ledger.read(check_section(name))
    missing = sorted(name for name, result in results.items() if result is None)
    failed = sorted(name for name, result in results.items() if result is not None and not result["ok"])
    if not missing and not failed:
        release_colour(cfg, ledger, "recording the smoke tests")
    summary = {
        "passed": not missing and not failed,
        "checks": results,
        "failed": failed,
        "missing": missing,
        "recorded_at": now_iso(),
    }
    ledger.write(SECTION, summary)
    if missing or failed:
        raise SmokeTestsFailed(f"smoke tests did not all pass: failed {failed}, did not report {missing}")
    return {"passed": True, "checks": sorted(results)}


def group_doc(config: DeploymentConfig) -> str:
    """The group's doc in the UI, with the configuration's checks."""
    from deployment.docs import duration

    checks = config.smoke_tests.checks
    return (
        f"**Phase 7, smoke tests:** {len(checks)} checks against the colour now serving all traffic, "
        f"each its own task, each request timing out after {duration(config.smoke_tests.timeout_seconds)}: "
        + ", ".join(f"`{c.name}`" for c in checks)
        + ". `record_results` gathers them and fails unless all passed.\n\n"
        "A failed check starts the `rollback` group. What it sent and got back is in its log and in "
        "`smoke_tests.<name>` of the record. Clearing only this group after a rollback is refused: "
        "clear from `validate_infrastructure` with its downstream tasks to deploy again."
    )


def smoke_tests_group(config: DeploymentConfig) -> TaskGroup:
    with TaskGroup(
        group_id=GROUP_ID,
        tooltip="Production smoke checks: " + ", ".join(c.name for c in config.smoke_tests.checks),
        doc_md=group_doc(config),
    ) as group:

        @task(trigger_rule=TriggerRule.ALL_DONE)
        def record_results() -> dict[str, Any]:
            """Gather every check's result into ``smoke_tests``; fail unless all passed."""
            rel = current_release()
            dag = get_current_context()["ti"].task.dag
            prefix = f"{GROUP_ID}.check_"
            check_tasks = {t.removeprefix(prefix) for t in dag.task_ids if t.startswith(prefix)}
            return gather(rel.cfg, rel.ledger, check_tasks)

        checks = []
        for check in config.smoke_tests.checks:

            @task(
                task_id=f"check_{check.name}",
                doc_md=f"Smoke check `{check.name}`: {check.method} {check.path}, "
                f"expects HTTP {check.expect_status}"
                + (f" and JSON key `{check.expect_json_key}`" if check.expect_json_key else "")
                + ".",
            )
            def run_check(name: str = check.name) -> dict[str, Any]:
                rel = current_release()
                if name not in {c.name for c in rel.cfg.smoke_tests.checks}:
                    raise AirflowSkipException(
                        f"smoke check {name} is not in this run's configuration (added after it started)"
                    )
                return run_one(rel.cfg, rel.ledger, name)

            checks.append(run_check())
        checks >> record_results()
    return group
