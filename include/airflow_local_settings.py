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
    "airflow.providers.standard.decorators.python",
    "airflow.providers.standard.decorators.branch_python",
    "airflow.providers.standard.sensors.date_time",
    "airflow.providers.amazon.aws.links.base_aws",
    # the base of the operators that call AWS: it imports boto3 and botocore
    "airflow.providers.amazon.aws.operators.base_aws",
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
# The components whose forks parse DAG files or run tasks (``airflow <words>``), and what they preload:
# LocalExecutor's workers are forks of the scheduler, a Celery worker's pool processes forks of it.
PRELOADS = {("scheduler",): PARSE + TASKS, ("celery", "worker"): PARSE + TASKS, ("dag-processor",): PARSE}
# The AWS services the tasks and triggers call.
AWS_SERVICES = (
    "cloudformation",
    "s3",
    "dynamodb",
    "amplify",
    "route53",
    "cloudwatch",
    "cloudfront-keyvaluestore",
)
# The components that open botocore sessions (the executors' forks run the tasks, the triggerer the
# triggers, the API server the Deployments view), and the services whose models they read up front.
AWS_MODELS = {
    ("scheduler",): AWS_SERVICES,
    ("celery", "worker"): AWS_SERVICES,
    ("triggerer",): (),
    ("api-server",): (),
}


def _component(argv: list[str], table: dict[tuple[str, ...], tuple[str, ...]]) -> tuple[str, ...] | None:
    """The entry of ``table`` for the component that ``argv`` (``sys.argv``) starts, None if it has none."""
    words = tuple(a for a in argv[1:] if not a.startswith("-"))
    return next((value for component, value in table.items() if words[: len(component)] == component), None)


def modules_for(argv: list[str]) -> tuple[str, ...]:
    """What the component that ``argv`` starts preloads; nothing for the others."""
    return _component(argv, PRELOADS) or ()


class _SearchPaths(list):
    """A loader's search paths, each once: boto3 appends its own folder for every session it opens."""

    def append(self, path: str) -> None:
        if path not in self:
            super().append(path)


def share_aws_models(services: tuple[str, ...] = ()) -> None:
    """One botocore data loader for every session this process opens, with ``services``' models read.

    botocore gives each session a loader of its own, and the Amazon provider's hooks open a session
    per call: each one reads and decodes the same JSON again (endpoints, partitions, the service's
    model and rules), about 0.1 s of CPU per session and client on the 2-core machine. One loader
    decodes each file once per process; read in the scheduler, the models are inherited by every task
    it forks. Only the default data path is shared (``AWS_DATA_PATH`` still gets a loader of its own).
    """
    import boto3
    import botocore.loaders
    import botocore.session

    loader = botocore.loaders.Loader(extra_search_paths=_SearchPaths())
    default = botocore.loaders.create_loader
    botocore.session.create_loader = lambda search_path_string=None: (
        default(search_path_string) if search_path_string else loader
    )
    session = boto3.session.Session(
        region_name="us-east-1", aws_access_key_id="preload", aws_secret_access_key="preload"
    )
    for service in services:
        session.client(service)


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
if (_services := _component(sys.argv, AWS_MODELS)) is not None:
    share_aws_models(_services)
