"""The local cache's folder and entries: private, whole or absent, never an error."""

from __future__ import annotations

import os
import stat
import time

from deployment import local_cache
from deployment.local_cache import CACHE_DIR_ENV_VAR, cache_dir, drop_entry, read_entry, write_entry


def test_the_folder_is_the_airflow_homes_own_and_private(tmp_path, monkeypatch):
    monkeypatch.delenv(CACHE_DIR_ENV_VAR)
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "home"))
    write_entry("probe", ("a", "b"), {"value": 1})
    folder = tmp_path / "home" / "deployment-cache"
    assert cache_dir() == folder and stat.S_IMODE(folder.stat().st_mode) == 0o700
    (entry,) = folder.iterdir()
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600
    assert read_entry("probe", ("a", "b")) == {"value": 1}
    assert read_entry("probe", ("a", "c")) is None and read_entry("other", ("a", "b")) is None


def test_an_unreadable_entry_is_a_miss_and_can_be_dropped():
    write_entry("probe", ("k",), {"value": 1})
    (entry,) = cache_dir().iterdir()
    entry.write_text('{"value": ')
    assert read_entry("probe", ("k",)) is None
    drop_entry("probe", ("k",))
    assert list(cache_dir().iterdir()) == []


def test_nothing_is_kept_where_the_folder_cannot_be_made(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv(CACHE_DIR_ENV_VAR, str(blocker / "cache"))
    write_entry("probe", ("k",), {"value": 1})
    assert cache_dir() is None and read_entry("probe", ("k",)) is None


def test_old_entries_of_a_kind_go_when_one_is_written(monkeypatch):
    write_entry("probe", ("old",), {"value": 1})
    write_entry("other", ("old",), {"value": 1})
    long_ago = time.time() - local_cache.MAX_AGE_SECONDS - 60
    for entry in cache_dir().iterdir():
        os.utime(entry, (long_ago, long_ago))
    write_entry("probe", ("new",), {"value": 2})
    assert read_entry("probe", ("old",)) is None and read_entry("probe", ("new",)) == {"value": 2}
    assert read_entry("other", ("old",)) == {"value": 1}


def test_a_pickled_entry_round_trips_and_a_truncated_one_is_a_miss():
    from deployment.local_cache import read_pickle, write_pickle

    write_pickle("probe", ("k",), {"when": (1, 2), "what": {"a"}})
    assert read_pickle("probe", ("k",)) == {"when": (1, 2), "what": {"a"}}
    (entry,) = cache_dir().iterdir()
    assert entry.suffix == ".pickle" and stat.S_IMODE(entry.stat().st_mode) == 0o600
    entry.write_bytes(entry.read_bytes()[:-3])
    assert read_pickle("probe", ("k",)) is None
    assert read_entry("probe", ("k",)) is None, "a pickle is not a JSON entry"
