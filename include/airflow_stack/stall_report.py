"""What a local stack's API server was doing when a call to it got no answer in time.

A stall leaves no trace of its own: the request that hangs is logged only when it finishes, and
the machine is quiet again by the time anyone looks. So the client asks at the moment it gives up
on an attempt. Airflow's components print every thread's stack on SIGQUIT
(``airflow.utils.cli.sigquit_handler``, installed by the CLI that starts them), into the
component's log here; PostgreSQL tells what the stack's sessions are waiting on. The report is
for people reading a failed test, and a line of it (``digest``) for the failure's one-line summary.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections import Counter
from pathlib import Path

from airflow_stack.env import Stack

COMPONENT = "api-server"
REQUEST_LINES = 12
DUMP_WAIT_SECONDS = 2.0
# A frame of Airflow's thread dump, and the code whose frames tell where a thread is.
_FRAME = re.compile(r'File: "(.+)", line (\d+), in (.+)')
_OURS_OR_AIRFLOWS = re.compile(r"site-packages/airflow/|/(plugins|include|dags)/")


def stall_report(stack: Stack) -> str:
    """The API server's thread dump and last requests, and the database's busy sessions."""
    parts = [server_dump(stack)]
    if stack.db_url.startswith("postgresql"):
        parts.append(database_sessions(stack.db_url))
    return "\n".join(parts)


def server_dump(stack: Stack, wait: float = DUMP_WAIT_SECONDS) -> str:
    """Ask the API server for its threads' stacks (SIGQUIT) and return them with its last requests."""
    try:
        proc = json.loads((stack.home / "stack.json").read_text())["processes"][COMPONENT]
    except (OSError, KeyError, ValueError) as exc:
        return f"no {COMPONENT} process on record: {exc}"
    log = Path(proc["log"])
    size = log.stat().st_size if log.exists() else 0
    requests = [line for line in _tail(log, 400) if "request finished" in line][-REQUEST_LINES:]
    if not _catches(proc["pid"], signal.SIGQUIT):  # its default action would end the server
        return f"{COMPONENT} (pid {proc['pid']}) does not catch SIGQUIT: no thread dump asked for"
    try:
        os.kill(proc["pid"], signal.SIGQUIT)
    except OSError as exc:
        return f"{COMPONENT} (pid {proc['pid']}) could not be signalled: {exc}"
    dump = _grown(log, size, wait)
    head = f"--- {COMPONENT} pid {proc['pid']}: its last requests, then its threads ---"
    return "\n".join([head, *requests, dump or f"(no thread dump in {wait:.0f} s)"])


def digest(report: str) -> str:
    """Where the dumped threads were, counted: each thread's innermost frame in Airflow's code or
    ours (below it they only wait on a lock, a socket or a pool), most frequent first."""
    places: Counter[str] = Counter()
    thread: list[str] | None = None
    for line in [*report.splitlines(), "# Thread: end"]:
        if line.startswith("# Thread:"):
            if thread:
                places[thread[-1]] += 1
            thread = []
        elif thread is not None and (match := _FRAME.match(line)) and _OURS_OR_AIRFLOWS.search(match[1]):
            path = match[1].split("site-packages/")[-1]
            thread.append(f"{path}:{match[2]} {match[3]}")
    return "; ".join(f"{n}× {place}" for place, n in places.most_common(3)) or "no thread dump"


def database_sessions(url: str) -> str:
    """The stack database's sessions that are not idle: state, wait, transaction age, query."""
    import psycopg2
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    query = (
        "SELECT pid, state, wait_event_type, wait_event, "
        "round(extract(epoch FROM now() - xact_start)::numeric, 1), left(query, 160) "
        "FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid() ORDER BY xact_start"
    )
    where = {"dbname": parsed.database, "user": parsed.username, "host": parsed.host, "port": parsed.port}
    try:
        conn = psycopg2.connect(connect_timeout=3, **where)
        try:
            with conn.cursor() as cur:
                cur.execute(query, (parsed.database,))
                rows = cur.fetchall()
        finally:
            conn.close()
    except psycopg2.Error as exc:
        return f"--- database sessions: not read ({str(exc).strip()}) ---"
    states = Counter(row[1] for row in rows)
    busy = [" | ".join(str(v) for v in row) for row in rows if row[1] != "idle"]
    return "\n".join([f"--- database sessions of {parsed.database}: {dict(states)} ---", *busy])


def _catches(pid: int, sig: int) -> bool:
    """Whether process ``pid`` has a handler for ``sig`` (its SigCgt mask in /proc)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = next((line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), "0")
    return bool(int(caught, 16) >> (sig - 1) & 1)


def _grown(log: Path, since: int, wait: float) -> str:
    """What ``log`` gained after byte ``since``, once it stops growing (or ``wait`` runs out)."""
    deadline, seen = time.monotonic() + wait, since
    while time.monotonic() < deadline:
        time.sleep(0.2)
        size = log.stat().st_size
        if size > since and size == seen:
            break
        seen = size
    with log.open("rb") as f:
        f.seek(since)
        return f.read().decode(errors="replace").strip()


def _tail(path: Path, lines: int) -> list[str]:
    if not path.exists():
        return []
    with path.open("rb") as f:
        f.seek(max(0, path.stat().st_size - 200 * lines))
        return f.read().decode(errors="replace").splitlines()[-lines:]
