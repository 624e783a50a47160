"""Execute the validated change set, then wait for the stack in the triggerer."""

from __future__ import annotations

import hashlib
import time
from datetime import timedelta
from typing import Any

from airflow.providers.amazon.aws.hooks.cloud_formation import CloudFormationHook
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields

from deployment.checks.alarms import SECTION
from deployment.operators.configured_aws import ConfiguredAwsOperator
from deployment.operators.links import CloudFormationChangeSetLink, CloudFormationStackLink, quoted

# States a stack can be updated from.
STABLE = frozenset(
    {
        "CREATE_COMPLETE",
        "UPDATE_COMPLETE",
        "UPDATE_ROLLBACK_COMPLETE",
        "IMPORT_COMPLETE",
        "IMPORT_ROLLBACK_COMPLETE",
    }
)


class ChangeSetError(RuntimeError):
    """The change set to execute is missing, unapproved, or not in an executable state."""


def change_set_to_execute(validation: dict[str, Any] | None, uri: str) -> dict[str, Any]:
    """The change set phase 4 validated, from the ``validation`` section; raises unless it was approved."""
    if not validation or not validation.get("change_set"):
        raise ChangeSetError(f"no validated change set in {uri}: validate_infrastructure has not run")
    change_set = validation["change_set"].get("change_set", validation["change_set"])
    if "identical" in validation["change_set"] and not validation["change_set"]["identical"]:
        raise ChangeSetError(
            f"the change set differs from the approved plan: {validation['change_set'].get('differences')}"
        )
    if not change_set.get("name"):
        raise ChangeSetError(f"the validated change set in {uri} has no name")
    return change_set


def request_token(change_set_id: str) -> str:
    """An ExecuteChangeSet ClientRequestToken per change set: a retried call is the same request."""
    return "deploy-" + hashlib.sha256(change_set_id.encode()).hexdigest()[:40]


