"""The deployment record: what a release run did, kept in S3 beside the artifacts.

One record per (version, run); each section (``conf``, ``plan``, ``approvals``,
``backup``, ``infrastructure``, ...) is its own JSON object under the record's
prefix, written by exactly one task. Sections never race, a rerun of a task
overwrites its own section, and the record outlives Airflow's database.

Layout: ``s3://<bucket>/<prefix>/<version>/<run key>/<section>.json``.

Sections are read and written with one ``GetObject`` or ``PutObject`` on the hook's client. The
provider's ``load_string`` and ``read_key`` cost several times that in every task process: the
upload goes through S3 transfer's thread pool, the first one also initialises Airflow's hook
lineage (the project registers no lineage reader, so it records nothing), and ``read_key`` builds a
boto3 resource and sends a ``HeadObject`` before the ``GetObject``.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.hooks.s3 import S3Hook

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig

_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]+")
# The key of the ``approvals`` section that holds the gate's result: who approved, and when
# (written by the approval gate, read by the notices).
APPROVAL_RESULT_KEY = "result"


def run_key(run_id: str, run_after: Any = None) -> str:
    """The record's folder for one run: ``run_id`` made safe for an S3 key, plus a digest of the exact
    ``run_id`` and the run's ``run_after``.

    Making a run id safe collapses characters (``:``, ``+``, ``~`` all become ``_``), so two run ids
    could share a folder; and a run deleted and created again under the same id would inherit the
    first one's gate and backup. The digest keeps each apart: another id, or the same id created at
    another moment, has another folder.
    """
    moment = run_after.isoformat() if isinstance(run_after, datetime) else str(run_after or "")
    digest = hashlib.sha256(f"{run_id}\n{moment}".encode()).hexdigest()[:12]
    return f"{_UNSAFE.sub('_', run_id)}-{digest}"


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


class Ledger:
    """Read and write the sections of one release's record."""

    def __init__(
        self,
        config: DeploymentConfig,
        version: str,
        run_id: str,
        run_after: Any = None,
        *,
        key: str | None = None,
    ) -> None:
        self.config = config
        self.version = version
        self.run_id = run_id
        self.run_key = key or run_key(run_id, run_after)
        self.prefix = f"{config.artifacts.prefix.strip('/')}/{version}/{self.run_key}"
        self._pinned_hook: S3Hook | None = None

    @property
    def hook(self) -> S3Hook:
        return self._pinned_hook or _s3_hook(self.config)

    def pinned(self) -> Ledger:
        """This record on one S3 hook whose client is built, for reads on several threads at once: the
        process's hook is renewed after its lifetime, and threads that met a new one together would
        each build its client from the same session, which boto3 does not allow."""
        pinned = copy.copy(self)
        pinned._pinned_hook = self.hook
        pinned._pinned_hook.conn  # noqa: B018 - the client, built on this thread
        return pinned

    @property
    def bucket(self) -> str:
        return self.config.artifacts.bucket

    def key(self, section: str, suffix: str = "json") -> str:
        return f"{self.prefix}/{section}.{suffix}"

    def uri(self, section: str, suffix: str = "json") -> str:
        return f"s3://{self.bucket}/{self.key(section, suffix)}"

    def write(self, section: str, value: Any) -> str:
        """Store ``value`` as the section ``section`` (replacing it); returns its S3 URI."""
        body = json.dumps(value, indent=2, sort_keys=True, default=str)
        put_text(self.hook, self.bucket, self.key(section), body)
        return self.uri(section)

    def write_text(self, name: str, text: str, suffix: str) -> str:
        """Store a non-JSON artifact (a Markdown plan, a template) beside the record."""
        put_text(self.hook, self.bucket, self.key(name, suffix), text)
        return self.uri(name, suffix)

    def read(self, section: str, default: Any = None) -> Any:
        text = _get(self.hook, self.bucket, self.key(section))
        return default if text is None else json.loads(text)

    def read_text(self, name: str, suffix: str) -> str:
        """A non-JSON artifact's text; raises the client's ``NoSuchKey`` when the record has none."""
        return read_object(self.hook, self.bucket, self.key(name, suffix))

    def record(self) -> dict[str, Any]:
        """Every JSON section of this run's record, by section name (the sections read at once)."""
        from deployment.read_together import read_together

        hook = self.hook
        keys = sorted(k for k in hook.list_keys(bucket_name=self.bucket, prefix=f"{self.prefix}/") or [])
        client = hook.conn  # built on this thread; the reads share it
        read = read_together(
            {key: functools.partial(_body, client, self.bucket, key) for key in keys if key.endswith(".json")}
        )
        return {
            key.rsplit("/", 1)[1].removesuffix(".json"): json.loads(body.result())
            for key, body in read.items()
        }


