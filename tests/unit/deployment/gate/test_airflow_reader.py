"""The pipeline's reader of Airflow's API logs in once per machine, not once per task process."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from deployment.gate import airflow_api as reader_module
from deployment.gate.airflow_api import TOKEN_REUSE_SECONDS, AirflowReader

PATH = "/api/v2/eventLogs"


@pytest.fixture
def new_process(monkeypatch):
    """Forget this process's readers, as the next task process starts without them."""

    def forget():
        monkeypatch.setattr(reader_module, "_readers", {})

    forget()
    return forget


def _read(conn_id: str = "airflow_api") -> dict:
    return AirflowReader.from_connection(conn_id).get(PATH, {"dag_id": "deploy_production"})


def test_a_process_reads_with_one_reader_and_one_login(airflow_api, new_process):
    assert AirflowReader.from_connection("airflow_api") is AirflowReader.from_connection("airflow_api")
    for _ in range(3):
        _read()
    assert airflow_api.logins == 1 and airflow_api.requests == [PATH] * 3


def test_the_next_task_process_on_the_machine_reuses_the_token(airflow_api, new_process):
    _read()
    new_process()
    _read()
    new_process()
    _read()
    assert airflow_api.logins == 1 and len(airflow_api.requests) == 3


def test_a_token_the_api_no_longer_takes_is_dropped_and_the_reader_logs_in_again(airflow_api, new_process):
    _read()
    airflow_api.restart()
    new_process()
    assert _read()["total_entries"] == 0
    assert airflow_api.logins == 2
    new_process()
    _read()
    assert airflow_api.logins == 2, "the new token is the one kept"


def test_a_refusal_of_the_user_is_not_taken_for_a_stale_token(airflow_api, new_process):
    _read()
    new_process()
    with pytest.raises(reader_module.AirflowApiError, match="403"):
        AirflowReader.from_connection("airflow_api").get("/api/v2/forbidden")
    assert airflow_api.logins == 1, "a 403 Forbidden is the role's answer: logging in again changes nothing"


@pytest.mark.parametrize("lifetime", [None, 30])
def test_a_token_without_an_expiry_or_about_to_expire_is_not_kept(airflow_api, new_process, lifetime):
    airflow_api.token_seconds = lifetime
    _read()
    new_process()
    _read()
    assert airflow_api.logins == 2


def test_a_token_is_kept_for_one_user_and_password_only(airflow_api, new_process, monkeypatch):
    _read()
    new_process()
    monkeypatch.setenv("AIRFLOW_CONN_AIRFLOW_API", airflow_api.connection_uri.replace("-pass@", "-pass2@"))
    _read()
    assert airflow_api.logins == 2


def test_a_kept_token_is_used_for_an_hour_at_most(airflow_api, new_process, monkeypatch):
    _read()
    new_process()
    later = time.time() + TOKEN_REUSE_SECONDS + 1
    monkeypatch.setattr(reader_module.time, "time", lambda: later)
    _read()
    assert airflow_api.logins == 2


def test_reads_from_several_threads_at_once_log_in_once(airflow_api, new_process):
    reader = AirflowReader.from_connection("airflow_api")
    start = threading.Barrier(4)

    def read() -> dict:
        start.wait(timeout=10)
        return reader.get(PATH)

    with ThreadPoolExecutor(max_workers=4) as pool:
        pages = list(pool.map(lambda _: read(), range(4)))

    assert [page["total_entries"] for page in pages] == [0] * 4
    assert airflow_api.logins == 1
