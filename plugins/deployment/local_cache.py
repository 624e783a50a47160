"""Small files one task process leaves for the next on the same machine.

Every task runs in a new process, so what one task read or built (the validated configuration, the
run's configuration snapshot, an API token) is gone when the next task starts. An entry here lets
the next process skip that work. Entries are a shortcut only: a missing, unreadable or foreign entry
is a miss, and the caller reads the source as before; nothing here ever fails a task.

The folder is ``$DEPLOYMENT_CACHE_DIR``, else ``$AIRFLOW_HOME/deployment-cache`` (one per Airflow
installation, so one per local stack). It is created 0700 and not used when another user owns it or
others may enter it; each entry is written 0600 to a temporary file and renamed into place, so a
reader sees a whole entry or none. Entries are JSON, or pickles of the configuration's models: only
this folder's owner can have written them, the same user whose code reads them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import tempfile
import time
from pathlib import Path
from typing import Any

CACHE_DIR_ENV_VAR = "DEPLOYMENT_CACHE_DIR"
# Entries older than this are removed when an entry of the same kind is written.
MAX_AGE_SECONDS = 7 * 24 * 3600


def cache_dir() -> Path | None:
    """The private cache folder, created when missing; None when it cannot be used safely."""
    configured = os.environ.get(CACHE_DIR_ENV_VAR)
    if configured:
        folder = Path(configured)
    else:
        folder = Path(os.environ.get("AIRFLOW_HOME") or "~/airflow").expanduser() / "deployment-cache"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        found = folder.stat()
    except OSError:
        return None
    if found.st_uid != os.getuid() or found.st_mode & 0o077:
        return None
    return folder


def _path(folder: Path, kind: str, key: tuple[str, ...], suffix: str = "json") -> Path:
    return folder / f"{kind}-{hashlib.sha256(json.dumps(key).encode()).hexdigest()}.{suffix}"


def _read(kind: str, key: tuple[str, ...], suffix: str) -> bytes | None:
    folder = cache_dir()
    if folder is None:
        return None
    try:
        return _path(folder, kind, key, suffix).read_bytes()
    except OSError:
        return None


def _write(kind: str, key: tuple[str, ...], suffix: str, data: bytes) -> None:
    folder = cache_dir()
    if folder is None:
        return
    path = _path(folder, kind, key, suffix)
    try:
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.")
    except OSError:
        return
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        return
    _remove_old(folder, kind)


def read_entry(kind: str, key: tuple[str, ...]) -> dict[str, Any] | None:
    """The JSON entry of ``kind`` stored under ``key``; None when there is none or it is unreadable."""
    data = _read(kind, key, "json")
    try:
        found = json.loads(data) if data is not None else None
    except ValueError:
        return None
    return found if isinstance(found, dict) else None


def write_entry(kind: str, key: tuple[str, ...], value: dict[str, Any]) -> None:
    """Store ``value`` as the JSON entry of ``kind`` under ``key`` (atomically); on any error, nothing."""
    try:
        data = json.dumps(value).encode()
    except (TypeError, ValueError):
        return
    _write(kind, key, "json", data)


def read_pickle(kind: str, key: tuple[str, ...]) -> Any:
    """The object pickled as ``kind`` under ``key``; None when there is none or it cannot be loaded."""
    data = _read(kind, key, "pickle")
    try:
        return pickle.loads(data) if data is not None else None  # noqa: S301 - the owner's private folder
    except Exception:  # a class renamed or moved since, a truncated file: a miss
        return None


def write_pickle(kind: str, key: tuple[str, ...], value: Any) -> None:
    """Store ``value`` pickled as ``kind`` under ``key`` (atomically); on any error, nothing."""
    try:
        data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        return
    _write(kind, key, "pickle", data)


def drop_entry(kind: str, key: tuple[str, ...]) -> None:
    """Remove the JSON entry of ``kind`` under ``key``, if there is one."""
    folder = cache_dir()
    if folder is not None:
        with contextlib.suppress(OSError):
            _path(folder, kind, key).unlink()


def _remove_old(folder: Path, kind: str) -> None:
    oldest = time.time() - MAX_AGE_SECONDS
    for path in folder.glob(f"{kind}-{'[0-9a-f]' * 64}.*"):
        with contextlib.suppress(OSError):
            if path.stat().st_mtime < oldest:
                path.unlink()
