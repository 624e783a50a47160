"""A DAG file's tasks built once in the process that forks task processes, not again in each of them.

Every task process parses its DAG file (Airflow's task runner, ``BundleDagBag``), and building
``deploy_production``'s 54 operators is most of that parse: Airflow copies the DAG's Params
and default arguments into every operator. The executor's workers (LocalExecutor's forks of the
scheduler, a Celery worker's pool processes) run no task themselves; ``airflow_local_settings``
has them build our DAG files just before each fork (:func:`warm`), and the fork's own parse takes
that DAG (:func:`reuse_or_build`) when everything it was built from is unchanged: the DAG file, the
configuration (compared whole) and the DAG docs it shows. Any change, and the task builds its own.
A package changed on disk is handled before this: the fork forgets the package and imports it
again (``airflow_local_settings.forget_if_changed``), and with it this module's DAGs.

A DAG is handed out once per process, and only to a process forked after it was built (its own
copy of the objects): a second parse in the same process, or any parse where it was built (the
dag-processor, a test), builds a fresh DAG, so no caller ever sees another's changes to it.
"""

from __future__ import annotations

import os
import runpy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deployment.docs import DOCS_DIR

# Each of our DAG files, by the path it was built from.
_BUILT: dict[str, _Built] = {}


@dataclass
class _Built:
    inputs: tuple[Any, ...]
    dag: Any
    built_in: int  # the pid that built it
    handed_to: int | None = None  # the pid it was handed out in, once


def _stat(path: Path | str) -> tuple[str, int, int] | None:
    try:
        found = os.stat(path)
    except OSError:
        return None
    return (str(path), found.st_mtime_ns, found.st_size)


def inputs(dag_file: str, config: Any) -> tuple[Any, ...]:
    """What a DAG file's DAG is built from, besides our package's code."""
    docs = tuple(_stat(p) for p in sorted(DOCS_DIR.glob("*.md")))
    return (_stat(dag_file), docs, config)


def reuse_or_build(dag_file: str, config: Any, build: Callable[[], Any]) -> Any:
    """The DAG built before this process was forked, if built from the same inputs; else ``build()``."""
    dag_file = os.path.realpath(dag_file)
    key = inputs(dag_file, config)
    found = _BUILT.get(dag_file)
    pid = os.getpid()
    if found is not None and found.inputs == key and found.built_in != pid and found.handed_to is None:
        found.handed_to = pid
        return found.dag
    dag = build()
    _BUILT[dag_file] = _Built(key, dag, pid, handed_to=pid)
    return dag


def warm(dag_files: list[str]) -> None:
    """Build each DAG file's DAG here unless the one already built is current (a fork takes it).

    Never raises: a DAG file that fails here fails again in the task's own parse, with its error.
    """
    from deployment.config import load_config

    for dag_file in map(os.path.realpath, dag_files):
        try:
            found = _BUILT.get(dag_file)
            # one built here or inherited from an ancestor, and not handed out in this process
            if (
                found is not None
                and found.handed_to is None
                and found.inputs == inputs(dag_file, load_config())
            ):
                continue
            _BUILT.pop(dag_file, None)
            runpy.run_path(dag_file, run_name=f"_deployment_warm_{Path(dag_file).stem}")
            built = _BUILT.get(dag_file)
            if built is not None:
                built.built_in, built.handed_to = os.getpid(), None
        except Exception:  # noqa: BLE001 - the task's own parse reports it
            _BUILT.pop(dag_file, None)
