"""A local stack's database: on SQLite writers wait for the lock longer than pysqlite's 5 s; on
PostgreSQL with autovacuum off its tables are analyzed all the same."""

from __future__ import annotations

import time

import pytest
from airflow.settings import _get_async_conn_uri_from_sync
from sqlalchemy import make_url
from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite

from airflow_stack.env import SQLITE_LOCK_TIMEOUT_SECONDS, Stack


def test_a_writer_waits_for_the_sqlite_lock_in_the_sync_and_async_engines(tmp_path):
    # With SQLite's 5 s default, a run trigger behind another writer on a loaded machine can wait it
    # out and get HTTP 500 "Database error".
    url = Stack.with_free_ports(tmp_path).db_url
    assert SQLITE_LOCK_TIMEOUT_SECONDS >= 30
    _, sync_args = SQLiteDialect_pysqlite().create_connect_args(make_url(url))
    assert sync_args["timeout"] == SQLITE_LOCK_TIMEOUT_SECONDS
    # the async engine's URL as Airflow derives it from the sync one
    _, async_args = SQLiteDialect_aiosqlite().create_connect_args(
        make_url(_get_async_conn_uri_from_sync(url))
    )
    assert async_args["timeout"] == SQLITE_LOCK_TIMEOUT_SECONDS
    assert make_url(url).database == str(tmp_path / "airflow.db")


def test_a_stack_on_postgres_keeps_its_url(tmp_path):
    url = "postgresql+psycopg2://postgres@127.0.0.1:5432/airflow"
    assert Stack.with_free_ports(tmp_path, database_url=url).db_url == url


def test_a_scratch_database_is_analyzed_while_autovacuum_is_off():
    """With autovacuum off (this machine's PostgreSQL, CI's) a test stack's tables were never analyzed
    and Airflow's audit-log query ran for over 30 s; ``analyzed`` does autovacuum's ANALYZE."""
    from airflow_stack.services import analyzed, postgres_admin, postgres_missing, scratch_database

    if reason := postgres_missing():
        pytest.skip(reason)
    if postgres_admin("SHOW autovacuum")[0] == "on":
        pytest.skip("autovacuum is on: analyzed() adds nothing")
    last = "SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 'grows'"
    with scratch_database("analyzed") as (database, _):
        postgres_admin("CREATE TABLE grows AS SELECT generate_series(1, 1000) AS n", database)
        assert postgres_admin(last, database)[0] is None
        with analyzed(database, every=0.2):
            deadline = time.monotonic() + 10
            while postgres_admin(last, database)[0] is None:
                assert time.monotonic() < deadline, "not analyzed within 10 s"
                time.sleep(0.1)
