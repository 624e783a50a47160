"""Airflow's local-settings hook: every Airflow process imports this module at start-up
(``airflow_local_settings``, found on PYTHONPATH through include/).

Every task runs in a process forked from the component that launched it: LocalExecutor's
workers are forks of the scheduler (as a Celery worker's pool processes are forks of the
worker), and the dag-processor forks one process per parse. Each task process then parses
deploy_production.py and imports the libraries its hook needs; imported here once, in the
component, they are inherited by every fork instead (on the 2-core machine, botocore alone
takes 0.3-0.8 s to import). Our own modules (plugins/deployment) are NOT imported here, so a
task always runs the code on disk; only third-party and Airflow provider modules are.
"""

from __future__ import annotations

import importlib
import sys

# What the DAG file imports (the Airflow building blocks of the task groups): every fork parses it.
PARSE = (
    "airflow.providers.standard.operators.hitl",
    "airflow.providers.standard.operators.python",
    "airflow.providers.standard.sensors.date_time",
    "airflow.providers.amazon.aws.links.base_aws",
)
# What the tasks import: the providers' hooks and the libraries behind them.
TASKS = (
    "airflow.providers.amazon.aws.hooks.base_aws",
    "airflow.providers.amazon.aws.hooks.s3",
    "airflow.providers.amazon.aws.hooks.cloud_formation",
    "airflow.providers.github.hooks.github",
    "airflow.providers.slack.hooks.slack_webhook",
    "airflow.providers.http.hooks.http",
    "airflow.providers.smtp.hooks.smtp",
    "boto3",
    "jinja2",
    "yaml",
    "cfnlint.api",
    "samtranslator.translator.translator",
    "samtranslator.parser.parser",
)
# The components whose forks parse DAG files or run tasks (``airflow <words>``), and what they preload.
# A Celery worker forks its task processes the same way; it is left out until a Celery release has
# been seen to pass with it (not yet on the loaded machine this was written on).
PRELOADS = {("scheduler",): PARSE + TASKS, ("dag-processor",): PARSE}


def modules_for(argv: list[str]) -> tuple[str, ...]:
    """What the component that ``argv`` (``sys.argv``) starts preloads; nothing for the others."""
    words = tuple(a for a in argv[1:] if not a.startswith("-"))
    for component, modules in PRELOADS.items():
        if words[: len(component)] == component:
            return modules
    return ()


def preload(modules: tuple[str, ...]) -> list[str]:
    """Import ``modules``; the ones that are not installed (an optional provider) are skipped
    and returned: a task that needs one fails on its own import, with its own error."""
    missing = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


preload(modules_for(sys.argv))
