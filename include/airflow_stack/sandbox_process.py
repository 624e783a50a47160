"""The sandbox as a background process (``python -m sandbox start|stop``), driven over its control API.

Airflow's components read the sandbox's connections from the ``connections.env``
it writes; faults and reseeding go through the control API on base port + 7,
exactly as a person at a terminal would use them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from airflow_stack.env import ROOT, read_connections_env

CONTROL_OFFSET = 7


class SandboxError(RuntimeError):
    """The sandbox did not start or stop, or its control API refused a request."""


@dataclass
class SandboxProcess:
    state_dir: Path
    base_port: int = 5100
    config: str = "sandbox"
    # How long the emulated Amplify job and CloudFormation stack update take.
    job_seconds: float = 2.0
    update_seconds: float = 2.0

    @property
    def control_url(self) -> str:
        return f"http://127.0.0.1:{self.base_port + CONTROL_OFFSET}"

    def _cli(self, *args: str) -> subprocess.CompletedProcess:
        env_path = f"{ROOT / 'plugins'}:{ROOT / 'include'}"
        return subprocess.run(
            [sys.executable, "-m", "sandbox", *args, "--state-dir", str(self.state_dir)],
            cwd=ROOT,
            env={**_environ(), "PYTHONPATH": env_path},
            capture_output=True,
            text=True,
            timeout=120,
        )

    def start(self) -> None:
        result = self._cli(
            "start",
            "--base-port",
            str(self.base_port),
            "--config",
            self.config,
            "--job-seconds",
            str(self.job_seconds),
            "--update-seconds",
            str(self.update_seconds),
        )
        if result.returncode != 0:
            raise SandboxError(
                f"python -m sandbox start failed ({result.returncode}):\n"
                f"{result.stdout}{result.stderr}\n{self.log_tail()}"
            )

    def stop(self) -> None:
        result = self._cli("stop")
        if result.returncode != 0:
            raise SandboxError(f"python -m sandbox stop failed:\n{result.stdout}{result.stderr}")

    def running(self) -> bool:
        try:
            return requests.get(f"{self.control_url}/health", timeout=2).ok
        except requests.RequestException:
            return False

    def connections(self) -> dict[str, str]:
        return read_connections_env(self.state_dir / "connections.env")

    def control(self, method: str, path: str, body: Any = None) -> Any:
        response = requests.request(method, f"{self.control_url}{path}", json=body, timeout=30)
        if not response.ok:
            raise SandboxError(
                f"sandbox control API {method} {path} → HTTP {response.status_code}: {response.text}"
            )
        return response.json()

    def inject(self, kind: str, **fields: Any) -> int:
        return self.control("POST", "/faults", {"kind": kind, **fields})["id"]

    def remove_fault(self, fault_id: int) -> None:
        self.control("DELETE", f"/faults/{fault_id}")

    def reseed(self) -> None:
        """Back to production live at the previous version, faults and records cleared."""
        self.control("POST", "/reseed")

    def commit_of(self, ref: str) -> str:
        """The sha a tag or branch of the sandbox's GitHub repository points at (CI's GITHUB_SHA)."""
        from deployment.config import load_config

        cfg = load_config(self.config)
        conn = json.loads(self.connections()[f"AIRFLOW_CONN_{cfg.connections.github.upper()}"])
        response = requests.get(
            f"{conn['host'].rstrip('/')}/repos/{cfg.github.repository}/commits/{ref}",
            headers={"Authorization": f"token {conn['password']}"},
            timeout=10,
        )
        if not response.ok:
            raise SandboxError(f"the sandbox's GitHub has no commit for {ref}: HTTP {response.status_code}")
        return response.json()["sha"]

    def log_tail(self, lines: int = 30) -> str:
        log = self.state_dir / "sandbox.log"
        if not log.exists():
            return ""
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _environ() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
