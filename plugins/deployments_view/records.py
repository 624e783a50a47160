"""The deployment records as the view reads them: each run's summary, and one run's sections.

The records are read through the DAG's own S3 connection (``connections.aws``) and region.
The releases table and DORA's keys need one summary per run (``deployment.release.summary``):
``record_outcome`` writes it when a run ends, under ``<prefix>/summaries/``. A new API server's
first answer lists that folder, and reads the summaries from the view's own copy of them
(``<prefix>/deployments-view/summaries.json``, each with the ETag it was read at: an entry
counts only while the listing shows that ETag); only summaries missing from the copy are read
one by one. Runs without a summary (a release still running, records older than summaries, a
summary older than a section it was built from because the run was cleared and resumed) are
found by a listing of every section, which runs in the background: they are summarised from
their sections with the same builder, and the copy is rewritten when the summaries changed.
Every object is read again only when its ETag changed.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from deployment.release.summary import FOLDER as SUMMARIES
from deployment.release.summary import MANUAL_ROLLBACKS, SECTIONS, build

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig

log = logging.getLogger(__name__)
READ_THREADS = 16
REFRESH_SECONDS = 30.0  # an older snapshot is answered from, and renewed in the background
RENEW_DELAY_SECONDS = 0.5  # after the request that starts a renewal
COPY = "deployments-view/summaries.json"  # under the prefix: the view's copy of every summary

Listing = dict[str, tuple[str, datetime | None]]  # key -> (ETag, LastModified)


@dataclass
class Record:
    """One run's record: ``folder`` is the version (or ``manual-rollbacks``), ``run`` the run key."""

    folder: str
    run: str
    sections: dict[str, Any] = field(default_factory=dict)
    modified: dict[str, datetime] = field(default_factory=dict)  # section -> S3 LastModified

    @property
    def manual_rollback(self) -> bool:
        return self.folder == MANUAL_ROLLBACKS

    def section(self, name: str) -> dict[str, Any]:
        """The section ``name`` as a dict; ``{}`` when missing or not an object."""
        value = self.sections.get(name)
        return value if isinstance(value, dict) else {}

    def summary(self) -> dict[str, Any]:
        """The run's summary, built from the sections as ``record_outcome`` builds it."""
        return build(self.sections, self.folder, self.run, self.modified)


@dataclass
class Snapshot:
    taken: float  # time.monotonic() when ready
    as_of: str  # when its listing started (ISO)
    summaries: list[dict[str, Any]]
    complete: bool  # False: summaries only, the runs without one not looked for yet


