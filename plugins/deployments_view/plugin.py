"""Registers the Deployments view with Airflow: its FastAPI app and its entry in the navigation bar.

The plugin manager imports every ``.py`` file under ``plugins/``; this is the only one
that defines an ``AirflowPlugin`` (import the class from nowhere else, or it registers
twice). Building the app imports FastAPI and Airflow's API security only: records, AWS
and GitHub are imported inside the handlers.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from deployments_view.app import URL_PREFIX, create_app


class DeploymentsViewPlugin(AirflowPlugin):
    name = "deployments_view"
    fastapi_apps = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "Deployments view"}]
    external_views = [
        {
            "name": "Deployments",
            "href": f"{URL_PREFIX}/",
            "url_route": "deployments",
            "destination": "nav",
            "icon": f"{URL_PREFIX}/static/icon.svg",
        }
    ]
