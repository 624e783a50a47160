#!/usr/bin/env python3
"""Check the production image and the Helm values without a container engine (``make check-deploy``).

1. hadolint lints the Dockerfile.
2. The image's build is replayed: its COPY instructions into a temporary ``/opt/airflow``, its
   ``pip install`` into a fresh python3.11 virtualenv (by uv, from the same requirement files,
   so the runtime set alone: no test tools, no sandbox), its ENV; then, with the image's
   AIRFLOW_HOME, ``airflow dags list-import-errors`` must be empty and ``airflow dags list``
   must show both DAGs.
3. Every option under ``config:`` in ``deploy/helm/values.yaml`` is one that the replayed image's
   Airflow and providers know (the chart's schema accepts any key there, and Airflow ignores an
   unknown one: a misspelt production setting would be silently lost).
4. ``deploy/helm/values.yaml`` is validated against the official chart's values.schema.json
   (check-jsonschema), when that file is in deploy/helm/ (deploy/helm/README.md says which
   chart release it belongs to); without it the step is skipped and says so, and
   REQUIRE_CHART_SCHEMA=1 turns the skip into a failure.

Each step prints its time. ``--keep`` leaves the replayed image and virtualenv in place.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
VALUES = ROOT / "deploy" / "helm" / "values.yaml"
SCHEMA = ROOT / "deploy" / "helm" / "values.schema.json"
IMAGE_ROOT = "/opt/airflow"  # the official image's AIRFLOW_HOME, where the Dockerfile puts everything
# The base image's Python (apache/airflow:<version>-python3.11) when the host has it; otherwise the
# interpreter running this check (3.12 or 3.13: the same pinned set resolves for every supported one).
PYTHON = shutil.which("python3.11") or sys.executable
DAG_IDS = {"deploy_production", "rollback_production"}
TOOLS = Path(sys.executable).parent  # hadolint, check-jsonschema and uv live beside this interpreter
VERBOSE = False  # --verbose: each command's time


class CheckFailed(Exception):
    """A step found a problem; the message says which."""


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` for every instruction, continuation lines joined, comments dropped."""
    found, pending = [], ""
    for line in dockerfile.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, rest = (pending + stripped).partition(" ")
        found.append((keyword.upper(), rest.strip()))
        pending = ""
    return found


def in_replay(path: str, image: Path) -> Path:
    """Where an image path (under /opt/airflow) lies in the replayed image."""
    if path != IMAGE_ROOT and not path.startswith(IMAGE_ROOT + "/"):
        raise CheckFailed(f"the replay only knows paths under {IMAGE_ROOT}, not {path}")
    return image / path[len(IMAGE_ROOT) :].lstrip("/")


def mapped(value: str, image: Path) -> str:
    """An ENV value or RUN argument with every /opt/airflow path put in the replayed image."""
    return value.replace(IMAGE_ROOT, str(image))


def replay_copy(arguments: str, image: Path) -> list[str]:
    """COPY [--flags] SRC... DEST with Docker's rules for folders; the build context is the repository."""
    words = [w for w in shlex.split(arguments) if not w.startswith("--")]
    *sources, dest = words
    target = in_replay(dest, image)
    copied = []
    for source in sources:
        path = ROOT / source
        if not path.exists():
            raise CheckFailed(f"COPY {source}: not in the build context (the image would not build)")
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")  # .dockerignore leaves caches out
        if path.is_dir():
            shutil.copytree(path, target, dirs_exist_ok=True, ignore=ignore)
        elif dest.endswith("/") or len(sources) > 1:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target / path.name)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        copied.append(source)
    return copied


