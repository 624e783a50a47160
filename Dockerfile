# The production image: Apache Airflow 3.3.2 with this repository's pinned providers and its
# DAG package baked in. One image for every component (API server, scheduler, dag-processor,
# triggerer, Celery workers or Kubernetes executor pods); deploy/README.md says how to build,
# push and install it with the official Helm chart (deploy/helm/values.yaml).
# Test tools (requirements-dev.txt), the sandbox and the local-stack tooling stay out;
# scripts/check_deploy.py lints this file and replays its install step in CI.
FROM apache/airflow:3.3.2-python3.11

# The pinned runtime set only. requirements.txt pins apache-airflow itself to the base image's
# version, so pip keeps Airflow and moves the providers to our pins; constraints.txt locks every
# transitive version (the same set the tests ran on). Runs as the image's airflow user, which
# installs into its own site-packages, as the image's documentation asks.
COPY --chown=airflow:0 requirements.txt constraints.txt /opt/airflow/requirements/
RUN pip install --no-cache-dir \
        -r /opt/airflow/requirements/requirements.txt \
        -c /opt/airflow/requirements/constraints.txt

# The DAG package at the image's own folders: AIRFLOW_HOME is /opt/airflow, so dags/ and plugins/
# are the configured DAGS_FOLDER and PLUGINS_FOLDER, and plugins/deployment finds include/ beside
# them (deployment.config.PROJECT_ROOT). Of include/ only what a component reads at run time:
# the per-environment config, the UI docs, the message templates, the front door's function
# and airflow_local_settings.py (the preloads README "Settings for production" describes).
COPY --chown=airflow:0 dags/ /opt/airflow/dags/
COPY --chown=airflow:0 plugins/ /opt/airflow/plugins/
COPY --chown=airflow:0 include/airflow_local_settings.py /opt/airflow/include/
COPY --chown=airflow:0 include/config/ /opt/airflow/include/config/
COPY --chown=airflow:0 include/docs/ /opt/airflow/include/docs/
COPY --chown=airflow:0 include/frontdoor/ /opt/airflow/include/frontdoor/
COPY --chown=airflow:0 include/templates/messages/ /opt/airflow/include/templates/messages/
# Creates the FAB roles and permissions (deploy/helm/values.yaml runs it after each install/upgrade).
COPY --chown=airflow:0 scripts/setup_roles.py /opt/airflow/scripts/

# The PYTHONPATH the local stacks run with (include/airflow_stack/env.py): plugins/ for the
# package `deployment`, include/ for airflow_local_settings. DEPLOYMENT_CONFIG selects
# include/config/production.yaml (deploy/helm/values.yaml sets it too).
ENV PYTHONPATH=/opt/airflow/plugins:/opt/airflow/include \
    DEPLOYMENT_CONFIG=production

# Bytecode compiled once here: without it every task process compiles the DAG file and our
# modules from source (README "Settings for production").
RUN python -m compileall -q /opt/airflow/dags /opt/airflow/plugins /opt/airflow/include /opt/airflow/scripts
