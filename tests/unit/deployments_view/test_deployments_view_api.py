"""The Deployments view's JSON endpoints on records that real sandbox releases wrote, behind Airflow's auth.

The records under ``captured/records`` were captured by
``captured/capture.py`` from runs on the real engine (sandbox + LocalExecutor
stack): a release of v1.1.0 that succeeded, a manual rollback to v1.0.0 after it, and a
release whose canary breached at 10 % and was rolled back automatically, each with the
summary its last task wrote (``summaries/``). They are put into moto's S3 and read by the
plugin's app, mounted as the API server mounts it, with Airflow's SimpleAuthManager issuing
the tokens. The live-now test adds the ``aws`` fixture (production
seeded at v1.0.0).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from deployment.release.phase_metrics import parse_time
from deployment.release.phase_registry import MEASURED

RECORDS = Path(__file__).resolve().parent / "captured" / "records"
USERS = "admin:admin,viewer:viewer,nobody:"  # ``nobody`` has no role: SimpleAuthManager grants it nothing
UNTIL = "2026-12-08T00:00:00+00:00"  # after the captured runs (2026-12-07): the DORA window holds all of them


def captured() -> tuple[dict[str, dict], dict[str, dict]]:
    """Each captured run's sections, and each run's summary, by ``<folder>/<run>``."""
    runs: dict[str, dict] = {}
    summaries: dict[str, dict] = {}
    for path in sorted(RECORDS.rglob("*.json")):
        parts = path.relative_to(RECORDS / "deployments").parts
        if parts[0] == "summaries":
            summaries[f"{parts[1]}/{parts[2].removesuffix('.json')}"] = json.loads(path.read_text())
            continue
        folder, run, name = parts
        runs.setdefault(f"{folder}/{run}", {})[name.removesuffix(".json")] = json.loads(path.read_text())
    return runs, summaries


RUNS, SUMMARIES = captured()
SUCCESS = next(k for k, v in RUNS.items() if v.get("outcome", {}).get("status") == "succeeded")
BREACH = next(
    k for k, v in RUNS.items() if not k.startswith("manual-") and v["outcome"]["status"] == "rolled_back"
)
MANUAL = next(k for k in RUNS if k.startswith("manual-rollbacks/"))


@pytest.fixture(scope="module")
def auth_manager():
    """Airflow's SimpleAuthManager with three users, on the session's SQLite database."""
    import airflow.models
    from airflow import settings
    from airflow.models.base import Base

    saved = {
        k: os.environ.get(k)
        for k in ("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "AIRFLOW__API_AUTH__JWT_SECRET")
    }
    os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] = USERS
    os.environ["AIRFLOW__API_AUTH__JWT_SECRET"] = "deployments-view-unit-test-" + "x" * 40
    airflow.models.import_all_models()
    Base.metadata.create_all(settings.engine)  # the tables the security dependencies query
    from airflow.api_fastapi.app import init_auth_manager

    try:
        yield init_auth_manager
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def view(moto, cfg, auth_manager):
    """The plugin's app mounted at its prefix, with the captured records in the artifacts bucket."""
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from deployments_view import URL_PREFIX, records
    from deployments_view.plugin import DeploymentsViewPlugin
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    records._stores.clear()  # the bucket is a new moto one for each test
    s3 = moto.client("s3")
    for path in RECORDS.rglob("*.json"):
        s3.put_object(Bucket=cfg.artifacts.bucket, Key=str(path.relative_to(RECORDS)), Body=path.read_bytes())
    registered = DeploymentsViewPlugin.fastapi_apps[0]
    assert registered["url_prefix"] == URL_PREFIX
    root = FastAPI()
    root.mount(URL_PREFIX, registered["app"])  # as the API server mounts it
    manager = auth_manager(root)
    client = TestClient(root)

    def get(path: str, user: str | None = "viewer", **params):
        headers = {}
        if user:
            role = None if user == "nobody" else user
            headers["Authorization"] = (
                f"Bearer {manager.generate_jwt(SimpleAuthManagerUser(username=user, role=role))}"
            )
        return client.get(f"{URL_PREFIX}{path}", headers=headers, params=params)

    return get


