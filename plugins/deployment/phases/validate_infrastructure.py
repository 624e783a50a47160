"""Phase 4, validate infrastructure: the template is sound and the change is the approved one.

``lint_template`` (SAM transform + cfn-lint on the approved build's packaged template, read
back and checked against the approved digest; errors fail) → ``verify_change_set``
(the deploy change set, compared in effect with the plan's; any difference stops
the run before anything changes). Both write their key of ``validation``. Once the change
set is verified, ``verify_change_set`` opens the attempt (``guards.open_attempt``): production
checked against the backup and the approved plan, the task's try number the attempt's id.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from airflow.sdk import TaskGroup

from deployment.run_context import current_release
from deployment.tasks import task

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig

GROUP_ID = "validate_infrastructure"
# The task log: the Task SDK's RuntimeTaskInstance (context["ti"]) has no ``log``.
log = logging.getLogger(__name__)


def group_doc(config: DeploymentConfig) -> str:
    """The group's doc in the UI, with the configuration's names."""
    return (
        "**Phase 4, validate infrastructure:** the template is sound and the change is the approved one.\n\n"
        f"- `lint_template`: the SAM transform and cfn-lint on the approved build's template of stack "
        f"`{config.stack.name}`; any error fails.\n"
        "- `verify_change_set`: the deploy change set must equal, in effect, the one in the approved "
        "plan; then production is checked against the backup and the attempt opens.\n\n"
        "A failure here changed nothing. An AWS error: clear the group. A lint error or a change set "
        "that differs from the plan: the build or the stack is not what was approved, so start a new "
        "release. After an automatic rollback, clear from this group (with downstream) to deploy again."
    )


def validate_infrastructure_group(config: DeploymentConfig) -> TaskGroup:
    with TaskGroup(
        group_id=GROUP_ID,
        tooltip="SAM transform, cfn-lint, and the change set checked against the approved plan",
        doc_md=group_doc(config),
    ) as group:

        @task(task_id="lint_template")
        def lint_template() -> dict[str, Any]:
            """SAM transform and cfn-lint; every finding logged and recorded, errors fail."""
            from airflow.sdk.exceptions import AirflowFailException

            from deployment.aws.artifacts import ArtifactError
            from deployment.checks.template import record, report_problems, template_report

            rel = current_release()
            cfg, ledger = rel.cfg, rel.ledger
            try:
                report = template_report(cfg, ledger)
            except ArtifactError as err:
                record(ledger, "template", {"ok": False, "error": str(err)})
                raise AirflowFailException(f"the approved build cannot be deployed: {err}") from None
            for finding in report["cfn_lint"]["findings"]:
                log.info("cfn-lint %(level)s %(rule)s line %(line)s: %(message)s", finding)
            record(ledger, "template", report)
            if problems := report_problems(report):
                raise AirflowFailException("the template is not valid: " + "; ".join(problems))
            return {"ok": True, **{k: report["cfn_lint"][k] for k in ("error", "warning", "informational")}}

        @task(task_id="verify_change_set", retries=0)
        def verify_change_set() -> dict[str, Any]:
            """The deploy change set must equal, in effect, the one in the approved plan; then the
            attempt opens, once production is checked to be what was backed up and approved."""
            from airflow.sdk import get_current_context
            from airflow.sdk.exceptions import AirflowFailException

            from deployment.aws.artifacts import ArtifactError
            from deployment.checks.template import record
            from deployment.checks.template import verify_change_set as verify
            from deployment.guards import ProductionChanged, open_attempt
            from deployment.run_context import release

            context = get_current_context()
            rel = release(context)
            cfg, ledger = rel.cfg, rel.ledger
            try:
                result = verify(cfg, ledger)
            except ArtifactError as err:
                raise AirflowFailException(f"the approved build cannot be deployed: {err}") from None
            record(ledger, "change_set", result)
            if not result["identical"]:
                raise AirflowFailException(
                    "the change set differs from the approved plan, nothing was changed: "
                    + "; ".join(result["differences"])
                )
            try:
                attempt = open_attempt(cfg, ledger, int(context["ti"].try_number))
            except ProductionChanged as err:
                raise AirflowFailException(str(err)) from err
            return {
                "name": result["change_set"]["name"],
                "id": result["change_set"]["id"],
                "attempt": attempt["id"],
            }

        lint_template() >> verify_change_set()
    return group
