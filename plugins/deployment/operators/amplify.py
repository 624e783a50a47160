"""Start the RELEASE job on the idle Amplify branch, then wait for it in the triggerer."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.utils.mixins import aws_template_fields

from deployment.hooks.aws import AmplifyHook
from deployment.operators.configured_aws import ConfiguredAwsOperator
from deployment.operators.links import AmplifyJobLink, quoted

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig
    from deployment.ledger import Ledger

SECTION = "frontend"


class AmplifyBuildError(RuntimeError):
    """The frontend build did not succeed."""


def prepare_idle(cfg: DeploymentConfig, ledger: Ledger, version: str) -> dict[str, Any]:
    """Choose the target colour (once per run) and set the release's variables on its branch."""
    from deployment.aws import amplify
    from deployment.ledger import now_iso
    from deployment.traffic import router_for
    from deployment.traffic.router import TrafficRoutingError, other

    section = ledger.read(SECTION) or {}
    client = amplify.client(cfg)
    if section.get("target_colour"):
        live, target = section["live_colour_before"], section["target_colour"]
    else:
        current = router_for(cfg).weights()
        serving = [colour for colour, weight in current.items() if weight > 0]
        if len(serving) != 1:
            raise TrafficRoutingError(
                f"traffic is not at rest on one colour (weights {current}): another release is in flight "
                "or was not rolled back; restore one colour to 100 before releasing"
            )
        live = serving[0]
        target = other(live)
        live_branch = client.get_branch(appId=cfg.amplify.app_id, branchName=cfg.amplify.branches[live])[
            "branch"
        ]
        section.update(
            live_colour_before=live,
            target_colour=target,
            target_branch=cfg.amplify.branches[target],
            version_before=(live_branch.get("environmentVariables") or {}).get(cfg.amplify.version_variable),
            version=version,
            chosen_at=now_iso(),
        )
    prepared = amplify.prepare_branch(cfg, target, version, amplify=client)
    section["prepared"] = {**prepared, "at": now_iso()}
    ledger.write(SECTION, section)
    return {"live_colour_before": live, "target_colour": target, "variables_changed": prepared["changed"]}


class AmplifyReleaseOperator(ConfiguredAwsOperator[AmplifyHook]):
    """Prepare the idle colour's branch (:func:`prepare_idle`), then start (or find, on a rerun) the
    release's RELEASE job on it and wait for ``SUCCEED``.

    The job builds the release's ``commit_sha`` (StartJob ``commitId``); the commit Amplify
    reports for it (GetJob) is checked and recorded as ``frontend.amplify_job.commit_id``.
    """

    aws_hook_class = AmplifyHook
    template_fields = aws_template_fields("poll_interval")
    operator_extra_links = (AmplifyJobLink(),)
    ui_color = "#90be6d"

    def __init__(self, *, poll_interval: float | None = None, **kwargs: Any) -> None:
        """
        :param poll_interval: seconds between two looks at the Amplify job, in the triggerer; None:
            the config's ``timings.status_poll_seconds``.
        """
        super().__init__(**kwargs)
        self.poll_interval = poll_interval

    def execute(self, context: Any) -> dict[str, Any] | None:
        from deployment.aws.amplify import FAILED, SUCCEEDED, start_release
        from deployment.run_context import release, update_section
        from deployment.triggers.amplify import AmplifyJobTrigger

        rel = release(context)
        cfg = rel.cfg
        conn_id, region = self.aws_settings(cfg)
        poll = float(self.poll_interval or cfg.timings.status_poll_seconds)
        target = prepare_idle(cfg, rel.ledger, rel.version)["target_colour"]
        hook = self.shared_hook(cfg)
        commit_sha = rel.params["commit_sha"]
        job = start_release(cfg, target, rel.version, rel.run_key, commit_sha, amplify=hook.conn)
        AmplifyJobLink.persist(
            context,
            self,
            region,
            hook.conn_partition,
            app_id=quoted(cfg.amplify.app_id),
            branch=quoted(job["branch"]),
            job_id=quoted(job["job_id"]),
        )
        self.log.info(
            "%s RELEASE job %s on %s (%s)",
            "Started" if job["started"] else "Found",
            job["job_id"],
            job["branch"],
            job["status"],
        )
        update_section(rel.ledger, SECTION, amplify_job={**job, "version": rel.version})
        if job["status"] == SUCCEEDED:
            return self._finish(rel, {"status": "success", "job_status": SUCCEEDED, "job_id": job["job_id"]})
        if job["status"] in FAILED:  # find_release_job never returns these; a start cannot fail yet
            raise AmplifyBuildError(f"Amplify job {job['job_id']} is {job['status']}")
        timeout = cfg.timings.amplify_timeout_seconds
        self.defer(
            trigger=AmplifyJobTrigger(
                app_id=cfg.amplify.app_id,
                branch_name=job["branch"],
                job_id=job["job_id"],
                aws_conn_id=conn_id,
                region_name=region,
                poll_interval=poll,
                deadline=time.time() + timeout,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=timeout + 5 * poll),
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        from deployment.run_context import release
        from deployment.triggers.events import resumed_event

        event = resumed_event(event, "status")
        return self._finish(release(context), event)

    def _finish(self, rel: Any, event: dict[str, Any]) -> dict[str, Any]:
        from deployment.ledger import now_iso
        from deployment.run_context import update_section

        frontend = rel.ledger.read(SECTION) or {}
        job = {**frontend.get("amplify_job", {}), "status": event.get("job_status"), "finished_at": now_iso()}
        if event["status"] != "success":
            job["error"] = event.get("message")
        update_section(rel.ledger, SECTION, amplify_job=job)
        if event["status"] != "success":
            raise AmplifyBuildError(f"the frontend build failed: {event.get('message')}")
        return {"job_id": job.get("job_id"), "status": job["status"]}
