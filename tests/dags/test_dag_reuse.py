"""deployment.dag_reuse: a task process forked after its worker built the DAG takes that DAG, unless
anything it was built from changed; nobody else ever gets it. Each case is a real fork of a process
that built the DAG files as the scheduler's and Celery's workers do (``warm`` before the fork), and
the fork parses as Airflow's task runner does (a ``DagBag`` of the file)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import os, sys
from pathlib import Path
from airflow.dag_processing.dagbag import DagBag
from deployment import dag_reuse

files = {files!r}
dag_reuse.warm(files)
for built in dag_reuse._BUILT.values():
    built.dag.built_before_fork = True
print("parent built", sorted(Path(f).name for f in dag_reuse._BUILT), flush=True)
{edit}

def parse(path, dag_id):
    bag = DagBag(dag_folder=path)
    assert not bag.import_errors, bag.import_errors
    dag = bag.dags[dag_id]
    return "reused" if getattr(dag, "built_before_fork", False) else "built", ",".join(sorted(dag.tags))

dag_reuse.warm(files)  # the next fork: nothing changed in this process, nothing built again
pid = os.fork()
if pid == 0:
    for path in files:
        dag_id = Path(path).stem
        print("fork", dag_id, *parse(path, dag_id), "then", parse(path, dag_id)[0], flush=True)
    os._exit(0)
os.waitpid(pid, 0)
print("parent parse", parse(files[0], Path(files[0]).stem)[0], flush=True)
"""


@pytest.fixture
def dags(tmp_path) -> Path:
    """A copy of the two DAG files, free to change."""
    folder = tmp_path / "dags"
    folder.mkdir()
    for name in ("deploy_production.py", "rollback_production.py"):
        shutil.copy(ROOT / "dags" / name, folder / name)
    return folder


def probe(dags: Path, edit: str = "", config: Path | None = None) -> list[str]:
    files = [str(dags / "deploy_production.py"), str(dags / "rollback_production.py")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), str(ROOT / "include")])}
    if config is not None:
        env["DEPLOYMENT_CONFIG"] = str(config)
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(files=files, edit=edit)],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.splitlines()


def fork_lines(lines: list[str]) -> dict[str, str]:
    """The fork's line for each DAG id: ``fork <dag id> reused|built <tags> then reused|built``."""
    return {line.split()[1]: line for line in lines if line.startswith("fork ")}


def test_a_fork_takes_the_dags_built_before_it_once(dags):
    lines = probe(dags)
    assert lines[0] == "parent built ['deploy_production.py', 'rollback_production.py']"
    forks = fork_lines(lines)
    assert forks["deploy_production"].split()[2] == "reused"
    assert forks["rollback_production"].split()[2] == "reused"
    # a second parse in the same process builds its own: nobody sees another's changes to a DAG
    assert forks["deploy_production"].endswith("then built")
    # the process that built them (a dag-processor, a test) never hands them to its own parses
    assert lines[-1] == "parent parse built"


def test_a_fork_builds_its_own_once_the_dag_file_changed(dags):
    target = dags / "deploy_production.py"
    edit = f"Path({str(target)!r}).write_text(Path({str(target)!r}).read_text() + '\\n# edited\\n')"
    forks = fork_lines(probe(dags, edit))
    assert forks["deploy_production"].split()[2] == "built"
    assert forks["rollback_production"].split()[2] == "reused"


def test_a_fork_builds_its_own_once_the_configuration_changed(dags, tmp_path):
    config = tmp_path / "deployment.yaml"
    config.write_text(f"extends: {ROOT / 'include' / 'config' / 'sandbox.yaml'}\n")
    # the next task's parse reads another application name, which the DAG's tags show
    edit = (
        "import time; time.sleep(0.01); "
        f"Path({str(config)!r}).write_text(Path({str(config)!r}).read_text() + 'application: renamed-app\\n')"
    )
    before = fork_lines(probe(dags, config=config))
    after = fork_lines(probe(dags, edit, config=config))
    assert before["deploy_production"].split()[2] == "reused"
    assert after["deploy_production"].split()[2:4] == ["built", "deployment,production,renamed-app"]


def test_a_dag_file_that_fails_to_build_is_left_to_the_task_s_own_parse(tmp_path):
    from deployment import dag_reuse

    broken = tmp_path / "deploy_production.py"
    broken.write_text("raise RuntimeError('broken DAG file')\n")
    dag_reuse.warm([str(broken)])
    assert str(broken.resolve()) not in dag_reuse._BUILT
