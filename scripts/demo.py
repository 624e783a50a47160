#!/usr/bin/env python3
"""A production release on the local sandbox, start to finish: ``demo.py [--rollback]``.

Starts the sandbox and Airflow if they are not running, puts the sandbox back at
v1.0.0 live, triggers deploy_production for v1.1.0 with scripts/trigger_release.py
(exactly as CI does), approves it as two configured approvers over the REST API,
shows the phases advancing and the traffic split as the sandbox's front door serves it
(its control API's ``GET /traffic``), and ends with a summary. The stack keeps running
afterwards for a look in the UI; ``make down`` stops it.

--rollback first injects a smoke-test failure for the new version through the
sandbox control API, so the release is rolled back.

Exit status: 0 when the release succeeded (with --rollback: when it failed and
was rolled back as intended); 1 otherwise; 2 when the stack could not start.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "include"), str(ROOT / "plugins")]

from airflow_stack import local  # noqa: E402
from airflow_stack.client import AirflowClient, stack_clients  # noqa: E402
from airflow_stack.env import ADMIN, APPROVERS, CI_USER, DAG_ID, passwords  # noqa: E402
from airflow_stack.sandbox_process import SandboxError  # noqa: E402
from airflow_stack.supervisor import StackError  # noqa: E402
from deployment.release.phase_registry import GROUP_IDS  # noqa: E402

TRIGGER_SCRIPT = ROOT / "scripts" / "trigger_release.py"
# The release's task groups, with the tasks and the rollback group beside them, as the run shows them.
PHASES = ("record_release", "announce_emergency", *GROUP_IDS, "rollback", "record_outcome")
ACTIVE = {"running", "queued", "scheduled", "up_for_retry", "up_for_reschedule", "restarting"}


class Display:
    """The phase table: redrawn in place on a terminal, one line per change otherwise."""

    COLOURS = {
        "done": "32",
        "failed": "31",
        "running": "36",
        "waiting": "33",
        "approval": "35",
        "skipped": "90",
        "not run": "90",
    }

    def __init__(self, stream=sys.stdout) -> None:
        self.stream = stream
        self.tty = stream.isatty() and os.environ.get("TERM") != "dumb"
        self.colour = self.tty and not os.environ.get("NO_COLOR")
        self.drawn = 0
        self.last: dict[str, str] = {}
        self.events: list[str] = []

    def paint(self, text: str, state: str) -> str:
        code = self.COLOURS.get(state)
        return f"\x1b[{code}m{text}\x1b[0m" if self.colour and code else text

    def event(self, message: str) -> None:
        line = f"{datetime.now():%H:%M:%S} {message}"
        if self.tty:
            self.events = [*self.events, line][-6:]
        else:
            print(line, file=self.stream, flush=True)

    def show(self, header: str, rows: list[tuple[str, str, str]]) -> None:
        if not self.tty:
            for phase, state, detail in rows:
                if self.last.get(phase) != state and state != "pending":
                    print(
                        f"{datetime.now():%H:%M:%S} {phase}: {state} {detail}".rstrip(),
                        file=self.stream,
                        flush=True,
                    )
                self.last[phase] = state
            return
        table = [f"  {self.paint(f'{state:<9}', state)} {phase:<27} {info}" for phase, state, info in rows]
        lines = [header, *table, "", *self.events]
        if self.drawn:
            self.stream.write(f"\x1b[{self.drawn}F\x1b[J")
        self.stream.write("\n".join(lines) + "\n")
        self.stream.flush()
        self.drawn = len(lines)


def phase_of(task_id: str) -> str:
    return task_id.split(".", 1)[0]


def phase_rows(tis: list[dict]) -> list[tuple[str, str, str]]:
    by_phase: dict[str, list[dict]] = {}
    for ti in tis:
        by_phase.setdefault(phase_of(ti["task_id"]), []).append(ti)
    order = [p for p in PHASES if p in by_phase] + sorted(set(by_phase) - set(PHASES))
    return [(phase, *_phase_state(by_phase[phase])) for phase in order]


def _phase_state(tis: list[dict]) -> tuple[str, str]:
    states = [ti["state"] for ti in tis]
    done = sum(s in ("success", "skipped") for s in states)
    seconds = phase_seconds(tis)
    timing = f"{seconds:5.1f} s" if seconds is not None else ""
    if "failed" in states:
        return "failed", timing
    if "upstream_failed" in states:
        return "not run", "an upstream phase failed"
    if "awaiting_input" in states:
        return "approval", "waiting for an approver"
    if "deferred" in states:
        return "waiting", f"{done}/{len(states)} tasks, waiting on a trigger"
    if any(s in ACTIVE for s in states) or (done and done < len(states)):
        return "running", f"{done}/{len(states)} tasks"
    if states and all(s == "skipped" for s in states):
        return "skipped", ""
    if done == len(states):
        return "done", timing
    return "pending", ""


def phase_seconds(tis: list[dict]) -> float | None:
    starts = [ti["start_date"] for ti in tis if ti.get("start_date")]
    ends = [ti["end_date"] for ti in tis if ti.get("end_date")]
    if not starts or not ends:
        return None
    return (datetime.fromisoformat(max(ends)) - datetime.fromisoformat(min(starts))).total_seconds()


def trigger(api_url: str, version: str, commit: str, author: str) -> str:
    """Run the CI client as CI does; the run id it created."""
    result = subprocess.run(
        [
            sys.executable,
            str(TRIGGER_SCRIPT),
            "--url",
            api_url,
            "--username",
            CI_USER,
            "--password",
            passwords()[CI_USER],
            "--tag",
            version,
            "--commit-sha",
            commit,
            "--author",
            author,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"trigger_release.py exited {result.returncode}: {result.stderr.strip()}")
    match = re.search(r"^release run: (\S+)$", result.stdout, re.MULTILINE)
    if not match:
        raise RuntimeError(f"trigger_release.py printed no run id:\n{result.stdout}")
    return match.group(1)


def approve_waiting(
    users: dict[str, AirflowClient], run_id: str, tis: list[dict], display: Display, approved: list[str]
) -> None:
    """Answer every task awaiting input as the first assigned approver who has not approved yet."""
    for ti in tis:
        if ti["state"] != "awaiting_input":
            continue
        detail = users[ADMIN].hitl_detail(run_id, ti["task_id"])
        if detail.get("response_received"):
            continue
        assigned = [u["name"] for u in detail["assigned_users"]] or list(APPROVERS)
        approver = next((u for u in assigned if u in APPROVERS and u not in approved), None)
        if approver is None:
            display.event(f"{ti['task_id']}: nobody left to approve (assigned: {assigned})")
            continue
        users[approver].respond(run_id, ti["task_id"], "Approve")
        approved.append(approver)
        display.event(f"{approver} approved {ti['task_id']} (PATCH .../hitlDetails as {approver})")


def describe_traffic(traffic: dict) -> str:
    """The split the sandbox serves, as its control API reports it (``GET /traffic``)."""
    weights = traffic.get("weights") or {}
    split = " / ".join(f"{colour} {weights[colour]} %" for colour in ("blue", "green") if colour in weights)
    if traffic.get("router") != "keyvaluestore":
        return f"Route 53 weighted records: {split or 'none'}"
    routing, viewers = traffic.get("routing") or {}, traffic.get("viewers")
    line = f"front door: {split or 'no routing key'} (epoch {routing.get('epoch', '?')})"
    if viewers:
        line += f", viewers on blue/green: {viewers.get('blue', 0)}/{viewers.get('green', 0)}"
    return line


def watch_traffic(box, display: Display, last: list[str]) -> str | None:
    """Show the split when it changes: the front door's function's own reading of its store."""
    try:
        traffic = box.control("GET", "/traffic")
    except (SandboxError, OSError) as exc:
        display.event(f"traffic: the sandbox did not say ({exc})")
        return None
    split = (traffic.get("weights"), (traffic.get("routing") or {}).get("epoch"))
    if not last or last[0] != repr(split):
        last[:] = [repr(split)]
        display.event(describe_traffic(traffic))
    return describe_traffic(traffic)


def clear_active_runs(admin: AirflowClient, display: Display) -> None:
    for run in admin.runs(states=("queued", "running")):
        admin.request("PATCH", f"/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}", json={"state": "failed"})
        display.event(f"marked an earlier unfinished run failed: {run['dag_run_id']}")


def summary(
    run: dict,
    tis: list[dict],
    approved: list[str],
    ui_url: str,
    rollback_demo: bool,
    traffic: str | None = None,
) -> str:
    rows = phase_rows(tis)
    seconds = {p: phase_seconds([ti for ti in tis if phase_of(ti["task_id"]) == p]) for p, _, _ in rows}
    width = max(len(p) for p, _, _ in rows)
    started, ended = run.get("start_date"), run.get("end_date")
    total = (
        (datetime.fromisoformat(ended) - datetime.fromisoformat(started)).total_seconds()
        if started and ended
        else None
    )
    outcome = {"success": "SUCCEEDED", "failed": "FAILED"}.get(run["state"], run["state"].upper())
    if run["state"] == "failed" and any(p == "rollback" and s == "done" for p, s, _ in rows):
        outcome = "FAILED and ROLLED BACK"
    pw = passwords()
    lines = [
        "",
        f"Release {run['conf'].get('version')}: {outcome}"
        + (f" in {total:.0f} s" if total is not None else "")
        + (" (a smoke-test failure was injected)" if rollback_demo else ""),
        f"Approved by: {', '.join(approved) or 'nobody'} (author: {run['conf'].get('author')})",
        *([f"Traffic now, {traffic}"] if traffic else []),
        "Phase durations:",
        *[
            f"  {p:<{width}}  {s:<9} {seconds.get(p) or 0:6.1f} s"
            for p, s, _ in rows
            if s not in ("pending", "skipped", "not run")
        ],
        "",
        "Look in the UI:",
        f"  this run:          {ui_url}/dags/{DAG_ID}/runs/{run['dag_run_id']}",
        f"  its graph:         {ui_url}/dags/{DAG_ID}/runs/{run['dag_run_id']}?mode=graph",
        f"  approvals:         {ui_url}/required_actions",
        f"Log in as {ADMIN} / {pw[ADMIN]}; approvers: " + ", ".join(f"{u} / {pw[u]}" for u in APPROVERS),
        "The stack keeps running: `make down` stops it.",
        f"Deployments view (releases, canary charts, DORA's four keys): {ui_url}/plugin/deployments",
    ]
    return "\n".join(lines)


def run_demo(version: str, author: str, rollback: bool, timeout: float) -> int:
    display = Display()
    try:
        stack = local.up(log=lambda m: print(m, flush=True))
    except (StackError, SandboxError, OSError) as exc:
        print(f"error: the stack did not start: {exc}", file=sys.stderr)
        return 2
    box = local.sandbox()
    users = stack_clients(stack)
    clear_active_runs(users[ADMIN], display)
    box.reseed()
    display.event("sandbox reseeded: production live at v1.0.0 on blue")
    seen_split: list[str] = []
    watch_traffic(box, display, seen_split)
    if rollback:
        fault = box.inject("smoke_failure", version=version)
        display.event(f"fault #{fault} injected through the sandbox control API: smoke_failure for {version}")
    rc_tag = "rc-" + version.removeprefix("v")
    commit = box.commit_of(rc_tag)  # CI's GITHUB_SHA: the tag points at the tested release candidate
    run_id = trigger(stack.api_url, version, commit, author)
    display.event(f"triggered {run_id} as CI would (scripts/trigger_release.py, author {author})")
    approved: list[str] = []
    header = f"deploy_production {version}   run {run_id}"
    deadline = time.monotonic() + timeout
    while True:
        run = users[CI_USER].run(run_id)
        tis = users[CI_USER].task_instances(run_id)
        approve_waiting(users, run_id, tis, display, approved)
        traffic = watch_traffic(box, display, seen_split)
        display.show(header, phase_rows(tis))
        if run["state"] in ("success", "failed"):
            break
        if time.monotonic() > deadline:
            print(f"no outcome after {timeout:.0f} s\n" + users[CI_USER].diagnose(run_id), file=sys.stderr)
            return 1
        time.sleep(1)
    print(summary(run, tis, approved, stack.ui_url, rollback, traffic), flush=True)
    if rollback:
        rolled_back = any(p == "rollback" and s == "done" for p, s, _ in phase_rows(tis))
        return 0 if run["state"] == "failed" and rolled_back else 1
    if run["state"] != "success":
        print("\n" + users[CI_USER].diagnose(run_id), file=sys.stderr)
    return 0 if run["state"] == "success" else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rollback", action="store_true", help="inject a smoke-test failure first")
    parser.add_argument("--version", default="v1.1.0", help="the version to release (rc-X.Y.Z must exist)")
    parser.add_argument("--author", default="dave", help="who cut the release (cannot approve it)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for the outcome")
    args = parser.parse_args(argv)
    return run_demo(args.version, args.author, args.rollback, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
