"""``python -m sandbox start|stop``: a background sandbox that leaves no process behind."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import boto3
import requests

from sandbox.launcher import PORT_OFFSETS
from sandbox.testing import free_base_port
from tests.sandbox._poll import poll

ROOT = Path(__file__).resolve().parents[2]


def _sandbox(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "include")}
    return subprocess.run(
        [sys.executable, "-m", "sandbox", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _port_free(port: int) -> bool:
    """Nothing listens on ``port``: a server can bind it again. SO_REUSEADDR as the sandbox's servers
    set it, so a connection in TIME_WAIT (whichever side closed it first) does not count."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _gone(pid: int) -> bool:
    """No such process, or only its exit status left for init to reap (a zombie)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except FileNotFoundError:
        return True


def test_start_serves_seeded_production_and_stop_leaves_nothing(tmp_path):
    base, state = free_base_port(), tmp_path / "state"
    started = _sandbox("start", "--base-port", str(base), "--state-dir", str(state))
    assert started.returncode == 0, started.stderr + (state / "sandbox.log").read_text()
    pid = int((state / "sandbox.pid").read_text())
    try:
        assert f"http://127.0.0.1:{base}" in started.stdout
        endpoints = json.loads((state / "endpoints.json").read_text())
        assert endpoints["control"] == f"http://127.0.0.1:{base + 7}"
        assert endpoints["pagerduty"] == f"http://127.0.0.1:{base + 8}"
        exports = (state / "connections.env").read_text().splitlines()
        assert all(line.startswith("export AIRFLOW_CONN_") for line in exports) and len(exports) == 10

        cloudformation = boto3.client(
            "cloudformation", endpoint_url=endpoints["aws"], region_name="us-west-2",
            aws_access_key_id="any", aws_secret_access_key="any",
        )  # fmt: skip
        stack = cloudformation.describe_stacks(StackName="bayon-coagent-production")["Stacks"][0]
        assert stack["StackStatus"] == "UPDATE_COMPLETE"  # created, then its API alias adopted
        # the simulated API requests run on the versions alias live routes them to (config backend)
        recorded = f"{endpoints['control']}/recorded/traffic"
        ticks = poll(lambda: [t for t in requests.get(recorded, timeout=5).json() if "alias" in t], bool, 30)
        assert ticks[-1][-1]["alias"] == {"1": 1.0} and set(ticks[-1][-1]["executed"]) == {"1"}
        assert _sandbox("start", "--base-port", str(base), "--state-dir", str(state)).returncode == 1
    finally:
        stopped = _sandbox("stop", "--state-dir", str(state))
    assert stopped.returncode == 0 and f"pid {pid}" in stopped.stdout
    assert _gone(pid)
    assert not (state / "sandbox.pid").exists()
    assert all(_port_free(base + offset) for offset in PORT_OFFSETS.values())
    assert "Sandbox stopped." in (state / "sandbox.log").read_text()
    assert _sandbox("stop", "--state-dir", str(state)).stdout.strip() == "no sandbox is running"


def test_public_host_names_the_endpoints_and_connections_for_other_containers():
    from deployment.config import load_config
    from sandbox.launcher import Sandbox

    box = Sandbox(load_config("sandbox"), base_port=6100, host="0.0.0.0", public_host="sandbox")
    assert box.host == "0.0.0.0"
    assert box.endpoints["aws"] == "http://sandbox:6100" and box.endpoints["smtp"] == "smtp://sandbox:6104"
    connections = box.connections()
    assert connections["aws_production"]["extra"]["endpoint_url"] == "http://sandbox:6100"
    assert connections["smtp_default"]["host"] == "sandbox"
    assert Sandbox(load_config("sandbox"), host="0.0.0.0").endpoints["aws"] == "http://127.0.0.1:5100"