def replay_run(arguments: str, image: Path, venv: Path, env: dict[str, str]) -> None:
    """RUN: ``pip install`` is replayed by uv into the virtualenv, ``python ...`` by its interpreter."""
    argv = [mapped(word, image) for word in shlex.split(arguments)]
    if argv[:2] == ["pip", "install"]:
        options = [w for w in argv[2:] if w != "--no-cache-dir"]
        uv = [str(TOOLS / "uv"), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python")]
        command = uv + options
    elif argv[0] == "python":
        command = [str(venv / "bin" / "python"), *argv[1:]]
    else:
        raise CheckFailed(f"RUN {arguments!r}: check_deploy.py does not know how to replay it")
    run(command, env)


def run(command: list[str], env: dict[str, str] | None = None) -> str:
    started = time.monotonic()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if VERBOSE:
        shown = " ".join(
            "<script>" if "\n" in c else Path(c).name if c.startswith("/") else c for c in command[:4]
        )
        print(f"check-deploy:   {shown} ... {time.monotonic() - started:.1f} s", flush=True)
    if done.returncode != 0:
        shown = " ".join(shlex.quote(c) for c in command)
        raise CheckFailed(f"{shown} exited {done.returncode}\n{done.stdout}{done.stderr}".rstrip())
    return done.stdout


def airflow_json(command: list[str], env: dict[str, str]) -> list[dict]:
    """An ``airflow ... --output json`` answer: its last line (Airflow logs its warnings to stdout too)."""
    lines = run([*command, "--output", "json"], env).strip().splitlines()
    return json.loads(lines[-1]) if lines else []


def base_env() -> dict[str, str]:
    """This process's environment without the settings that would leak into the replayed image."""
    dropped = ("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    for name in ("PYTHONPATH", "VIRTUAL_ENV", "AIRFLOW_HOME", "DEPLOYMENT_CONFIG", "PYTHONDONTWRITEBYTECODE"):
        env.pop(name, None)
    return env


def check_hadolint() -> str:
    run([str(TOOLS / "hadolint"), str(DOCKERFILE)])
    return "no findings"


def check_image(work: Path) -> str:
    image, venv = work / "opt" / "airflow", work / "venv"
    image.mkdir(parents=True)
    run([PYTHON, "-m", "venv", "--without-pip", str(venv)])
    env = base_env()
    copied: list[str] = []
    for keyword, arguments in instructions(DOCKERFILE):
        if keyword == "COPY":
            copied += replay_copy(arguments, image)
        elif keyword == "ENV":
            for word in shlex.split(arguments):
                name, _, value = word.partition("=")
                env[name] = mapped(value, image)
        elif keyword == "RUN":
            replay_run(arguments, image, venv, env)
        elif keyword not in ("FROM", "ARG", "LABEL", "USER", "WORKDIR"):
            raise CheckFailed(f"{keyword}: check_deploy.py does not know how to replay it")
    leaked = [s for s in copied if s.startswith(("include/sandbox", "include/airflow_stack"))]
    if leaked:
        raise CheckFailed(f"the image must not hold the sandbox or the local-stack tooling: {leaked}")
    # The official image's settings (AIRFLOW_HOME=/opt/airflow, its default folders); examples off.
    env |= {
        "AIRFLOW_HOME": str(image),
        "AIRFLOW__CORE__DAGS_FOLDER": str(image / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(image / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
    }
    airflow = str(venv / "bin" / "airflow")
    run([airflow, "db", "migrate"], env)
    errors = airflow_json([airflow, "dags", "list-import-errors", "--local"], env)
    if errors:
        raise CheckFailed("import errors in the replayed image:\n" + json.dumps(errors, indent=2))
    dags = {d["dag_id"] for d in airflow_json([airflow, "dags", "list", "--local"], env)}
    if dags != DAG_IDS:
        raise CheckFailed(f"the replayed image's DAGs are {sorted(dags)}, expected {sorted(DAG_IDS)}")
    selected = env.get("DEPLOYMENT_CONFIG")
    return f"DEPLOYMENT_CONFIG={selected}: {', '.join(sorted(dags))} imported, no import errors"


# Run by the replayed image's interpreter: the config options its Airflow and providers describe.
UNKNOWN_OPTIONS = """
import sys, yaml
from airflow.configuration import conf
known = conf.configuration_description
values = yaml.safe_load(open(sys.argv[1])).get("config") or {}
for section, options in values.items():
    for option in options:
        if option not in known.get(section, {}).get("options", {}):
            print(f"[{section}] {option}")
"""


def check_config_options(work: Path) -> str:
    python = work / "venv" / "bin" / "python"
    if not python.exists():
        raise CheckFailed("no replayed image to ask (its step failed)")
    env = base_env() | {"AIRFLOW_HOME": str(work / "opt" / "airflow")}
    unknown = run([str(python), "-c", UNKNOWN_OPTIONS, str(VALUES)], env).split("\n")
    unknown = [line for line in unknown if line.startswith("[")]
    if unknown:
        raise CheckFailed(f"the image's Airflow has no such option: {', '.join(unknown)}")
    return "every config: option is one Airflow knows"


def check_values() -> str:
    if not SCHEMA.exists():
        message = f"SKIPPED: {SCHEMA.relative_to(ROOT)} is absent (deploy/helm/README.md: where to get it)"
        if os.environ.get("REQUIRE_CHART_SCHEMA") == "1":
            raise CheckFailed(message.removeprefix("SKIPPED: "))
        return message
    run([str(TOOLS / "check-jsonschema"), "--schemafile", str(SCHEMA), str(VALUES)])
    return f"{VALUES.relative_to(ROOT)} valid against {SCHEMA.relative_to(ROOT)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the replayed image and virtualenv")
    parser.add_argument("--verbose", action="store_true", help="print each command's time")
    args = parser.parse_args(argv)
    global VERBOSE
    VERBOSE = args.verbose

    work = Path(tempfile.mkdtemp(prefix="check-deploy-"))
    steps = {
        "hadolint": check_hadolint,
        "image replay": lambda: check_image(work),
        "config options": lambda: check_config_options(work),
        "helm values": check_values,
    }
    started, failed = time.monotonic(), False
    try:
        for name, step in steps.items():
            step_started = time.monotonic()
            try:
                outcome = step()
            except CheckFailed as err:
                outcome, failed = f"FAILED: {err}", True
            print(f"check-deploy: {name}: {outcome} ({time.monotonic() - step_started:.1f} s)", flush=True)
    finally:
        if args.keep:
            print(f"check-deploy: kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"check-deploy: {'FAILED' if failed else 'passed'} in {time.monotonic() - started:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
