"""This machine's PostgreSQL and Redis, and the CeleryExecutor stack that runs on them.

The Celery end-to-end test and the benchmark both start that stack; each gets a
database of its own (created and dropped here) and a queue of its own on the shared Redis.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from airflow_stack.env import Stack

POSTGRES = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}  # trust authentication
REDIS = ("127.0.0.1", 6379)
REDIS_URL = f"redis://{REDIS[0]}:{REDIS[1]}/0"
# How often a scratch database is analyzed where autovacuum is off (``analyzed``).
ANALYZE_SECONDS = 20.0


def postgres_url(database: str) -> str:
    return f"postgresql+psycopg2://{POSTGRES['user']}@{POSTGRES['host']}:{POSTGRES['port']}/{database}"


def celery_stack(home: Path, database: str, queue: str, connections: Mapping[str, str], **kwargs) -> Stack:
    """A CeleryExecutor stack on ``database`` and ``queue``: docker-compose.yaml's settings, here."""
    db = postgres_url(database)
    return Stack.with_free_ports(
        home,
        executor="CeleryExecutor",
        database_url=db,
        broker_url=REDIS_URL,
        result_backend=f"db+{db}",
        celery_queue=queue,
        connections=connections,
        **kwargs,
    )


def postgres_missing() -> str | None:
    """Why this machine's PostgreSQL does not answer, or None when it does."""
    import psycopg2

    try:
        psycopg2.connect(dbname="postgres", connect_timeout=3, **POSTGRES).close()
    except psycopg2.Error as exc:
        return (
            f"PostgreSQL at {POSTGRES['host']}:{POSTGRES['port']} (user postgres, trust auth): "
            f"{str(exc).strip()}"
        )
    return None


def celery_services_missing() -> list[str]:
    """What of PostgreSQL and Redis does not answer here, described."""
    import socket

    missing = [reason] if (reason := postgres_missing()) else []
    try:
        with socket.create_connection(REDIS, timeout=3) as sock:
            sock.sendall(b"PING\r\n")
            if not sock.recv(16).startswith(b"+PONG"):
                missing.append(f"Redis at {REDIS[0]}:{REDIS[1]}: no PONG")
    except OSError as exc:
        missing.append(f"Redis at {REDIS[0]}:{REDIS[1]}: {exc}")
    return missing


def postgres_admin(sql: str, database: str = "postgres") -> Any:
    """Run one statement on ``database`` outside a transaction (CREATE/DROP DATABASE, ANALYZE); its
    first row, if it returns rows."""
    import psycopg2

    conn = psycopg2.connect(dbname=database, **POSTGRES)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchone() if cur.description else None
    finally:
        conn.close()


@contextlib.contextmanager
def analyzed(database: str, every: float = ANALYZE_SECONDS) -> Iterator[None]:
    """Keep ``database``'s planner statistics fresh while it is in use, as autovacuum does.

    This machine's PostgreSQL (and CI's) runs with autovacuum off, so a scratch database's tables
    were never analyzed: once a test stack's audit log and task tables had grown over a session,
    Airflow's audit-log query (``GET /eventLogs``) ran in PostgreSQL for over 30 s (the stall
    report of a CI replay: the statement active, waiting on nothing). Where autovacuum is on,
    nothing is added."""
    import psycopg2

    if postgres_admin("SHOW autovacuum")[0] == "on":
        yield
        return
    stop = threading.Event()

    def analyze() -> None:
        while not stop.wait(every):
            with contextlib.suppress(psycopg2.Error):
                postgres_admin("ANALYZE", database)

    thread = threading.Thread(target=analyze, name=f"analyze-{database}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@contextlib.contextmanager
def scratch_database(prefix: str) -> Iterator[tuple[str, str]]:
    """A new database and a token for naming the queue beside it; the database is dropped afterwards."""
    token = secrets.token_hex(4)
    database = f"{prefix}_{token}"
    postgres_admin(f"CREATE DATABASE {database}")
    try:
        yield database, token
    finally:
        postgres_admin(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
