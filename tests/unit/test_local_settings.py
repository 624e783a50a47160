"""include/airflow_local_settings.py: the components whose forks parse or run tasks preload
what those forks import, and the list names modules that exist."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import airflow_local_settings as local_settings
import pytest


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["airflow", "scheduler"], local_settings.PARSE + local_settings.TASKS),
        (
            ["airflow", "celery", "worker", "--queues", "default", "--concurrency", "4"],
            local_settings.PARSE + local_settings.TASKS,
        ),
        (["airflow", "dag-processor"], local_settings.PARSE),
        (["airflow", "api-server", "--port", "8080"], ()),
        (["airflow", "triggerer"], ()),
        (["airflow", "celery", "flower"], ()),
        (["pytest", "tests/unit"], ()),
    ],
)
def test_only_forking_components_preload(argv, expected):
    assert local_settings.modules_for(argv) == expected


def test_every_preloaded_module_is_installed():
    assert local_settings.preload(local_settings.PARSE + local_settings.TASKS) == []


def test_a_scheduler_process_has_them_before_it_forks():
    # Airflow imports airflow_local_settings while `import airflow` initialises its settings.
    wanted = ("boto3", "cfnlint.api", "airflow.providers.standard.operators.hitl", "tabulate")
    probe = (
        f"import sys; sys.argv = ['airflow', 'scheduler']; import airflow; "
        f"print(all(m in sys.modules for m in {wanted!r}))"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(local_settings.__file__).parent)}
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, check=True, env=env
    )
    assert out.stdout.strip().splitlines()[-1] == "True", out.stderr[-2000:]


def test_a_scheduler_s_fork_parses_the_dag_its_parent_built_before_forking():
    """The task runner's parse in a LocalExecutor worker's fork takes the DAG the worker built
    (``deployment.dag_reuse``); the dag-processor, which runs no task, builds its own every time."""
    root = Path(local_settings.__file__).parents[1]
    probe = (
        "import os, sys; sys.argv = ['airflow', {component!r}]; import airflow; "
        "from airflow.dag_processing.dagbag import DagBag; from deployment import dag_reuse; "
        "pid = os.fork()\n"
        "if pid == 0:\n"
        f"    bag = DagBag({str(root / 'dags' / 'deploy_production.py')!r})\n"
        "    built = dag_reuse._BUILT[bag.dags['deploy_production'].fileloc]\n"
        "    print('reused' if built.built_in != os.getpid() else 'built', flush=True); os._exit(0)\n"
        "os.waitpid(pid, 0)"
    )
    env = {**os.environ, "PYTHONPATH": f"{root / 'include'}:{root / 'plugins'}"}
    for component, expected in (("scheduler", "reused"), ("dag-processor", "built")):
        out = subprocess.run(
            [sys.executable, "-c", probe.format(component=component)],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.strip().splitlines()[-1] == expected, (component, out.stderr[-2000:])


def test_a_dag_processor_fork_parses_the_dags_without_importing_boto3_again():
    """What the DAG files import at parse time is preloaded: a parse imports none of the heavy
    third-party libraries (botocore alone is 0.3-0.8 s of a fork's CPU on the 2-core machine)."""
    root = Path(local_settings.__file__).parents[1]
    probe = (
        "import sys; sys.argv = ['airflow', 'dag-processor']; import airflow; "
        "from airflow.dag_processing.dagbag import DagBag; before = set(sys.modules); "
        f"bag = DagBag({str(root / 'dags')!r}); assert not bag.import_errors, bag.import_errors; "
        "print(sorted({m.split('.')[0] for m in set(sys.modules) - before}))"
    )
    env = {**os.environ, "PYTHONPATH": f"{root / 'include'}:{root / 'plugins'}"}
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, check=True, env=env
    )
    imported = out.stdout.strip().splitlines()[-1]
    for heavy in ("boto3", "botocore", "s3transfer", "requests", "urllib3"):
        assert f"'{heavy}'" not in imported, imported


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["airflow", "scheduler"], local_settings.AWS_SERVICES),
        (["airflow", "triggerer"], ()),
        (["airflow", "api-server", "--port", "8080"], ()),
        (["airflow", "dag-processor"], None),
        (["airflow", "celery", "worker", "--queues", "default"], local_settings.AWS_SERVICES),
        (["airflow", "celery", "flower"], None),
    ],
)
def test_components_that_open_aws_sessions_share_the_models(argv, expected):
    assert local_settings._component(argv, local_settings.AWS_MODELS) == expected


def test_every_session_reads_the_aws_models_through_one_loader(monkeypatch):
    import boto3
    import botocore.loaders
    import botocore.session

    monkeypatch.setattr(botocore.session, "create_loader", botocore.session.create_loader)
    decoded = []
    real_load = botocore.loaders.JSONFileLoader.load_file
    monkeypatch.setattr(
        botocore.loaders.JSONFileLoader,
        "load_file",
        lambda self, path: decoded.append(path) or real_load(self, path),
    )
    local_settings.share_aws_models(("cloudformation",))
    warmed = len(decoded)
    assert warmed and any("cloudformation" in path for path in decoded)

    sessions = [boto3.session.Session(region_name="eu-west-1") for _ in range(3)]
    for session in sessions:
        session.client("cloudformation", endpoint_url="http://127.0.0.1:9")
    assert len(decoded) == warmed, "a new session decoded the AWS data files again"
    loaders = {id(s._session.get_component("data_loader")) for s in sessions}
    assert len(loaders) == 1
    paths = sessions[0]._session.get_component("data_loader").search_paths
    assert len(paths) == len(set(paths)), "boto3's data folder is added once, not once per session"
    custom = botocore.session.get_session()
    custom.set_config_variable("data_path", "/tmp/aws-models")
    assert "/tmp/aws-models" in custom.get_component("data_loader").search_paths, "AWS_DATA_PATH is honoured"


