"""Airflow's local-settings hook: every Airflow process imports this module at start-up
(``airflow_local_settings``, found on PYTHONPATH through include/).

Every task runs in a process forked from the component that launched it: LocalExecutor's
workers are forks of the scheduler (as a Celery worker's pool processes are forks of the
worker), and the dag-processor forks one process per parse. Each task process then parses
deploy_production.py and imports the libraries its hook needs; imported here once, in the
component, they are inherited by every fork instead (on the 2-core machine, botocore alone
takes 0.3-0.8 s to import). Our own package (plugins/deployment) is imported too, in the
components whose forks run tasks, and each fork checks the files it came from: when one changed on
disk since (a new version of the package deployed beside a running scheduler), the fork forgets the
whole package and imports it again, so a task always runs the code on disk.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pkgutil
import sys
from typing import Any

# What the DAG file imports (the Airflow building blocks of the task groups): every fork parses it.
PARSE = (
    # the task runner's parse (BundleDagBag), with its table printer tabulate and wcwidth: ~30-40 ms
    # of every task process's start on the 2-core machine when a fork imports it
    "airflow.dag_processing.dagbag",
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
# Our own packages, preloaded where task processes are forked (``preload_own``).
OWN_PACKAGES = ("deployment",)
OWN_PRELOADS = (("scheduler",), ("celery", "worker"))
# Our DAG files (in the DAGs folder), built where task processes are forked (``build_before_fork``).
OWN_DAG_FILES = ("deploy_production.py", "rollback_production.py")
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


# The components that validate Params: the executors' forks run tasks (each resolves the DAG's
# Params), the API server validates a new run's conf.
SCHEMA_CHECKS = (("scheduler",), ("celery", "worker"), ("api-server",))


def _component(argv: list[str], table: dict[tuple[str, ...], tuple[str, ...]]) -> tuple[str, ...] | None:
    """The entry of ``table`` for the component that ``argv`` (``sys.argv``) starts, None if it has none."""
    words = tuple(a for a in argv[1:] if not a.startswith("-"))
    return next((value for component, value in table.items() if words[: len(component)] == component), None)


def is_component(argv: list[str], components: tuple[tuple[str, ...], ...]) -> bool:
    """Whether ``argv`` (``sys.argv``) starts one of ``components``."""
    return _component(argv, dict.fromkeys(components, ())) is not None


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
    remember_session_checks()
    session = boto3.session.Session(
        region_name="us-east-1", aws_access_key_id="preload", aws_secret_access_key="preload"
    )
    for service in services:
        session.client(service)


def remember_session_checks() -> None:
    """What botocore works out again for every session and client, remembered for the process.

    A new session registers botocore's ~140 built-in event handlers; for each it checks that the
    handler accepts keyword arguments (``inspect.getfullargspec``) and maps the event's name through
    its aliases, and each client does the same for its own. The answers never change (a function's
    signature; one fixed alias table), yet they were 15-25 ms of every session on the 2-core
    machine, and the provider's hooks open one session per hook. Only the default alias table is
    shared. A plain function's answer is kept by its code, another handler's by the handler itself
    while it lives (one that cannot be weakly referenced is checked each time).
    """
    import types
    import weakref

    import botocore.compat
    import botocore.hooks

    if getattr(botocore.hooks.accepts_kwargs, "remembered", False):
        return
    by_code: dict[types.CodeType, bool] = {}
    by_handler: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def accepts_kwargs(handler) -> bool:
        target = getattr(handler, "__func__", handler)  # a bound method: its function
        answers: Any = by_handler
        if isinstance(target, types.FunctionType) and not hasattr(target, "__signature__"):
            # A plain function's signature is its code's: the closures one ``def`` makes share it.
            answers, target = by_code, target.__code__
        with contextlib.suppress(KeyError, TypeError):
            return answers[target]
        answer = botocore.compat.accepts_kwargs(handler)
        with contextlib.suppress(TypeError):
            answers[target] = answer
        return answer

    accepts_kwargs.remembered = True
    botocore.hooks.accepts_kwargs = accepts_kwargs

    aliases: dict[str, str] = {}
    aliaser_init = botocore.hooks.EventAliaser.__init__

    def init(self, event_emitter, event_aliases=None) -> None:
        aliaser_init(self, event_emitter, event_aliases)
        if self._event_aliases == botocore.hooks.EVENT_ALIASES:
            self._alias_name_cache = aliases

    botocore.hooks.EventAliaser.__init__ = init


def remember_valid_schemas() -> None:
    """jsonschema's ``validate`` first checks the schema itself against its metaschema, and Airflow
    validates every Param so whenever it resolves one: 7 times in each deploy_production task process,
    10-20 ms on the 2-core machine (``emergency``'s allOf/if/then is most of it). A schema that passed
    passes again, so the built-in validators remember, for the process, each schema (by its JSON text)
    that passed their check; an invalid one is checked, and refused, every time."""
    import json

    from jsonschema import validators

    for validator in (
        validators.Draft3Validator,
        validators.Draft4Validator,
        validators.Draft6Validator,
        validators.Draft7Validator,
        validators.Draft201909Validator,
        validators.Draft202012Validator,
    ):
        if getattr(validator.check_schema, "remembered", False):
            continue
        passed: set[str] = set()

        def check_schema(schema, *args, _check=validator.check_schema, _passed=passed, **kwargs) -> None:
            try:
                text = None if args or kwargs else json.dumps(schema, sort_keys=True)
            except (TypeError, ValueError):
                text = None
            if text is not None and text in _passed:
                return
            _check(schema, *args, **kwargs)
            if text is not None:
                _passed.add(text)

        check_schema.remembered = True
        validator.check_schema = staticmethod(check_schema)


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


def _own_modules(packages: tuple[str, ...]) -> list[str]:
    return [n for n in sys.modules if any(n == p or n.startswith(p + ".") for p in packages)]


def own_files(packages: tuple[str, ...]) -> dict[str, tuple[int, int]]:
    """The source file of each imported module of ``packages`` → its (mtime in ns, size)."""
    files = {}
    for name in _own_modules(packages):
        path = getattr(sys.modules[name], "__file__", None)
        if path:
            with contextlib.suppress(OSError):
                stat = os.stat(path)
                files[path] = (stat.st_mtime_ns, stat.st_size)
    return files


def forget_if_changed(packages: tuple[str, ...], files: dict[str, tuple[int, int]]) -> bool:
    """Forget every module of ``packages`` when a file they were imported from changed or went away
    (the next import reads the disk); whether it did. One ``stat`` per file: ~0.2 ms for ours."""
    for path, seen in files.items():
        try:
            stat = os.stat(path)
        except OSError:
            break
        if (stat.st_mtime_ns, stat.st_size) != seen:
            break
    else:
        return False
    for name in _own_modules(packages):
        del sys.modules[name]
    importlib.invalidate_caches()
    return True


def preload_own(packages: tuple[str, ...]) -> list[str]:
    """Import every module of ``packages`` here, and have each fork of this process forget them all
    if their files changed since. The modules that fail to import are skipped and returned: the task
    that needs one fails on its own import, with its own error."""
    failed = []
    for package in packages:
        try:
            root = importlib.import_module(package)
        except Exception:
            failed.append(package)
            continue
        for info in pkgutil.walk_packages(root.__path__, package + ".", onerror=failed.append):
            try:
                importlib.import_module(info.name)
            except Exception:
                failed.append(info.name)
    files = own_files(packages)
    os.register_at_fork(after_in_child=lambda: forget_if_changed(packages, files))
    return failed


def build_before_fork(dag_files: list[str]) -> None:
    """Have this process build ``dag_files``' DAGs before each fork, for the fork's parse to take
    (``deployment.dag_reuse``): once, and again only when what one was built from changed."""

    def build() -> None:
        dag_reuse = sys.modules.get("deployment.dag_reuse")
        if dag_reuse is not None:
            dag_reuse.warm(dag_files)

    os.register_at_fork(before=build)


def own_dag_files() -> list[str]:
    from airflow.configuration import conf

    folder = conf.get("core", "dags_folder")
    return [path for name in OWN_DAG_FILES if os.path.isfile(path := os.path.join(folder, name))]


preload(modules_for(sys.argv))
if is_component(sys.argv, OWN_PRELOADS):
    preload_own(OWN_PACKAGES)
    build_before_fork(own_dag_files())
if is_component(sys.argv, SCHEMA_CHECKS):
    remember_valid_schemas()
if (_services := _component(sys.argv, AWS_MODELS)) is not None:
    share_aws_models(_services)
