"""Parse cost: each DAG file parsed in a fresh process, against a trivial one-task DAG.

Prints, for every file in dags/, the median wall time of parsing it in a new
interpreter that has imported Airflow already and frozen its objects, as a
dag-processor has (so every import our file adds is paid, the Airflow core is
not), with the bytecode caches a dag-processor has after its first parse, and
its ratio to the trivial DAG parsed the same way in the same run. The files are
parsed in turn, round-robin, so a change in the machine's load reaches all of
them. A ratio is what we compare: a noisy machine slows both sides."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRIVIAL_DAG = textwrap.dedent(
    """
    from airflow.sdk import dag, task

    @dag(dag_id="trivial", schedule=None)
    def trivial():
        @task
        def noop():
            return None
        noop()

    trivial()
    """
)
# As the dag-processor does before it forks a parse (and LocalExecutor before it forks workers), the
# probe moves what Airflow's import created into the permanent generation (``gc.freeze``): otherwise
# a full collection over all of Airflow's objects lands in whichever parse allocates enough to start
# one, the larger file's, and is counted as that file's cost.
PROBE = textwrap.dedent(
    """
    import gc, sys, time
    from airflow.dag_processing.dagbag import DagBag
    gc.freeze()
    start = time.perf_counter()
    bag = DagBag(dag_folder=sys.argv[1])
    elapsed = time.perf_counter() - start
    assert not bag.import_errors, bag.import_errors
    print("PARSED", elapsed, len(bag.dags))
    """
)


def parse_once(path: Path, env: dict[str, str]) -> float:
    stdout = subprocess.run(
        [sys.executable, "-c", PROBE, str(path)], env=env, check=True, capture_output=True, text=True
    ).stdout
    line = next(line for line in stdout.splitlines() if line.startswith("PARSED "))
    return float(line.split()[1])


def measure(repeat: int = 7, log=print) -> dict:
    """Median parse seconds of the trivial DAG and of every file in dags/, and each one's ratio to it."""
    home = tempfile.mkdtemp(prefix="bench-airflow-")
    # Without PYTHONDONTWRITEBYTECODE, as the stacks' components run (airflow_stack.env.airflow_env):
    # a dag-processor compiles our modules once and reads their bytecode caches from then on.
    env = {
        **{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
        "AIRFLOW_HOME": home,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), str(ROOT / "include")]),
        "DEPLOYMENT_CONFIG": os.environ.get("DEPLOYMENT_CONFIG", "production"),
    }
    trivial = Path(home) / "trivial_dag.py"
    trivial.write_text(TRIVIAL_DAG)
    files = [trivial, *sorted((ROOT / "dags").glob("*.py"))]
    samples: dict[str, list[float]] = {path.name: [] for path in files}
    try:
        for path in files:
            parse_once(path, env)  # warm the OS file cache and write the bytecode caches
        for _ in range(repeat):  # round-robin, so that a change in the machine's load hits every file
            for path in files:
                samples[path.name].append(parse_once(path, env))
    finally:
        shutil.rmtree(home, ignore_errors=True)
    medians = {name: statistics.median(found) for name, found in samples.items()}
    base = medians[trivial.name]
    log(f"{'file':<28} {'median s':>9} {'x trivial':>10}")
    for name, seconds in medians.items():
        log(f"{name:<28} {seconds:9.3f} {seconds / base:10.2f}")
    ratios = {name: round(seconds / base, 3) for name, seconds in medians.items()}
    return {"repeat": repeat, "baseline": trivial.name, "median_seconds": medians, "ratio": ratios}


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    return measure(args.repeat)


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
