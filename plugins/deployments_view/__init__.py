"""The Deployments view: release history, canary analysis charts and DORA's four keys in the Airflow UI.

A FastAPI app mounted by the API server (``deployments_view.plugin``) serves a page and
JSON endpoints built from the deployment records in S3. See the README's "Deployments view".
"""

URL_PREFIX = "/deployments-view"  # where the API server mounts the app