def ok(response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


def settled(view, path: str, **params) -> dict:
    """The answer once the background listing has added the runs without a summary (``complete``)."""
    deadline = time.monotonic() + 30
    while True:
        body = ok(view(path, **params))
        if body["complete"] or time.monotonic() > deadline:
            assert body["complete"], "the full listing never finished"
            return body
        time.sleep(0.05)


def test_releases_newest_first_with_who_what_and_links(view):
    page = ok(view("/api/releases"))
    rows = {row["id"]: row for row in page["releases"]}
    assert set(rows) == {SUCCESS, BREACH, MANUAL}, list(rows)
    assert page["total"] == 3
    starts = [row["started_at"] for row in page["releases"]]
    assert starts == sorted(starts, reverse=True)
    assert page["releases"][0]["id"] == BREACH  # captured last

    success = rows[SUCCESS]
    conf = RUNS[SUCCESS]["conf"]
    assert success["version"] == "v1.1.0" and success["commit"] == conf["commit_sha"]
    assert success["author"] == conf["author"] == "dave"
    assert success["approvers"] == [a["id"] for a in RUNS[SUCCESS]["approvals"]["result"]["approvers"]]
    assert len(success["approvers"]) == 2 and "dave" not in success["approvers"]
    assert success["outcome"] == "succeeded" and success["duration_seconds"] > 0
    run_id = RUNS[SUCCESS]["outcome"]["run_id"]
    assert success["links"]["airflow_run"] == f"/dags/deploy_production/runs/{run_id}"
    assert success["links"]["github_release"].endswith("/releases/tag/v1.1.0")
    assert "cloudformation/home" in success["links"]["cloudformation_stack"]
    assert success["links"]["amplify_job"].endswith(
        f"/main-green/{RUNS[SUCCESS]['frontend']['amplify_job']['job_id']}"
    )

    assert rows[BREACH]["outcome"] == "rolled_back" and rows[BREACH]["rollback_status"] == "rolled_back"
    manual = rows[MANUAL]
    assert manual["kind"] == "manual_rollback" and manual["outcome"] == "rolled_back"
    assert manual["version"] == "v1.0.0" and manual["rolled_back_version"] == "v1.1.0"
    assert manual["author"] == "alice" and manual["links"]["airflow_run"].startswith(
        "/dags/rollback_production/"
    )

    assert [r["id"] for r in ok(view("/api/releases", outcome="succeeded"))["releases"]] == [SUCCESS]
    assert ok(view("/api/releases", limit=1, offset=1))["releases"][0]["id"] == page["releases"][1]["id"]


def test_one_release_timeline_plan_approvals_watches_and_smoke_tests(view):
    release = ok(view(f"/api/releases/{SUCCESS}"))
    phases = [bar["phase"] for bar in release["timeline"]]
    assert phases == [phase.measured_as for phase in MEASURED]
    assert all(bar["seconds"] >= 0 for bar in release["timeline"])
    assert release["plan"]["change_set"]["name"] == RUNS[SUCCESS]["plan"]["change_set"]["name"]
    assert release["plan"]["risk"]["level"] == RUNS[SUCCESS]["plan"]["risk"]["level"]
    assert [a["at"] for a in release["approvals"]] == [
        a["at"] for a in RUNS[SUCCESS]["approvals"]["result"]["approvers"]
    ]

    watches = {w["name"]: w for w in release["watches"]}
    assert list(watches) == ["traffic 10 %", "traffic 50 %", "traffic 100 %", "monitoring"]
    steps = RUNS[SUCCESS]["frontend"]["steps"]
    # Every step shows as the record has it: its outcome, and one poll per verdict.
    for key, step in steps.items():
        watch = watches[f"traffic {key} %"]
        verdicts = (step.get("watch") or {}).get("verdicts") or []
        assert (watch["outcome"], len(watch["polls"])) == (step["outcome"], len(verdicts)), key
    for key in ("10", "50"):
        step, watch = steps[key], watches[f"traffic {key} %"]
        assert watch["outcome"] == "healthy" and len(watch["polls"]) == len(step["watch"]["verdicts"]) > 0
        assert watch["thresholds"]["error_rate_percent"] > 0 and watch["thresholds"]["latency_ms"] > 0
        poll = watch["polls"][0]
        assert poll["at"] and poll["error_rate_percent"] is not None and poll["latency_ms"] > 0
        assert poll["requests_per_second"] > 0
        # The API canary beside the colours: the alias's weights, each poll's verdict per version.
        api = RUNS[SUCCESS]["infrastructure"]["api"]
        assert watch["api_weights"] == {"version": api["previous"], "weights": {api["new"]: int(key) / 100}}
        assert all(p["api"]["version"] == api["new"] for p in watch["polls"]), watch["polls"]
        assert all(p["api"]["previous_version"] == api["previous"] for p in watch["polls"])
    assert watches["traffic 100 %"]["api_weights"] == {"version": api["new"], "weights": {}}
    assert len(watches["monitoring"]["polls"]) == len(RUNS[SUCCESS]["monitoring"]["watch"]["verdicts"])
    smoke = release["smoke_tests"]
    assert smoke["passed"] is True and {c["name"] for c in smoke["checks"]} == set(
        RUNS[SUCCESS]["smoke_tests"]["checks"]
    )
    assert release["rollback"] is None or release["rollback"]["status"] in (None, "not_needed")


def test_breach_marked_and_rollback_steps_verified(view):
    release = ok(view(f"/api/releases/{BREACH}"))
    first = release["watches"][0]
    assert first["name"] == "traffic 10 %" and first["outcome"] == "breach"
    breached = [p for p in first["polls"] if p["outcome"] == "breach"]
    assert breached and breached[0]["breaches"], first["polls"]
    assert breached[0]["error_rate_percent"] > first["thresholds"]["error_rate_percent"]
    assert "breach" not in [w["outcome"] for w in release["watches"][1:]]  # nothing moved past 10 %

    rollback = release["rollback"]
    assert rollback["status"] == "rolled_back" and rollback["verified"] is True
    assert set(rollback["undone"]) == {"traffic", "stack", "frontend"}
    steps = {s["name"]: s for s in rollback["steps"]}
    assert {"traffic", "stack", "frontend", "verify"} <= set(steps)
    assert all(steps[name]["status"] == "done" for name in ("traffic", "stack", "frontend"))
    assert [b["phase"] for b in release["timeline"] if b["phase"].startswith("rollback")], release["timeline"]

    manual = ok(view(f"/api/releases/{MANUAL}"))
    assert manual["rollback"]["plan"]["requested_by"] == "alice" and manual["rollback"]["verified"] is True
    assert manual["reason"] == RUNS[MANUAL]["outcome"]["reason"]


def test_live_now_from_the_stack_route53_and_amplify(view, aws):
    """``aws``: production seeded at v1.0.0 in moto and the Amplify emulator."""
    live = ok(view("/api/live"))
    assert live["errors"] == []
    assert live["stack"]["version"] == "v1.0.0"  # the aws fixture's production
    assert live["weights"] == {"blue": 100, "green": 0} and live["live_colour"] == "blue"
    assert live["colours"]["blue"]["version"] == "v1.0.0" and live["colours"]["blue"]["weight"] == 100
    assert live["api_alias"] == {"version": "1", "weights": {}}  # the API alias on the seeded version


def test_live_weights_come_through_the_configured_router(view, aws, monkeypatch):
    """Production routes by the front door (the KeyValueStore), where Route 53's records stay as
    seeded: the view reads the split through the same router seam as the pipeline."""

    class Router:
        def weights(self):
            return {"blue": 10, "green": 90}

    monkeypatch.setattr("deployment.traffic.router_for", lambda cfg: Router())
    live = ok(view("/api/live"))
    assert live["weights"] == {"blue": 10, "green": 90} and live["in_flight"] is True, live


def test_dora_four_keys_over_the_captured_releases(view):
    dora = ok(view("/api/dora", days=7, until=UNTIL))
    # two deployments reached production: the success (rolled back by hand later) and the breach
    assert dora["deployments"] == 2 and dora["failures"] == 2 and dora["manual_rollbacks"] == 1
    assert dora["change_failure_rate"] == 1.0 and dora["bands"]["change_failure_rate"] == "low"
    assert dora["deployment_frequency_per_day"] == round(2 / 7, 4)
    assert dora["bands"]["deployment_frequency_per_day"] == "high"
    assert 0 < dora["lead_time_seconds"] < 3600 and dora["bands"]["lead_time_seconds"] == "elite"
    # the one that reached 100 %, from the first commit release_notes recorded (no GitHub asked)
    assert dora["lead_time_from_trigger"] == 0
    first_commit = parse_time(RUNS[SUCCESS]["release_notes"]["first_commit_at"])
    live = parse_time(RUNS[SUCCESS]["frontend"]["steps"]["100"]["applied_at"])
    assert dora["lead_time_seconds"] == round((live - first_commit).total_seconds(), 3)
    assert 0 < dora["time_to_restore_seconds"] <= dora["time_to_verified_seconds"]
    assert dora["band"] == "low"
    assert len(dora["trend"]) == 7 and sum(b["deployments"] for b in dora["trend"]) == 2

    quarter = ok(view("/api/dora", days=90, until=UNTIL))
    assert len(quarter["trend"]) == 13 and quarter["deployments"] == 2
    empty = ok(view("/api/dora", days=7, until="2026-11-01T00:00:00+00:00"))
    assert empty["deployments"] == 0 and empty["band"] is None


def test_a_user_who_may_not_read_deploy_production_sees_nothing(view):
    paths = ["/", "/api/releases", "/api/live", "/api/dora", f"/api/releases/{SUCCESS}"]
    for path in paths:
        assert view(path, user="nobody").status_code == 403, path
        assert view(path, user=None).status_code == 401, path
        assert view(path, user="viewer").status_code == 200, path
    assert view("/static/view.js", user=None).status_code == 200  # the script: no data in it


def test_missing_record_and_a_release_still_running(view, moto, cfg):
    assert view("/api/releases/v9.9.9/nope").status_code == 404
    run = "manual__running"
    moto.client("s3").put_object(
        Bucket=cfg.artifacts.bucket,
        Key=f"deployments/v1.2.0/{run}/conf.json",
        Body=json.dumps({**RUNS[SUCCESS]["conf"], "version": "v1.2.0", "run_id": run}).encode(),
    )
    first = ok(view("/api/releases"))  # a new API server: the summaries first, then the rest
    assert {r["id"] for r in first["releases"]} >= {SUCCESS, BREACH, MANUAL}
    row = next(r for r in settled(view, "/api/releases")["releases"] if r["id"] == f"v1.2.0/{run}")
    assert row["outcome"] == "running" and row["duration_seconds"] is None and row["approvers"] == []
    release = ok(view(f"/api/releases/v1.2.0/{run}"))
    assert release["watches"] == [] and release["rollback"] is None and release["timeline"] == []


def test_the_plugin_manager_executes_only_the_plugin_file():
    """Every component (task processes too) executes what the plugin manager finds: one small file."""
    from airflow._shared.module_loading import find_path_from_directory

    plugins = Path(__file__).resolve().parents[3] / "plugins"
    found = [
        Path(p).relative_to(plugins).as_posix()
        for p in find_path_from_directory(str(plugins), ".airflowignore", "glob")
        if p.endswith(".py")
    ]
    assert found == ["deployments_view/plugin.py"], "deployment/ is a package the DAGs import, not plugins"
    from deployments_view.plugin import DeploymentsViewPlugin

    view = DeploymentsViewPlugin.external_views[0]
    assert view["url_route"] == "deployments" and view["href"] == "/deployments-view/"


# ------------------------------------------------------------------ summaries, not sections
@pytest.fixture
def reads(monkeypatch):
    """Every S3 object the view GETs, by key."""
    from deployments_view.records import RecordStore

    fetched: list[str] = []
    real = RecordStore._fetch

    def fetch(self, key):
        fetched.append(key)
        return real(self, key)

    monkeypatch.setattr(RecordStore, "_fetch", fetch)
    return fetched


def test_the_table_and_dora_read_each_run_s_summary_not_its_sections(view, reads):
    assert set(SUMMARIES) == {SUCCESS, BREACH, MANUAL}  # every captured run wrote one
    first = ok(view("/api/releases"))  # a new API server: one listing of summaries/, a GET each
    assert {r["id"] for r in first["releases"]} == {SUCCESS, BREACH, MANUAL}
    assert sorted(reads) == sorted(f"deployments/summaries/{run}.json" for run in SUMMARIES)
    settled(view, "/api/releases")  # the background listing of every section found nothing more
    ok(view("/api/dora", days=7, until=UNTIL))
    assert all(key.startswith("deployments/summaries/") for key in reads), reads
    assert len(reads) == 3  # each summary read once (then by ETag)


def test_a_new_api_server_reads_the_view_s_copy_of_the_summaries(view, reads, moto, cfg):
    from deployments_view import records

    rows = settled(view, "/api/releases")["releases"]  # the background listing wrote the copy
    copy = json.loads(
        moto.client("s3")
        .get_object(Bucket=cfg.artifacts.bucket, Key=f"deployments/{records.COPY}")["Body"]
        .read()
    )
    assert set(copy["summaries"]) == {f"deployments/summaries/{run}.json" for run in SUMMARIES}
    records._stores.clear()
    reads.clear()
    assert ok(view("/api/releases"))["releases"] == rows and reads == []  # one listing, one copy

    changed = {**SUMMARIES[SUCCESS], "author": "erin"}  # a summary rewritten since: its ETag changed
    moto.client("s3").put_object(
        Bucket=cfg.artifacts.bucket, Key=f"deployments/summaries/{SUCCESS}.json", Body=json.dumps(changed)
    )
    records._stores.clear()
    row = next(r for r in ok(view("/api/releases"))["releases"] if r["id"] == SUCCESS)
    assert row["author"] == "erin" and reads == [f"deployments/summaries/{SUCCESS}.json"]


def test_a_run_without_a_summary_is_summarised_from_its_sections_the_same_way(view, moto, cfg):
    from deployments_view import records

    with_summaries = settled(view, "/api/releases")["releases"]
    dora_with = ok(view("/api/dora", days=7, until=UNTIL))
    for run in SUMMARIES:  # records written before summaries existed
        moto.client("s3").delete_object(Bucket=cfg.artifacts.bucket, Key=f"deployments/summaries/{run}.json")
    records._stores.clear()  # a new API server
    assert ok(view("/api/releases"))["releases"] == []  # no summary to answer from at once
    assert settled(view, "/api/releases")["releases"] == with_summaries
    dora_without = ok(view("/api/dora", days=7, until=UNTIL))
    assert {k: v for k, v in dora_without.items() if k != "as_of"} == {
        k: v for k, v in dora_with.items() if k != "as_of"
    }


def test_a_summary_older_than_a_section_of_its_run_is_not_used(view, moto, cfg):
    """A run cleared and resumed after its summary was written shows what its sections say now."""
    time.sleep(1.1)  # S3's LastModified counts seconds
    moto.client("s3").put_object(
        Bucket=cfg.artifacts.bucket,
        Key=f"deployments/{SUCCESS}/outcome.json",
        Body=json.dumps({**RUNS[SUCCESS]["outcome"], "status": "failed"}).encode(),
    )
    assert (
        next(r for r in ok(view("/api/releases"))["releases"] if r["id"] == SUCCESS)["outcome"] == "succeeded"
    )
    row = next(r for r in settled(view, "/api/releases")["releases"] if r["id"] == SUCCESS)
    assert row["outcome"] == "failed"