def test_a_new_session_reuses_the_handler_checks_and_event_aliases(monkeypatch):
    import boto3
    import botocore.compat
    import botocore.hooks

    local_settings.remember_session_checks()
    local_settings.remember_session_checks()  # once is enough; a second call changes nothing
    boto3.session.Session(region_name="eu-west-1").client("s3", endpoint_url="http://127.0.0.1:9")
    checked = []
    real = botocore.compat.accepts_kwargs
    monkeypatch.setattr(
        botocore.compat, "accepts_kwargs", lambda handler: checked.append(handler) or real(handler)
    )
    session = boto3.session.Session(region_name="eu-west-1")
    session.client("s3", endpoint_url="http://127.0.0.1:9")
    assert checked == [], "the built-in handlers' signatures were inspected again"

    def positional_only(model):
        return None

    with pytest.raises(ValueError, match="must accept keyword arguments"):
        session.events.register("before-call.s3", positional_only)
    with pytest.raises(ValueError, match="must accept keyword arguments"):
        session.events.register("before-call.s3", positional_only)  # refused again, from memory
    assert len(checked) == 1

    own_table = botocore.hooks.EventAliaser(
        botocore.hooks.HierarchicalEmitter(), {"apigateway": "api-gateway"}
    )
    shared = session._session._events
    for name in ("before-call.apigateway.GetRestApi", "needs-retry.s3.GetObject"):
        assert shared._alias_event_name(name) == own_table._alias_event_name(name)
    assert shared._alias_name_cache is not own_table._alias_name_cache


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["airflow", "scheduler"], True),
        (["airflow", "celery", "worker", "--queues", "default"], True),
        (["airflow", "api-server", "--port", "8080"], True),
        (["airflow", "dag-processor"], False),
        (["airflow", "triggerer"], False),
    ],
)
def test_the_components_that_validate_params_remember_valid_schemas(argv, expected):
    assert local_settings.is_component(argv, local_settings.SCHEMA_CHECKS) is expected


def test_a_schema_that_passed_its_check_is_not_checked_again(monkeypatch):
    import jsonschema
    from jsonschema import validators

    checked = []
    for validator in (validators.Draft7Validator, validators.Draft202012Validator):
        real = validator.check_schema
        monkeypatch.setattr(
            validator,
            "check_schema",
            staticmethod(lambda schema, _real=real: checked.append(1) or _real(schema)),
        )
    local_settings.remember_valid_schemas()
    local_settings.remember_valid_schemas()  # once is enough
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1}}, "required": ["n"]}
    for _ in range(3):
        jsonschema.validate({"n": 2}, dict(schema))
        with pytest.raises(jsonschema.ValidationError, match="0 is less than the minimum of 1"):
            jsonschema.validate({"n": 0}, dict(reversed(schema.items())))
    assert len(checked) == 1, "a schema that passed was checked against the metaschema again"
    jsonschema.validate({"n": 2}, {**schema, "$schema": "http://json-schema.org/draft-07/schema#"})
    assert len(checked) == 2, "each draft's validator checks a schema once"
    broken = {"type": "object", "properties": {"n": {"type": "integer", "minimum": "one"}}}
    for _ in range(2):
        with pytest.raises(jsonschema.SchemaError, match="'one' is not of type 'number'"):
            jsonschema.validate({"n": 2}, broken)
    assert len(checked) == 4, "a schema that failed is checked, and refused, every time"


FORK_PROBE = """
import os, sys
from pathlib import Path
sys.path.insert(0, {folder!r})
import airflow_local_settings as local
assert local.preload_own(("probe_pkg",)) == []
print("parent", sys.modules["probe_pkg.rules"].VALUE, flush=True)
{edit}
pid = os.fork()
if pid == 0:
    from probe_pkg import rules
    print("fork", rules.VALUE, "probe_pkg.rules" in sys.modules, flush=True)
    os._exit(0)
os.waitpid(pid, 0)
"""


def _fork_after(tmp_path: Path, edit: str) -> list[str]:
    package = tmp_path / "probe_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "rules.py").write_text("VALUE = 'old'\n")
    probe = FORK_PROBE.format(folder=str(tmp_path), edit=edit)
    env = {**os.environ, "PYTHONPATH": str(Path(local_settings.__file__).parent)}
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True, env=env
    )
    return out.stdout.split("\n")[:-1]


def test_a_fork_runs_the_preloaded_package_while_its_files_are_unchanged(tmp_path):
    assert _fork_after(tmp_path, "") == ["parent old", "fork old True"]


def test_a_fork_imports_the_package_again_once_a_file_changed_on_disk(tmp_path):
    """A new version of the package deployed beside a running scheduler: its next task runs it."""
    rules = tmp_path / "probe_pkg" / "rules.py"
    edit = f"Path({str(rules)!r}).write_text(\"VALUE = 'new, longer'\\n\")"
    assert _fork_after(tmp_path, edit) == ["parent old", "fork new, longer True"]


def test_the_scheduler_and_celery_workers_preload_the_package():
    for argv in (["airflow", "scheduler"], ["airflow", "celery", "worker", "--queues", "default"]):
        assert local_settings.is_component(argv, local_settings.OWN_PRELOADS)
    for argv in (["airflow", "dag-processor"], ["airflow", "triggerer"], ["airflow", "api-server"]):
        assert not local_settings.is_component(argv, local_settings.OWN_PRELOADS)