class RecordStore:
    """Reads and caches the records of one configuration's artifacts bucket."""

    def __init__(self, config: DeploymentConfig) -> None:
        self.config = config
        self.bucket = config.artifacts.bucket
        self.prefix = f"{config.artifacts.prefix.strip('/')}/"
        self.summary_prefix = f"{self.prefix}{SUMMARIES}/"
        self.copy_key = f"{self.prefix}{COPY}"
        self._copy: dict[str, str] | None = None  # what the copy in S3 holds: summary key -> ETag
        self._copy_unwritable = False
        self._cache: dict[str, tuple[str, Any]] = {}  # key -> (etag, parsed body)
        self._lock = threading.Lock()
        self._snapshot_lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._refreshing = False
        self._s3: Any = None

    @property
    def s3(self) -> Any:
        if self._s3 is None:
            from airflow.providers.amazon.aws.hooks.s3 import S3Hook
            from botocore.config import Config

            hook = S3Hook(
                aws_conn_id=self.config.connections.aws,
                region_name=self.config.region,
                config=Config(max_pool_connections=READ_THREADS),  # one connection per reading thread
            )
            self._s3 = hook.get_conn()
        return self._s3

    # ------------------------------------------------------------------ S3
    def _listing(self, prefix: str) -> Listing:
        """Every ``.json`` key under ``prefix`` with its ETag and last-modified time."""
        found: Listing = {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                if obj["Key"].endswith(".json") and not _artifact(obj["Key"]):
                    found[obj["Key"]] = (obj.get("ETag", ""), obj.get("LastModified"))
        return found

    def _fetch(self, key: str) -> tuple[str, Any]:
        response = self.s3.get_object(Bucket=self.bucket, Key=key)
        body = response["Body"].read()
        try:
            return response.get("ETag", ""), json.loads(body)
        except ValueError:
            return response.get("ETag", ""), None

    def _bodies(self, listing: Listing, keys: Iterable[str]) -> dict[str, Any]:
        """The parsed bodies of ``keys``, read (in parallel) only when not cached with the listed ETag."""
        keys = list(keys)
        with self._lock:
            stale = [k for k in keys if not listing[k][0] or self._cache.get(k, ("",))[0] != listing[k][0]]
        if stale:
            with ThreadPoolExecutor(max_workers=min(READ_THREADS, len(stale))) as pool:
                fetched = list(pool.map(self._fetch, stale))
            with self._lock:
                for key, (_, body) in zip(stale, fetched, strict=True):
                    self._cache[key] = (listing[key][0], body)
        with self._lock:
            return {k: self._cache[k][1] for k in keys}

    # ---------------------------------------------------------- the table's rows
    def summaries(self) -> list[dict[str, Any]]:
        """Every run's summary (unordered), for the releases table and DORA's keys.

        The first call answers from the stored summaries alone (``complete`` False) and starts the
        full listing in the background; later calls answer from the last snapshot and renew it in
        the background when it is older than ``REFRESH_SECONDS`` (or not complete). ``as_of`` says
        when the answer's listing started.
        """
        with self._snapshot_lock:
            if self._snapshot is None:
                self._snapshot = self._take_snapshot(full=False)
            snapshot = self._snapshot
            old = time.monotonic() - snapshot.taken > REFRESH_SECONDS
            if (old or not snapshot.complete) and not self._refreshing:
                self._refreshing = True
                # a moment later: the listing must not compete with this answer for the interpreter
                renew = threading.Timer(RENEW_DELAY_SECONDS, self._refresh)
                renew.name, renew.daemon = "deployments-view-refresh", True
                renew.start()
            return snapshot.summaries

    @property
    def as_of(self) -> str | None:
        return self._snapshot.as_of if self._snapshot else None

    @property
    def complete(self) -> bool:
        return bool(self._snapshot and self._snapshot.complete)

    def _take_snapshot(self, full: bool = True) -> Snapshot:
        at = datetime.now(UTC).isoformat()
        stored = self._listing(self.summary_prefix)
        by_run: dict[tuple[str, str], tuple[str, datetime | None]] = {}
        for key, (_, modified) in stored.items():
            parts = key[len(self.summary_prefix) :].split("/")
            if len(parts) == 2:
                by_run[(parts[0], parts[1].removesuffix(".json"))] = (key, modified)
        if not full:
            if self._copy is None:
                self._load_copy(stored)
            bodies = self._bodies(stored, (key for key, _ in by_run.values()))
            summaries = [b for b in bodies.values() if isinstance(b, dict)]
            return Snapshot(time.monotonic(), at, summaries, complete=False)

        sections = self._listing(self.prefix)
        runs: dict[tuple[str, str], dict[str, tuple[str, datetime | None]]] = {}
        for key, (_, modified) in sections.items():
            if key.startswith(self.summary_prefix):
                continue
            parts = key[len(self.prefix) :].split("/")
            if len(parts) == 3 and parts[2].removesuffix(".json") in SECTIONS:
                runs.setdefault((parts[0], parts[1]), {})[parts[2].removesuffix(".json")] = (key, modified)
        use = {run: key for run, (key, modified) in by_run.items() if _current(modified, runs.get(run, {}))}
        unsummarised = {run: found for run, found in runs.items() if run not in use}
        bodies = self._bodies(
            {**stored, **sections},
            [*use.values(), *(key for found in unsummarised.values() for key, _ in found.values())],
        )
        summaries = [bodies[key] for key in use.values() if isinstance(bodies[key], dict)]
        for (folder, run), found in unsummarised.items():
            record = Record(folder, run)
            for name, (key, modified) in found.items():
                record.sections[name] = bodies[key]
                if modified is not None:
                    record.modified[name] = modified
            summaries.append(record.summary())
        with self._lock:  # forget what is gone from the bucket
            for gone in set(self._cache) - set(sections):
                del self._cache[gone]
        self._save_copy({key: stored[key][0] for key in use.values()}, bodies)
        return Snapshot(time.monotonic(), at, summaries, complete=True)

    def _load_copy(self, stored: Listing) -> None:
        """Take into the cache each summary of the view's copy whose ETag the listing still shows."""
        self._copy = {}
        try:
            response = self.s3.get_object(Bucket=self.bucket, Key=self.copy_key)
            entries = json.loads(response["Body"].read()).get("summaries") or {}
        except Exception as err:  # none yet (NoSuchKey), or unreadable: each summary is read instead
            if "NoSuchKey" not in str(err):
                log.warning("the view's copy of the summaries was not read: %s", err)
            return
        with self._lock:
            for key, entry in entries.items():
                etag = entry.get("etag") if isinstance(entry, dict) else None
                if etag and key in stored and stored[key][0] == etag:
                    self._cache.setdefault(key, (etag, entry.get("summary")))
                    self._copy[key] = etag

    def _save_copy(self, etags: dict[str, str], bodies: dict[str, Any]) -> None:
        """Rewrite the view's copy when the summaries it should hold changed (never fails the listing)."""
        if etags == self._copy or self._copy_unwritable:
            return
        body = {
            "written_at": datetime.now(UTC).isoformat(),
            "summaries": {key: {"etag": etag, "summary": bodies[key]} for key, etag in etags.items()},
        }
        try:
            self.s3.put_object(
                Bucket=self.bucket,
                Key=self.copy_key,
                Body=json.dumps(body, separators=(",", ":")).encode(),
                ContentType="application/json",
            )
            self._copy = etags
        except Exception as err:  # a read-only role: the first answer of a new API server reads each one
            log.warning("the view's copy of the summaries was not written (not tried again): %s", err)
            self._copy_unwritable = True

    def _refresh(self) -> None:
        try:
            snapshot = self._take_snapshot()
            with self._snapshot_lock:
                self._snapshot = snapshot
        except Exception:  # S3 unreachable for a moment: keep answering from the last snapshot
            log.exception("refreshing the deployment records failed")
        finally:
            self._refreshing = False

    # ------------------------------------------------------------- one release
    def record(self, folder: str, run: str) -> Record | None:
        """One run's record, every section (re-listed, so a release still running shows its latest)."""
        if "/" in folder or "/" in run or folder in ("", ".", "..", SUMMARIES) or run in ("", ".", ".."):
            return None
        listing = self._listing(f"{self.prefix}{folder}/{run}/")
        if not listing:
            return None
        record = Record(folder, run)
        for key, body in self._bodies(listing, listing).items():
            name = key.rsplit("/", 1)[-1].removesuffix(".json")
            record.sections[name] = body
            if listing[key][1] is not None:
                record.modified[name] = listing[key][1]
        return record

    def text(self, folder: str, run: str, name: str) -> str | None:
        """A non-JSON artifact beside the record (``plan.md``), or None."""
        try:
            response = self.s3.get_object(Bucket=self.bucket, Key=f"{self.prefix}{folder}/{run}/{name}")
        except Exception as err:  # botocore's NoSuchKey; anything else is reported the same way
            if "NoSuchKey" in str(err) or "404" in str(err):
                return None
            raise
        return response["Body"].read().decode("utf-8", "replace")


def _current(summary_modified: datetime | None, sections: dict[str, tuple[str, datetime | None]]) -> bool:
    """A summary stands for its run unless a section it is built from was written after it (a rerun)."""
    if summary_modified is None:
        return True
    return all(modified is None or modified <= summary_modified for _, modified in sections.values())


def _artifact(key: str) -> bool:
    """Templates kept beside the record as ``.json`` (``backup-template``, ``template-<change set>``)."""
    name = key.rsplit("/", 1)[-1]
    return name.startswith(("template-", "backup-template"))


_stores: dict[int, RecordStore] = {}


def store_for(config: DeploymentConfig) -> RecordStore:
    """The cached store of ``config`` (load_config returns the same object until the file changes)."""
    store = _stores.get(id(config))
    if store is None or store.config is not config:
        _stores.clear()
        store = _stores[id(config)] = RecordStore(config)
    return store
