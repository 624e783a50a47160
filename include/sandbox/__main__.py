"""``python -m sandbox run|start|stop``: the sandbox in the foreground, in the background, stopped.

    PYTHONPATH=plugins:include python -m sandbox run [--base-port 5100] [--config sandbox]
        [--state-dir .sandbox] [--job-seconds 2] [--update-seconds 2]

``run`` serves until Ctrl-C or SIGTERM. ``start`` runs the same detached (log in
``<state-dir>/sandbox.log``) and returns once the control API answers; ``stop``
sends SIGTERM to the process named in ``<state-dir>/sandbox.pid`` and waits for it.
Both write ``<state-dir>/connections.env`` and ``<state-dir>/endpoints.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("run", "run in the foreground"),
        ("start", "run in the background"),
        ("stop", "stop it"),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("--state-dir", type=Path, default=Path(".sandbox"))
        if name != "stop":
            sub.add_argument("--base-port", type=int, default=5100)
            sub.add_argument("--host", default="127.0.0.1", help="address the servers bind")
            sub.add_argument(
                "--public-host", default=None, help="host name clients use (connections, endpoints)"
            )
            sub.add_argument("--config", default="sandbox", help="config name or path (include/config)")
            sub.add_argument("--job-seconds", type=float, default=2.0, help="Amplify job duration")
            sub.add_argument("--update-seconds", type=float, default=2.0, help="stack update duration")
            sub.add_argument("--timeout", type=float, default=60.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    return {"run": run, "start": start, "stop": stop}[args.command](args)


def run(args: argparse.Namespace) -> int:
    if str(PROJECT_ROOT / "plugins") not in sys.path:  # `deployment` lives in plugins/
        sys.path.insert(0, str(PROJECT_ROOT / "plugins"))
    from deployment.config import load_config
    from sandbox.launcher import Sandbox

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("werkzeug", "mail.log"):  # a line per HTTP request / SMTP connection
        logging.getLogger(noisy).setLevel(logging.WARNING)
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())

    sandbox = Sandbox(
        load_config(args.config),
        base_port=args.base_port,
        job_seconds=args.job_seconds,
        update_seconds=args.update_seconds,
        host=args.host,
        public_host=args.public_host,
    )
    args.state_dir.mkdir(parents=True, exist_ok=True)
    pid_file = args.state_dir / "sandbox.pid"
    pid_file.write_text(f"{os.getpid()}\n")
    try:
        sandbox.start()
    except BaseException:
        pid_file.unlink(missing_ok=True)
        raise
    try:
        sandbox.write_state(args.state_dir)
        print("Sandbox running (Ctrl-C stops it):")
        for name, url in sandbox.endpoints.items():
            print(f"  {name:<11} {url}")
        print(f"Airflow connections: source {args.state_dir / 'connections.env'}", flush=True)
        # Wake up regularly: a signal the kernel hands to another (busy) thread, such as the
        # traffic simulator's, only sets a flag, and Python runs the handler when the main thread
        # next runs bytecode; a wait with no timeout could sleep through SIGTERM.
        while not stopping.wait(0.5):
            pass
    finally:
        print("Sandbox stopping...", flush=True)
        sandbox.stop()
        pid_file.unlink(missing_ok=True)
    print("Sandbox stopped.", flush=True)
    return 0


def start(args: argparse.Namespace) -> int:
    args.state_dir.mkdir(parents=True, exist_ok=True)
    if _running_pid(args.state_dir) is not None:
        print(f"a sandbox is already running (pid file {args.state_dir / 'sandbox.pid'})", file=sys.stderr)
        return 1
    log_path = args.state_dir / "sandbox.log"
    command = [
        sys.executable, "-m", "sandbox", "run",
        "--state-dir", str(args.state_dir), "--base-port", str(args.base_port), "--config", args.config,
        "--job-seconds", str(args.job_seconds), "--update-seconds", str(args.update_seconds),
        "--host", args.host, *(["--public-host", args.public_host] if args.public_host else []),
    ]  # fmt: skip
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(PROJECT_ROOT / "plugins"), str(PROJECT_ROOT / "include"), env.get("PYTHONPATH", "")]
    ).rstrip(os.pathsep)
    with open(log_path, "ab") as log_file:
        child = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
            env=env, start_new_session=True,
        )  # fmt: skip
    health = f"http://127.0.0.1:{args.base_port + 7}/health"
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            print(f"the sandbox exited with {child.returncode}; see {log_path}", file=sys.stderr)
            return 1
        try:
            with urllib.request.urlopen(health, timeout=1) as response:
                endpoints = json.load(response)["endpoints"]
        except OSError:
            time.sleep(0.2)
            continue
        print(f"Sandbox started (pid {child.pid}, log {log_path}):")
        for name, url in endpoints.items():
            print(f"  {name:<11} {url}")
        print(f"Airflow connections: source {args.state_dir / 'connections.env'}")
        return 0
    child.terminate()
    child.wait(timeout=10)
    print(f"the sandbox did not answer {health} within {args.timeout:.0f} s; see {log_path}", file=sys.stderr)
    return 1


def stop(args: argparse.Namespace) -> int:
    pid = _running_pid(args.state_dir)
    if pid is None:
        print("no sandbox is running")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
        print(f"the sandbox (pid {pid}) ignored SIGTERM for 20 s and was killed", file=sys.stderr)
    (args.state_dir / "sandbox.pid").unlink(missing_ok=True)
    print(f"Sandbox stopped (pid {pid}).")
    return 0


def _running_pid(state_dir: Path) -> int | None:
    """The pid in the pid file if that process is alive and is a sandbox; else None."""
    try:
        pid = int((state_dir / "sandbox.pid").read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    return pid if b"sandbox" in cmdline and _alive(pid) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by its parent) counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


if __name__ == "__main__":
    sys.exit(main())
