"""The Deployments view's FastAPI app, mounted by Airflow's API server under ``/deployments-view``.

Every route (the page and the JSON) depends on Airflow's own security: the user comes
from the API server's token (the UI's cookie or a bearer token) and must be allowed to
read the ``deploy_production`` DAG; manual rollbacks are listed only to users who may
read ``rollback_production``. Only the vendored chart library and the page's script and
style are served without a user, and they carry no data.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parent / "static"
MAX_PAGE = 1000

read_releases = Depends(requires_access_dag("GET", param_dag_id="deploy_production"))


def _config():
    from deployment.config import load_config

    return load_config()


def _may_read_rollbacks(user: Any) -> bool:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails

    return get_auth_manager().is_authorized_dag(
        method="GET", details=DagDetails(id="rollback_production"), user=user
    )


def _summaries(user: Any) -> list[dict[str, Any]]:
    """Every run's summary the user may see (manual rollbacks only to readers of rollback_production)."""
    from deployments_view.records import store_for

    summaries = store_for(_config()).summaries()
    if not _may_read_rollbacks(user):
        summaries = [s for s in summaries if s.get("kind") != "manual_rollback"]
    return summaries


def releases_page(
    summaries: list[dict[str, Any]], offset: int, limit: int, outcome: str | None
) -> dict[str, Any]:
    from deployments_view.summary import row, sort_key

    config = _config()
    rows = sorted((row(s, config) for s in summaries), key=sort_key, reverse=True)
    if outcome:
        rows = [r for r in rows if r["outcome"] == outcome]
    return {
        **_freshness(),
        "total": len(rows),
        "offset": offset,
        "limit": limit,
        "releases": rows[offset : offset + limit],
    }


def _freshness() -> dict[str, Any]:
    """When the listing the table and DORA's keys were built from started (``as_of``), and whether it
    holds the runs without a summary (``complete``: False only in a new API server's first seconds)."""
    from deployments_view.records import store_for

    store = store_for(_config())
    return {"as_of": store.as_of, "complete": store.complete}


def create_app() -> FastAPI:
    app = FastAPI(
        title="Deployments view",
        description="Release history, canary analysis and DORA's four keys from the deployment records. "
        "Every endpoint needs a user who may read the deploy_production DAG.",
        version="1",
    )
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", dependencies=[read_releases], include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    @app.get("/api/releases", dependencies=[read_releases])
    def releases(
        user: GetUserDep,
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
        outcome: Annotated[str | None, Query(description="succeeded, rolled_back, failed or running")] = None,
    ) -> dict[str, Any]:
        """Every release and manual rollback, newest first: version, commit, author, approvers, outcome,
        duration, links (the Airflow run, the GitHub release, the CloudFormation stack, the Amplify job)."""
        return releases_page(_summaries(user), offset, limit, outcome)

    @app.get("/api/live", dependencies=[read_releases])
    def live() -> dict[str, Any]:
        """What production runs now: the stack's version, the router's weights, each colour's version."""
        from deployments_view.live import live_now

        return live_now(_config())

    @app.get("/api/releases/{folder}/{run}", dependencies=[read_releases])
    def release(folder: str, run: str, user: GetUserDep) -> dict[str, Any]:
        """One release (``folder`` is its version, or ``manual-rollbacks``; ``run`` its run key): the phase
        timeline, plan and change set, approvals, every traffic step's and monitoring's polls with the
        thresholds and breaches, smoke tests, the rollback's steps and verification."""
        from deployments_view.records import MANUAL_ROLLBACKS, store_for
        from deployments_view.summary import detail

        if folder == MANUAL_ROLLBACKS and not _may_read_rollbacks(user):
            raise HTTPException(403, "Forbidden")
        config = _config()
        record = store_for(config).record(folder, run)
        if record is None:
            raise HTTPException(404, f"no deployment record {folder}/{run}")
        return detail(record, config)

    @app.get("/api/identities", dependencies=[read_releases])
    def identities(username: Annotated[list[str], Query(max_length=50)]) -> dict[str, Any]:
        """Each username's user id in the auth manager (None when unknown): the ids Airflow checks a
        human-in-the-loop answer against."""
        from airflow.api_fastapi.app import get_auth_manager

        from deployments_view.identities import user_ids

        return {"identities": user_ids(get_auth_manager(), username)}

    @app.get("/api/dora", dependencies=[read_releases])
    def dora_keys(
        user: GetUserDep,
        days: Annotated[int, Query(ge=1, le=366, description="the window: 7, 30 or 90 in the page")] = 30,
        until: Annotated[datetime | None, Query(description="the end (ISO 8601); default now")] = None,
    ) -> dict[str, Any]:
        """DORA's four keys over the last ``days`` days, their bands, a trend per day (per week over 30)."""
        from deployments_view.dora import dora

        if until is not None and until.tzinfo is None:
            until = until.replace(tzinfo=UTC)
        keys = dora(_summaries(user), days, now=until)
        return {**_freshness(), **keys}

    return app
