"""Start the RELEASE job on the idle Amplify branch, then wait for it in the triggerer."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseOperator

from deployment.operators.links import AmplifyJobLink, quoted

SECTION = "frontend"


class AmplifyBuildError(RuntimeError):
    """The frontend build did not succeed, or there is no prepared branch to build."""


class AmplifyReleaseOperator(BaseOperator):
    """Start (or find, on a rerun) the release's RELEASE job on the target branch; wait for ``SUCCEED``.

    The job builds the release's ``commit_sha`` (StartJob ``commitId``); the commit Amplify
    reports for it (GetJob) is checked and recorded as ``frontend.amplify_job.commit_id``.

    The target colour comes from the ``frontend`` section written by ``prepare_idle_branch``.
    """

    template_fields = ("aws_conn_id", "region_name", "poll_interval")
    operator_extra_links = (AmplifyJobLink(),)
    ui_color = "#90be6d"

    def __init__(
        self,
        *,
        aws_conn_id: str | None = None,
        region_name: str | None = None,
        poll_interval: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.poll_interval = poll_interval

    def execute(self, context: Any) -> dict[str, Any] | None:
        from deployment.amplify import FAILED, SUCCEEDED, start_release
        from deployment.hooks.aws import AmplifyHook, aws_hook
        from deployment.operators._common import release, update_section
        from deployment.triggers.amplify import AmplifyJobTrigger

        rel = release(context)
        cfg = rel.cfg
        conn_id, region = self.aws_conn_id or cfg.connections.aws, self.region_name or cfg.region
        poll = float(self.poll_interval or cfg.timings.poll_interval_seconds)
        frontend = rel.ledger.read(SECTION) or {}
        target = frontend.get("target_colour")
        if target not in ("blue", "green"):
            raise AmplifyBuildError(
                f"no target colour in {rel.ledger.uri(SECTION)}: prepare_idle_branch has not run"
            )
        hook = aws_hook(AmplifyHook, conn_id, region)
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
        from deployment.operators._common import release

        return self._finish(release(context), event)

    def _finish(self, rel: Any, event: dict[str, Any]) -> dict[str, Any]:
        from deployment.ledger import now_iso
        from deployment.operators._common import update_section

        frontend = rel.ledger.read(SECTION) or {}
        job = {**frontend.get("amplify_job", {}), "status": event.get("job_status"), "finished_at": now_iso()}
        if event["status"] != "success":
            job["error"] = event.get("message")
        update_section(rel.ledger, SECTION, amplify_job=job)
        if event["status"] != "success":
            raise AmplifyBuildError(f"the frontend build failed: {event.get('message')}")
        return {"job_id": job.get("job_id"), "status": job["status"]}
