"""A local stack's SQLite database: writers wait for the lock longer than pysqlite's 5 s."""

from __future__ import annotations

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
