"""Phase 3, backup: the recovery point, taken once per release run (a rerun reuses every part of it).

``backup_stack``, ``backup_tables`` and ``tag_amplify`` run side by side, each once it has proven
the approval gate itself (:func:`deployment.gate.proof.prove_gate`);
``write_manifest`` puts their results into the ``backup`` section.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import TaskGroup

from deployment.gate.proof import prove_gate
from deployment.run_context import current_release
from deployment.tasks import task

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig

GROUP_ID = "backup"


def group_doc(config: DeploymentConfig) -> str:
    """The group's doc in the UI, with the configuration's numbers."""
    from deployment.docs import duration

    tables = config.dynamodb.tables
    return (
        "**Phase 3, backup:** the recovery point, taken once per run; each task proves the gate first.\n\n"
        f"- `backup_stack`: the template, parameters and outputs of stack `{config.stack.name}`.\n"
        f"- `backup_tables`: an on-demand backup of each of the {len(tables)} DynamoDB table(s) ("
        + ", ".join(f"`{t}`" for t in tables)
        + f"), each waited for up to {duration(config.timings.stack_timeout_seconds)} until AVAILABLE.\n"
        "- `tag_amplify`: the live colour's Amplify branch tagged with the release and the backup.\n\n"
        "A failure here changed nothing in production. Clear the group with its downstream tasks: a "
        "rerun reuses every part already taken."
    )


def backup_group(config: DeploymentConfig) -> TaskGroup:
    with TaskGroup(
        group_id=GROUP_ID,
        tooltip=f"Stack {config.stack.name} state to S3, DynamoDB backups of "
        f"{len(config.dynamodb.tables)} table(s), the live Amplify branch tagged",
        doc_md=group_doc(config),
    ) as group:

        @task(task_id="backup_stack", pre_execute=prove_gate)
        def backup_stack() -> dict[str, Any]:
            """The live stack's template, parameters and outputs into the record (once per run)."""
            from deployment.backup.take import backup_stack as take

            rel = current_release()
            return take(rel.cfg, rel.ledger)

        @task(task_id="backup_tables", pre_execute=prove_gate)
        def backup_tables() -> list[dict[str, Any]]:
            """An on-demand backup per configured table, named by the run, waited to AVAILABLE."""
            from deployment.backup.take import backup_tables as take

            rel = current_release()
            return take(rel.cfg, rel.version, rel.ledger.run_key)

        @task(task_id="tag_amplify", pre_execute=prove_gate)
        def tag_amplify() -> dict[str, Any]:
            """Tag the live colour's Amplify branch with the release, the backup id and its last good job."""
            from deployment.backup.take import tag_live_amplify

            rel = current_release()
            return tag_live_amplify(rel.cfg, rel.version, rel.run_id, rel.ledger)

        @task(task_id="write_manifest")
        def write_manifest(stack: dict[str, Any], tables: list[dict[str, Any]], amplify: dict[str, Any]):
            """The ``backup`` section: where every part of the recovery point is."""
            from deployment.backup.take import write_manifest as write

            rel = current_release()
            return write(rel.cfg, rel.ledger, stack=stack, tables=tables, amplify=amplify)

        write_manifest(backup_stack(), backup_tables(), tag_amplify())
    return group
