"""When a call to a stack's API server gets no answer, the client prints what the server was doing:
its threads' stacks (Airflow's SIGQUIT dump), its last requests and the database's busy sessions."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from airflow_stack.client import AirflowClient
from airflow_stack.stall_report import digest, stall_report
from tests.sandbox._servers import serving
from tests.unit.airflow_stack.test_stack_client import StallingApi

# A component as Airflow's CLI starts one: SIGQUIT prints every thread's stack (sigquit_handler),
# and one thread of ours is stuck waiting on a lock.
STUCK = """
import signal, sys, threading
from airflow.utils.cli import sigquit_handler

signal.signal(signal.SIGQUIT, sigquit_handler)

def wait_for_the_pool(lock):
    lock.acquire()

held = threading.Lock()
held.acquire()
threading.Thread(target=wait_for_the_pool, args=(held,), daemon=True).start()
print("request finished path=/api/v2/eventLogs duration_us=78748", flush=True)
print("ready", flush=True)
threading.Event().wait()
"""


@pytest.fixture
def stuck_server(tmp_path):
    """A stack home whose api-server is the stuck process above, logging where the supervisor would."""
    code = tmp_path / "plugins" / "stuck.py"
    code.parent.mkdir()
    code.write_text(STUCK)
    log = tmp_path / "processes" / "api-server.log"
    log.parent.mkdir()
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, str(code)], stdout=out, stderr=subprocess.STDOUT, env={"PYTHONUNBUFFERED": "1"}
        )
    deadline = time.monotonic() + 60
    while "ready" not in log.read_text():
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    processes = {"api-server": {"pid": proc.pid, "log": str(log)}}
    (tmp_path / "stack.json").write_text(json.dumps({"processes": processes}))
    yield SimpleNamespace(home=tmp_path, db_url="sqlite:///unused.db")
    proc.kill()
    proc.wait()


def test_the_report_holds_the_servers_threads_and_last_requests(stuck_server):
    report = stall_report(stuck_server)
    assert "path=/api/v2/eventLogs duration_us=78748" in report
    assert "in wait_for_the_pool" in report
    assert digest(report).startswith("1× /")
    assert "stuck.py:8 wait_for_the_pool" in digest(report)


def test_a_read_with_no_answer_prints_the_report_and_its_error_says_where_the_threads_were(
    stuck_server, capsys
):
    api = StallingApi(stalls=5)
    with serving(api) as url:
        client = AirflowClient(url, "ci", "ci-pass", timeout=0.3, on_stall=lambda: stall_report(stuck_server))
        with pytest.raises(Exception, match="stuck.py:8 wait_for_the_pool") as raised:
            client.run("r1")
    assert raised.type.__name__ == "ReadTimeout"
    printed = capsys.readouterr().out
    assert printed.count("no answer in 0.3 s") == 3
    assert printed.count("in wait_for_the_pool") == 3  # a dump at each attempt


def test_a_process_that_does_not_catch_sigquit_is_not_sent_it(tmp_path):
    """SIGQUIT's default action ends a process: only a component that installed Airflow's handler
    is asked for its threads."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "stack.json").write_text(
            json.dumps({"processes": {"api-server": {"pid": proc.pid, "log": str(tmp_path / "a.log")}}})
        )
        report = stall_report(SimpleNamespace(home=tmp_path, db_url="sqlite:///unused.db"))
        assert "does not catch SIGQUIT" in report
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()


def test_a_server_not_on_record_is_said(tmp_path):
    report = stall_report(SimpleNamespace(home=tmp_path, db_url="sqlite:///unused.db"))
    assert report.startswith("no api-server process on record")
    assert digest(report) == "no thread dump"


def test_the_databases_busy_sessions_are_listed():
    from airflow_stack.services import postgres_missing, postgres_url, scratch_database
    from airflow_stack.stall_report import database_sessions

    if reason := postgres_missing():
        pytest.skip(reason)
    import psycopg2

    with scratch_database("stall_report") as (database, _):
        url = postgres_url(database)
        held = psycopg2.connect(postgres_url(database).replace("postgresql+psycopg2", "postgresql"))
        try:
            held.cursor().execute("SELECT 42 AS held_open")  # psycopg2 opens a transaction: left idle in it
            listed = database_sessions(url)
        finally:
            held.close()
    assert f"database sessions of {database}: {{'idle in transaction': 1}}" in listed
    assert "SELECT 42 AS held_open" in listed
