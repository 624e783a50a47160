"""The deployment records as the view reads them: every JSON section under the artifacts prefix.

The records are read through the DAG's own S3 connection (``connections.aws``) and
region. One ``ListObjectsV2`` walk per request finds every section with its ETag; a
section is fetched again only when its ETag changed, so a page over hundreds of
releases costs a listing, not thousands of reads. The sections are read as they are:
other tasks add fields over time, so nothing here assumes more than a key it checks.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig

log = logging.getLogger(__name__)
MANUAL_ROLLBACKS = "manual-rollbacks"  # the record folder of rollback_production's runs
READ_THREADS = 8
REFRESH_SECONDS = 30.0  # an older listing is answered from, and refreshed in the background
# What the releases table and DORA's keys read; the release page reads every section of its run.
SUMMARY_SECTIONS = frozenset(
    {
        "conf",
        "approvals",
        "outcome",
        "frontend",
        "monitoring",
        "rollback",
        "rollback.plan",
        "release_notes",
        "backup",
        "infrastructure",
        "notifications.github_release",
        "metrics",
    }
)


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


class RecordStore:
    """Reads and caches the records of one configuration's artifacts bucket."""

    def __init__(self, config: DeploymentConfig) -> None:
        self.config = config
        self.bucket = config.artifacts.bucket
        self.prefix = f"{config.artifacts.prefix.strip('/')}/"
        self._cache: dict[str, tuple[str, Any]] = {}  # key -> (etag, parsed body)
        self._lock = threading.Lock()
        self._snapshot_lock = threading.Lock()
        self._snapshot: tuple[float, str, list[Record]] | None = None  # (monotonic, ISO time, records)
        self._refreshing = False
        self._s3: Any = None

    @property
    def s3(self) -> Any:
        if self._s3 is None:
            from airflow.providers.amazon.aws.hooks.s3 import S3Hook

            self._s3 = S3Hook(
                aws_conn_id=self.config.connections.aws, region_name=self.config.region
            ).get_conn()
        return self._s3

    def _listing(self, prefix: str) -> dict[str, tuple[str, datetime | None]]:
        """Every ``.json`` key under ``prefix`` with its ETag and last-modified time."""
        found: dict[str, tuple[str, datetime | None]] = {}
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

    def records(self) -> list[Record]:
        """Every run's record (unordered), with the sections the table and DORA's keys read.

        The first call lists and reads the bucket; later calls answer from the last listing and,
        when it is older than ``REFRESH_SECONDS``, start one listing in the background (listing
        thousands of sections takes seconds; a page must not wait for it). ``as_of`` says when
        the answer's listing started.
        """
        with self._snapshot_lock:
            if self._snapshot is None:
                self._snapshot = self._take_snapshot()
            elif time.monotonic() - self._snapshot[0] > REFRESH_SECONDS and not self._refreshing:
                self._refreshing = True
                threading.Thread(target=self._refresh, name="deployments-view-refresh", daemon=True).start()
            return self._snapshot[2]

    @property
    def as_of(self) -> str | None:
        return self._snapshot[1] if self._snapshot else None

    def _take_snapshot(self) -> tuple[float, str, list[Record]]:
        at = datetime.now(UTC).isoformat()
        found = self._read(self.prefix, SUMMARY_SECTIONS)
        return time.monotonic(), at, found  # its age counts from when it was ready

    def _refresh(self) -> None:
        try:
            snapshot = self._take_snapshot()
            with self._snapshot_lock:
                self._snapshot = snapshot
        except Exception:  # S3 unreachable for a moment: keep answering from the last listing
            log.exception("refreshing the deployment records failed")
        finally:
            self._refreshing = False

    def record(self, folder: str, run: str) -> Record | None:
        """One run's record (re-listed, so a release still running shows its latest sections)."""
        if "/" in folder or "/" in run or folder in ("", ".", "..") or run in ("", ".", ".."):
            return None
        found = self._read(f"{self.prefix}{folder}/{run}/")
        return found[0] if found else None

    def _read(self, prefix: str, sections: frozenset[str] | None = None) -> list[Record]:
        everything = self._listing(prefix)
        listing = everything
        if sections is not None:
            listing = {
                k: v for k, v in everything.items() if k.rsplit("/", 1)[-1].removesuffix(".json") in sections
            }
        with self._lock:
            stale = [
                key
                for key, (etag, _) in listing.items()
                if not etag or self._cache.get(key, ("",))[0] != etag
            ]
            if stale:
                with ThreadPoolExecutor(max_workers=min(READ_THREADS, len(stale))) as pool:
                    for key, fetched in zip(stale, pool.map(self._fetch, stale), strict=True):
                        self._cache[key] = (listing[key][0], fetched[1])
            if prefix == self.prefix:
                for gone in set(self._cache) - set(everything):
                    del self._cache[gone]
            cached = {key: self._cache[key][1] for key in listing}
        by_run: dict[tuple[str, str], Record] = {}
        for key, value in cached.items():
            parts = key[len(self.prefix) :].split("/")
            if len(parts) != 3:
                continue
            folder, run, name = parts
            record = by_run.setdefault((folder, run), Record(folder, run))
            section = name.removesuffix(".json")
            record.sections[section] = value
            if listing[key][1] is not None:
                record.modified[section] = listing[key][1]
        return list(by_run.values())

    def text(self, folder: str, run: str, name: str) -> str | None:
        """A non-JSON artifact beside the record (``plan.md``), or None."""
        try:
            response = self.s3.get_object(Bucket=self.bucket, Key=f"{self.prefix}{folder}/{run}/{name}")
        except Exception as err:  # botocore's NoSuchKey; anything else is reported the same way
            if "NoSuchKey" in str(err) or "404" in str(err):
                return None
            raise
        return response["Body"].read().decode("utf-8", "replace")


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