class ExecuteChangeSetOperator(ConfiguredAwsOperator[CloudFormationHook]):
    """Execute the change set validated in phase 4 and wait, deferred, for ``UPDATE_COMPLETE``,
    guarded by CloudWatch alarms.

    First the alarms baseline (``alarm_guard.alarms_baseline``: alarms already firing stop
    the run unless ``emergency.ignore_alarms`` lists them). Right before executing, the approved
    build is proven again (``artifacts.prove_approved_build``: every pinned S3 version still
    holds the approved bytes, and the template pins exactly those; recorded as
    ``infrastructure.build_proof``): a failure stops the task with nothing executed. Writes
    ``infrastructure.changed: true`` before executing, so a failure mid-update is rolled back.
    Does nothing when the change set already ran or the stack is already at the release's
    version; waits without executing again when an update is already in progress. Once the
    stack is settled, what runs is read back (``running_build.read_back_release``: each
    function's ``CodeSha256`` against the approved package, ``infrastructure.running_build``)
    and a function that does not run its approved package fails the task, so the release is
    rolled back. Last, any alarm that went to ALARM since the baseline fails it
    (``alarm_guard.alarms_after``).
    """

    aws_hook_class = CloudFormationHook
    template_fields = aws_template_fields("stack_name", "poll_interval")
    operator_extra_links = (CloudFormationStackLink(), CloudFormationChangeSetLink())
    ui_color = "#f9c74f"

    def __init__(
        self,
        *,
        stack_name: str | None = None,
        poll_interval: float | None = None,
        **kwargs: Any,
    ) -> None:
        """
        :param stack_name: the stack to update; None: the config's ``stack.name``.
        :param poll_interval: seconds between two looks at the stack, in the triggerer; None: the
            config's ``timings.status_poll_seconds``.
        """
        super().__init__(**kwargs)
        self.stack_name = stack_name
        self.poll_interval = poll_interval

    def _settings(self, cfg: Any) -> tuple[str, str, str, float]:
        return (
            self.stack_name or cfg.stack.name,
            *self.aws_settings(cfg),
            float(self.poll_interval or cfg.timings.status_poll_seconds),
        )

    def execute(self, context: Any) -> dict[str, Any] | None:
        from deployment.checks.alarms import alarms_after, alarms_baseline
        from deployment.run_context import release

        rel = release(context)
        alarms_baseline(rel.cfg, rel.ledger, rel.emergency)
        done = self._execute(context, rel)  # defers while the stack updates
        self._read_back(rel)
        return {**done, **alarms_after(rel.cfg, rel.ledger, rel.emergency)}

    def _read_back(self, rel: Any) -> None:
        """Fail unless every function of the stack runs the approved build's package."""
        from airflow.sdk.exceptions import AirflowFailException

        from deployment.aws.cloudformation import live_stack
        from deployment.checks.running_build import read_back_release
        from deployment.rollback.ownership import template_sha256
        from deployment.run_context import update_section
        from deployment.traffic.api_alias import versions_after_update

        running = read_back_release(rel.cfg, rel.ledger, self._settings(rel.cfg)[0])
        # What this attempt's update left: a later rollback of this run undoes the stack only while
        # it still runs this template (deployment.rollback.ownership).
        stack = live_stack(rel.cfg)
        left = template_sha256(stack["template_body"])
        parameters = change_set_to_execute(rel.ledger.read("validation"), "").get("parameters") or {}
        api = versions_after_update(rel.cfg, parameters, stack["outputs"])
        update_section(rel.ledger, SECTION, running_build=running, stack_template_sha256=left, api=api)
        if not running["ok"]:
            raise AirflowFailException(
                "production does not run the approved build: " + "; ".join(running["problems"])
            )
        if api is not None and not api["ok"]:
            raise AirflowFailException(
                f"the stack update moved alias {api['alias']}: it serves {api['alias_after_update']}, "
                f"not version {api['previous']} alone, before any traffic step"
            )
        self.log.info("Read back: %d function(s) run the approved build", len(running["functions"]))
        if api is not None and api["new"] != api["previous"]:
            self._smoke_new_version(rel, api["new"])

    def _smoke_new_version(self, rel: Any, version: str) -> None:
        """The smoke checks against the new API version by its qualifier, before it gets any share."""
        from airflow.sdk.exceptions import AirflowFailException

        from deployment.checks.api_smoke import run_api_checks
        from deployment.run_context import update_section
        from deployment.traffic import router_for

        smoke = run_api_checks(rel.cfg, version, router_for(rel.cfg).live_colour())
        update_section(rel.ledger, SECTION, api_smoke=smoke)
        if not smoke["ok"]:
            failed = [f"{r['name']}: {r.get('error')}" for r in smoke["results"] if not r["ok"]]
            raise AirflowFailException(
                f"the new API version {version} failed its smoke checks before any traffic: "
                + "; ".join(failed)
            )
        self.log.info("API version %s passed %d smoke checks by qualifier", version, len(smoke["results"]))

    def _prove_build(self, rel: Any) -> dict[str, Any]:
        """The approved build proven again (pinned versions, their bytes); fails the task otherwise."""
        from airflow.sdk.exceptions import AirflowFailException

        from deployment.aws.artifacts import ArtifactError, prove_approved_build
        from deployment.ledger import now_iso
        from deployment.run_context import update_section

        build = rel.ledger.read("artifact") or {}
        try:
            proof = prove_approved_build(rel.cfg, build)
        except ArtifactError as err:
            update_section(rel.ledger, SECTION, build_proof={"ok": False, "error": str(err), "at": now_iso()})
            raise AirflowFailException(
                f"the approved build cannot be deployed, nothing was executed: {err}"
            ) from None
        for replaced in proof["replaced"]:
            self.log.warning(
                "s3://%s/%s was written since it was approved (newest version %s); the change set "
                "deploys the approved version %s",
                build["bucket"],
                replaced["key"],
                replaced["newest_version_id"],
                replaced["version_id"],
            )
        return {**proof, "at": now_iso()}

    def _execute(self, context: Any, rel: Any) -> dict[str, Any]:
        """Execute the change set and defer, or return when there is nothing to execute."""
        from deployment.run_context import update_section
        from deployment.triggers.cloudformation import StackUpdateTrigger

        cfg = rel.cfg
        stack_name, conn_id, region, poll = self._settings(cfg)
        change_set = change_set_to_execute(rel.ledger.read("validation"), rel.ledger.uri("validation"))
        hook = self.shared_hook(cfg)
        cfn = hook.conn
        stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
        CloudFormationStackLink.persist(
            context, self, region, hook.conn_partition, stack_id=quoted(stack["StackId"])
        )
        recorded = {"stack_name": stack_name, "change_set_name": change_set["name"]}

        if change_set.get("no_changes"):
            self.log.info("Change set %s has no changes: nothing to execute", change_set["name"])
            update_section(rel.ledger, SECTION, **recorded, status="no_changes", changed=False)
            return {"status": "no_changes"}

        described = cfn.describe_change_set(StackName=stack_name, ChangeSetName=change_set["name"])
        CloudFormationChangeSetLink.persist(
            context,
            self,
            region,
            hook.conn_partition,
            stack_id=quoted(stack["StackId"]),
            change_set_id=quoted(described["ChangeSetId"]),
        )
        recorded["change_set_id"] = described["ChangeSetId"]
        deployed = self._already_deployed(rel, stack, recorded)
        if deployed:
            return deployed
        since = self._start_execution(rel, cfn, stack, described, recorded)
        timeout = cfg.timings.stack_timeout_seconds
        self.defer(
            trigger=StackUpdateTrigger(
                stack_name=stack_name,
                aws_conn_id=conn_id,
                region_name=region,
                poll_interval=poll,
                deadline=time.time() + timeout,
                since=since,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=timeout + 5 * poll),
        )

    def _already_deployed(self, rel: Any, stack: dict, recorded: dict[str, Any]) -> dict[str, Any] | None:
        """When the stack already runs the release's version, settled: what to record and return."""
        from deployment.run_context import update_section

        params = {p["ParameterKey"]: p.get("ParameterValue") for p in stack.get("Parameters", [])}
        if params.get(rel.cfg.stack.version_parameter) != rel.version or stack["StackStatus"] not in STABLE:
            return None
        why = f"the stack already runs {rel.version}"
        self.log.info("Not executing %s: %s", recorded["change_set_name"], why)
        previous = rel.ledger.read(SECTION) or {}
        update_section(
            rel.ledger,
            SECTION,
            **recorded,
            status=stack["StackStatus"],
            skipped=why,
            changed=bool(previous.get("changed")),
        )
        return {"status": stack["StackStatus"], "skipped": why}

    def _start_execution(self, rel: Any, cfn: Any, stack: dict, described: dict, recorded: dict) -> str:
        """Execute the change set, or find it executing already; when the stack update started.

        Any other state of the change set is an error that names the way out."""
        from deployment.ledger import now_iso
        from deployment.run_context import update_section

        stack_name, name = recorded["stack_name"], recorded["change_set_name"]
        execution = described.get("ExecutionStatus")
        if execution == "EXECUTE_IN_PROGRESS":
            self.log.info("Change set %s is executing already: waiting for it", name)
            return (rel.ledger.read(SECTION) or {}).get("executed_at") or now_iso()
        if execution == "EXECUTE_COMPLETE":
            raise ChangeSetError(
                f"change set {name} was executed, yet stack {stack_name} does not run "
                f"{rel.version} (it was rolled back): clear validate_infrastructure with its downstream "
                "tasks to validate a new change set and deploy again"
            )
        if execution != "AVAILABLE":
            raise ChangeSetError(
                f"change set {name} cannot be executed: status {described.get('Status')}, "
                f"execution status {execution}: {described.get('StatusReason') or 'no reason given'}"
            )
        if stack["StackStatus"] not in STABLE:
            raise ChangeSetError(f"stack {stack_name} is {stack['StackStatus']}: it cannot be updated now")
        proof = self._prove_build(rel)
        since = now_iso()
        # Recorded before executing: from here on, a failure means the stack must be rolled back.
        update_section(
            rel.ledger,
            SECTION,
            **recorded,
            build_proof=proof,
            changed=True,
            executed_at=since,
            stack_status_before=stack["StackStatus"],
            status="EXECUTING",
        )
        cfn.execute_change_set(
            StackName=stack_name,
            ChangeSetName=name,
            ClientRequestToken=request_token(described["ChangeSetId"]),
        )
        self.log.info("Executed change set %s on %s", name, stack_name)
        return since

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        from deployment.checks.alarms import alarms_after
        from deployment.ledger import now_iso
        from deployment.run_context import release, update_section
        from deployment.triggers.events import resumed_event

        event = resumed_event(event, "status")
        rel = release(context)
        update_section(
            rel.ledger,
            SECTION,
            status=event.get("stack_status"),
            completed_at=now_iso(),
            events=event.get("events", []),
            error=event.get("message") if event["status"] != "success" else None,
        )
        if event["status"] != "success":
            raise ChangeSetError(f"the infrastructure update failed: {event.get('message')}")
        self.log.info("Stack update complete: %s", event.get("stack_status"))
        self._read_back(rel)
        return {"status": event.get("stack_status"), **alarms_after(rel.cfg, rel.ledger, rel.emergency)}
