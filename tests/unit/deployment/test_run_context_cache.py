"""The run's configuration snapshot, left on the machine for the run's next task processes."""

from __future__ import annotations

import os
import pickle
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from _release import COMMIT, RUN_ID, VERSION

from deployment import run_context
from deployment.ledger import Ledger
from deployment.local_cache import CACHE_DIR_ENV_VAR
from deployment.run_context import CONFIG_SECTION, SNAPSHOT_CACHE, config_snapshot, release

FIRST_RUN = datetime(2026, 1, 2, 10, tzinfo=UTC)


def _context(run_after=FIRST_RUN):
    return {
        "params": {"version": VERSION, "commit_sha": COMMIT, "author": "alice-chen"},
        "run_id": RUN_ID,
        "dag_run": SimpleNamespace(run_after=run_after),
    }


def _with_error_rate(cfg, percent):
    thresholds = cfg.thresholds.model_copy(update={"error_rate_percent": percent})
    return cfg.model_copy(update={"thresholds": thresholds})


@pytest.fixture
def new_process(monkeypatch):
    """Forget what this process read, as the run's next task process starts without it."""

    def forget():
        monkeypatch.setattr(run_context, "_snapshots", {})

    forget()
    return forget


@pytest.fixture
def s3_requests(cfg, moto):
    sent: list[str] = []
    events = Ledger(cfg, VERSION, RUN_ID).hook.conn.meta.events
    handler = lambda model, **_: sent.append(model.name)  # noqa: E731
    events.register("before-call.s3", handler)
    yield sent
    events.unregister("before-call.s3", handler)


def _entries():
    found = os.scandir(os.environ[CACHE_DIR_ENV_VAR])
    return sorted((p for p in found if p.name.startswith(f"{SNAPSHOT_CACHE}-")), key=str)


def test_the_next_task_on_the_machine_uses_the_snapshot_without_reading_the_record(
    cfg, moto, new_process, s3_requests
):
    Ledger(cfg, VERSION, RUN_ID, FIRST_RUN).write(CONFIG_SECTION, config_snapshot(_with_error_rate(cfg, 0.5)))
    new_process()
    s3_requests.clear()
    assert release(_context()).cfg.thresholds.error_rate_percent == 0.5
    assert s3_requests == ["GetObject"] and len(_entries()) == 1

    new_process()
    s3_requests.clear()
    rel = release(_context())
    assert s3_requests == []
    assert rel.cfg == _with_error_rate(cfg, 0.5)
    assert rel.ledger.prefix == Ledger(cfg, VERSION, RUN_ID, FIRST_RUN).prefix


def test_an_entry_whose_settings_do_not_match_its_digest_is_a_miss(cfg, moto, new_process, s3_requests):
    Ledger(cfg, VERSION, RUN_ID, FIRST_RUN).write(CONFIG_SECTION, config_snapshot(_with_error_rate(cfg, 0.5)))
    release(_context())
    (entry,) = _entries()
    stored = pickle.loads(open(entry.path, "rb").read())
    stored["settings"]["thresholds"]["error_rate_percent"] = 9.0  # the digest still names 0.5
    stored["config"] = _with_error_rate(cfg, 9.0)
    open(entry.path, "wb").write(pickle.dumps(stored))

    new_process()
    s3_requests.clear()
    assert release(_context()).cfg.thresholds.error_rate_percent == 0.5
    assert s3_requests == ["GetObject"]
    again = pickle.loads(open(entry.path, "rb").read())
    assert (
        again["config"].thresholds.error_rate_percent == again["settings"]["thresholds"]["error_rate_percent"]
    )
    assert again["config"].thresholds.error_rate_percent == 0.5


def test_an_entry_written_by_other_code_is_a_miss(cfg, moto, new_process, s3_requests, monkeypatch):
    from deployment import config as config_module

    Ledger(cfg, VERSION, RUN_ID, FIRST_RUN).write(CONFIG_SECTION, config_snapshot(_with_error_rate(cfg, 0.5)))
    release(_context())
    monkeypatch.setattr(config_module, "MODELS_DIGEST", "0" * 64)  # the models' module edited since
    new_process()
    s3_requests.clear()
    assert release(_context()).cfg.thresholds.error_rate_percent == 0.5
    assert s3_requests == ["GetObject"] and len(_entries()) == 2


def test_another_runs_snapshot_is_never_used(cfg, moto, new_process):
    Ledger(cfg, VERSION, RUN_ID, FIRST_RUN).write(CONFIG_SECTION, config_snapshot(_with_error_rate(cfg, 0.5)))
    assert release(_context()).cfg.thresholds.error_rate_percent == 0.5
    again = datetime(2026, 1, 3, 9, tzinfo=UTC)  # the same run id, created again: another run
    new_process()
    assert release(_context(again)).cfg == cfg  # its record has no snapshot yet: the file's settings
    Ledger(cfg, VERSION, RUN_ID, again).write(CONFIG_SECTION, config_snapshot(_with_error_rate(cfg, 2.0)))
    new_process()
    assert release(_context(again)).cfg.thresholds.error_rate_percent == 2.0
    new_process()
    assert release(_context()).cfg.thresholds.error_rate_percent == 0.5
    assert len(_entries()) == 2


def test_a_cache_folder_others_may_enter_is_not_used(
    cfg, moto, new_process, s3_requests, tmp_path, monkeypatch
):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    monkeypatch.setenv(CACHE_DIR_ENV_VAR, str(shared))
    Ledger(cfg, VERSION, RUN_ID, FIRST_RUN).write(CONFIG_SECTION, config_snapshot(_with_error_rate(cfg, 0.5)))
    for _ in range(2):
        new_process()
        s3_requests.clear()
        assert release(_context()).cfg.thresholds.error_rate_percent == 0.5
        assert s3_requests == ["GetObject"]
    assert list(shared.iterdir()) == []