def _s3_hook(config: DeploymentConfig) -> S3Hook:
    from deployment.hooks.aws import hook_for

    return hook_for(config, S3Hook)


def put_text(hook: S3Hook, bucket: str, key: str, text: str) -> None:
    """Store ``text`` (UTF-8) as the object ``key``, replacing it: one PutObject."""
    hook.conn.put_object(Bucket=bucket, Key=key, Body=text.encode())


def read_object(hook: S3Hook, bucket: str, key: str) -> str:
    """The object's text: one GetObject; raises the client's ``NoSuchKey`` when there is none."""
    return _body(hook.conn, bucket, key)


def _body(client: Any, bucket: str, key: str) -> str:
    return client.get_object(Bucket=bucket, Key=key)["Body"].read().decode()


def _get(hook: S3Hook, bucket: str, key: str) -> str | None:
    """The object's text, or None when there is none: one GetObject (a missing section is common)."""
    client = hook.conn
    try:
        return _body(client, bucket, key)
    except client.exceptions.NoSuchKey:
        return None


def find_releases(config: DeploymentConfig, outcome: str | None = None) -> list[dict[str, Any]]:
    """The ``outcome`` sections of every recorded run, newest first, optionally filtered."""
    hook = _s3_hook(config)
    prefix = f"{config.artifacts.prefix.strip('/')}/"
    keys = hook.list_keys(bucket_name=config.artifacts.bucket, prefix=prefix) or []
    outcomes = [
        json.loads(hook.read_key(key, bucket_name=config.artifacts.bucket))
        for key in keys
        if key.endswith("/outcome.json")
    ]
    if outcome is not None:
        outcomes = [o for o in outcomes if o.get("status") == outcome]
    return sorted(outcomes, key=lambda o: o.get("finished_at", ""), reverse=True)


def _is_folder_of(folder: str, run_id: str) -> bool:
    """Whether a record folder's name is one of ``run_id``'s (its safe name, a dash, 12 hex digits)."""
    return re.fullmatch(re.escape(_UNSAFE.sub("_", run_id)) + "-[0-9a-f]{12}", folder) is not None


def find_run(config: DeploymentConfig, run_id: str) -> Ledger | None:
    """The record of the release run ``run_id`` (found by its ``conf`` section), when there is one;
    of a run id created more than once, the newest."""
    hook = _s3_hook(config)
    prefix = f"{config.artifacts.prefix.strip('/')}/"
    found = []
    for key in hook.list_keys(bucket_name=config.artifacts.bucket, prefix=prefix) or []:
        version, _, rest = key.removeprefix(prefix).partition("/")
        if rest.endswith("/conf.json") and _is_folder_of(rest.split("/")[0], run_id):
            conf = json.loads(hook.read_key(key, bucket_name=config.artifacts.bucket))
            if conf.get("run_id") == run_id:
                found.append((conf.get("started_at") or "", version, rest.split("/")[0]))
    if not found:
        return None
    _, version, key = max(found)
    return Ledger(config, version, run_id, key=key)


def newest_run_prefix(s3: Any, config: DeploymentConfig, version: str, run_id: str) -> str | None:
    """The S3 prefix (ending in ``/``) of ``run_id``'s record under ``version``, the newest when the
    run id was created more than once; ``s3`` is a boto3 S3 client."""
    base = f"{config.artifacts.prefix.strip('/')}/{version}/{_UNSAFE.sub('_', run_id)}-"
    newest: dict[str, Any] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=config.artifacts.bucket, Prefix=base):
        for obj in page.get("Contents", []):
            folder = obj["Key"][: obj["Key"].index("/", len(base)) + 1]
            if not _is_folder_of(folder.rstrip("/").rsplit("/", 1)[1], run_id):
                continue
            newest[folder] = max(newest.get(folder, obj["LastModified"]), obj["LastModified"])
    return max(newest, key=newest.get) if newest else None
