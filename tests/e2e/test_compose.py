"""docker-compose.yaml: generated from the stack description, and in step with the Celery e2e test.

Docker does not run here, so the file is checked for structure and compared with
what the CeleryExecutor e2e test starts: the same settings and the same commands.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from airflow_stack.compose import GENERATE_SECRETS, SECRET_SETTINGS, SECRETS_FILE, compose_stack, render_text
from airflow_stack.env import FAB_AUTH_MANAGER, PIPELINE_CONNECTION, ROOT, airflow_settings
from airflow_stack.services import celery_stack

COMPOSE_FILE = ROOT / "docker-compose.yaml"
AIRFLOW_SERVICES = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-celery-worker": "celery-worker",
}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def e2e_stack(tmp_path_factory):
    return celery_stack(tmp_path_factory.mktemp("compose-check"), "airflow_e2e_check", "e2e-check", {})


def test_committed_file_is_what_the_generator_renders():
    regenerate = "PYTHONPATH=include python -m airflow_stack compose > docker-compose.yaml"
    assert COMPOSE_FILE.read_text() == render_text(), f"docker-compose.yaml is stale: {regenerate}"


def test_services_of_the_multi_node_stack(compose):
    assert set(compose["services"]) == {"postgres", "redis", "sandbox", "airflow-init", *AIRFLOW_SERVICES}
    assert compose["services"]["airflow-apiserver"]["image"].endswith(":3.3.2")
    dockerfile = (ROOT / compose["services"]["sandbox"]["build"]["dockerfile"]).read_text()
    assert "FROM apache/airflow:3.3.2-python3.11" in dockerfile


def test_airflow_services_run_celery_on_postgres_and_redis_with_generated_secrets(compose):
    envs = [compose["services"][name]["environment"] for name in [*AIRFLOW_SERVICES, "airflow-init"]]
    for env in envs:
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith(
            "postgresql+psycopg2://airflow:airflow@postgres/"
        )
        assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://redis:6379/0"
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
        assert env["DEPLOYMENT_CONFIG"] == "sandbox"
        assert env["AIRFLOW__CORE__AUTH_MANAGER"] == FAB_AUTH_MANAGER
        assert env[PIPELINE_CONNECTION] == "http://pipeline:pipeline-pass@airflow-apiserver:8080"
    assert not any(key in env for env in envs for key in SECRET_SETTINGS), "no secret is in the file"
    for name in [*AIRFLOW_SERVICES, "airflow-init"]:
        assert f". {SECRETS_FILE}" in compose["services"][name]["entrypoint"][2], name
    assert compose["services"]["airflow-init"]["entrypoint"][2].startswith(GENERATE_SECRETS)


def test_published_ports_bind_loopback_only(compose):
    published = [port for service in compose["services"].values() for port in service.get("ports", [])]
    assert published and all(port.startswith("127.0.0.1:") for port in published), published


def test_secrets_are_generated_once_private_and_valid(tmp_path):
    import base64
    import os
    import stat

    script = GENERATE_SECRETS.replace(str(SECRETS_FILE), str(tmp_path / "secrets.env"))
    subprocess.run(["bash", "-c", script], check=True)
    first = (tmp_path / "secrets.env").read_text()
    subprocess.run(["bash", "-c", script], check=True)
    assert (tmp_path / "secrets.env").read_text() == first, "a restart keeps the secrets"
    assert stat.S_IMODE(os.stat(tmp_path / "secrets.env").st_mode) == 0o600
    values = dict(line.split("=", 1) for line in first.splitlines())
    assert set(values) == set(SECRET_SETTINGS) and len(values["AIRFLOW__API_AUTH__JWT_SECRET"]) == 64
    assert len(base64.urlsafe_b64decode(values["AIRFLOW__CORE__FERNET_KEY"])) == 32


def test_code_is_mounted_and_services_start_in_order(compose):
    for name in AIRFLOW_SERVICES:
        service = compose["services"][name]
        mounts = {m.split(":")[0] for m in service["volumes"]}
        assert {"./dags", "./plugins", "./include"} <= mounts, name
        assert service["depends_on"]["airflow-init"] == {"condition": "service_completed_successfully"}
        assert service["depends_on"]["sandbox"] == {"condition": "service_healthy"}
    assert compose["services"]["airflow-init"]["command"] == ["init"]
    assert "./scripts:/opt/airflow/scripts" in compose["services"]["airflow-init"]["volumes"], (
        "setup_roles.py"
    )
    assert compose["services"]["airflow-init"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_same_settings_and_commands_as_the_celery_e2e_stack(compose, e2e_stack):
    """Only hosts, ports, paths and secrets differ between the compose stack and the tested one."""
    tested = airflow_settings(e2e_stack)
    commands = e2e_stack.components()
    deployed = compose_stack()
    for service, component in AIRFLOW_SERVICES.items():
        env = compose["services"][service]["environment"]
        assert set(env) == set(tested) - _fast_only(e2e_stack) - set(SECRET_SETTINGS), service
        assert compose["services"][service]["command"] == _portable(commands[component], e2e_stack, deployed)
    same = {k for k in tested if k in env and not _site_specific(k)}
    assert same and {k: env[k] for k in same} == {k: tested[k] for k in same}


def test_sandbox_service_arguments_are_accepted_by_the_sandbox_cli(compose):
    command = compose["services"]["sandbox"]["command"]
    env = {"PYTHONPATH": f"{ROOT / 'plugins'}:{ROOT / 'include'}", "PATH": "/usr/bin:/bin"}
    help_text = subprocess.run(
        [sys.executable, "-m", "sandbox", command[0], "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
    ).stdout
    for flag in (arg for arg in command if arg.startswith("--")):
        assert flag in help_text, f"python -m sandbox {command[0]} has no {flag}"


def _fast_only(stack) -> set[str]:
    from dataclasses import replace

    return set(airflow_settings(stack)) - set(airflow_settings(replace(stack, fast=False)))


def _site_specific(key: str) -> bool:
    return any(
        word in key
        for word in (
            "HOME",
            "FOLDER",
            "_DIR",
            "CONN",
            "URL",
            "PORT",
            "HOST",
            "SECRET",
            "FERNET",
            "PASSWORDS_FILE",
            "PYTHONPATH",
            "QUEUE",
            "BACKEND",
        )
    )


def _portable(command: list[str], tested, deployed) -> list[str]:
    """The tested command with the tested stack's host, port and queue replaced by the compose stack's."""
    swap = {
        tested.api_host: deployed.api_host,
        str(tested.api_port): str(deployed.api_port),
        tested.celery_queue: deployed.celery_queue,
    }
    return [swap.get(arg, arg) for arg in command]


def test_paths_point_into_the_mounted_repository(compose):
    env = compose["services"]["airflow-scheduler"]["environment"]
    assert Path(env["AIRFLOW__CORE__DAGS_FOLDER"]) == Path("/opt/airflow/dags")
    assert env["PYTHONPATH"] == "/opt/airflow/plugins:/opt/airflow/include"
