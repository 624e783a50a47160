"""Registers the Deployments view with Airflow (its FastAPI app and its entry in the navigation bar),
and the release's cancel listener (``deployment.rollback.cancel_listener``: a run or task marked failed by
hand puts the stable colour back, from the API server that took the user's request) and the
hand-marks listener (``deployment.gate.hand_marks``: an audit-log row for a task state set by hand in
bulk, which Airflow logs nothing for).

The plugin manager executes every ``.py`` file under ``plugins/`` in every component, task
processes included; ``.airflowignore`` beside this file leaves it only this one. The app
itself (FastAPI, the API server's security, the records) is built on the first request the
API server hands it, so no other component imports any of that.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

from deployment.gate import hand_marks
from deployment.rollback import cancel_listener
from deployments_view import URL_PREFIX


class LazyApp:
    """An ASGI app that builds ``deployments_view.app.create_app()`` on its first request."""

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if self._app is None:
            from deployments_view.app import create_app

            self._app = create_app()
        await self._app(scope, receive, send)


class DeploymentsViewPlugin(AirflowPlugin):
    name = "deployments_view"
    listeners = [cancel_listener, hand_marks]
    fastapi_apps = [{"app": LazyApp(), "url_prefix": URL_PREFIX, "name": "Deployments view"}]
    external_views = [
        {
            "name": "Deployments",
            "href": f"{URL_PREFIX}/",
            "url_route": "deployments",
            "destination": "nav",
            "icon": f"{URL_PREFIX}/static/icon.svg",
        }
    ]
