"""One identity and one configuration per run: record folders never shared, the config snapshot used."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from _release import COMMIT, RUN_ID, VERSION

from deployment.ledger import Ledger, run_key
from deployment.run_context import CONFIG_SECTION, config_snapshot, release


def test_run_ids_that_collapse_to_one_safe_name_get_their_own_folders():
    ids = [
        "manual__2026-01-02T10:00:00+00:00",
        "manual__2026-01-02T10_00_00_00_00",
        "manual__2026-01-02T10~00~00+00~00",
    ]
    keys = {run_key(i) for i in ids}
    assert len(keys) == 3 and all(k.startswith("manual__2026-01-02T10_00_00_00_00-") for k in keys)


def test_a_run_created_again_under_the_same_id_does_not_inherit_the_first_ones_record(cfg):
    first = Ledger(cfg, VERSION, RUN_ID, datetime(2026, 1, 2, 10, tzinfo=UTC))
    again = Ledger(cfg, VERSION, RUN_ID, datetime(2026, 1, 3, 9, tzinfo=UTC))
    assert first.prefix != again.prefix and first.run_key == run_key(
        RUN_ID, datetime(2026, 1, 2, 10, tzinfo=UTC)
    )


def test_every_task_uses_the_configuration_the_run_started_with(cfg, record):
    started_with = cfg.model_copy(
        update={"thresholds": cfg.thresholds.model_copy(update={"error_rate_percent": 0.5})}
    )
    record.write(CONFIG_SECTION, config_snapshot(started_with))
    context = {
        "params": {"version": VERSION, "commit_sha": COMMIT, "author": "alice-chen"},
        "run_id": RUN_ID,
        "dag_run": SimpleNamespace(run_after=None),
    }
    rel = release(context)
    assert rel.cfg.thresholds.error_rate_percent == 0.5 != cfg.thresholds.error_rate_percent
    assert rel.ledger.prefix == record.prefix
