"""The Deployments view in a real browser: headless Debian chromium, driven by Playwright, on the stack.

Logs into the Airflow UI (SimpleAuthManager's form), opens the Deployments entry of the
navigation (the plugin's external view, an iframe on ``/deployments-view/``), and checks
that the releases table, one release's phase timeline and its traffic-step charts show
the sandbox's data. No release is run for it: the sandbox is reseeded with no run active (an
active run left by an earlier test would add records while the page loads), and its artifacts
bucket then holds the records captured from real sandbox releases
(``tests/unit/deployments_view/captured``). Screenshots go to
``$DEPLOYMENTS_VIEW_SCREENSHOTS`` (default: the test's temporary directory).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import requests

from airflow_stack.env import ADMIN, passwords

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
RECORDS = Path(__file__).resolve().parents[1] / "unit" / "deployments_view" / "captured" / "records"
CREDENTIALS = {"aws_access_key_id": "sandbox", "aws_secret_access_key": "sandbox"}


@pytest.fixture
def bucket(local, sandbox, stack_config):
    """The sandbox's artifacts bucket, reseeded with no run active, with the captured records in it;
    the run ids it holds."""
    import boto3

    from deployment.config import load_config

    cfg = load_config(str(stack_config.path))
    endpoints = json.loads((sandbox.state_dir / "endpoints.json").read_text())
    s3 = boto3.client("s3", endpoint_url=endpoints["aws"], region_name=cfg.region, **CREDENTIALS)
    for path in RECORDS.rglob("*.json"):
        key = str(path.relative_to(RECORDS))
        if "Contents" not in s3.list_objects_v2(Bucket=cfg.artifacts.bucket, Prefix=key):
            s3.put_object(Bucket=cfg.artifacts.bucket, Key=key, Body=path.read_bytes())
    keys = [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=cfg.artifacts.bucket)
        for o in page.get("Contents", [])
    ]
    runs = {"/".join(k.split("/")[1:3]) for k in keys if k.endswith(("/conf.json", "/outcome.json"))}
    stack = boto3.client(
        "cloudformation", endpoint_url=endpoints["aws"], region_name=cfg.region, **CREDENTIALS
    )
    params = stack.describe_stacks(StackName=cfg.stack.name)["Stacks"][0]["Parameters"]
    live = next(p["ParameterValue"] for p in params if p["ParameterKey"] == cfg.stack.version_parameter)
    return {"runs": runs, "live_version": live}


@pytest.fixture
def screenshots(tmp_path) -> Path:
    folder = Path(os.environ.get("DEPLOYMENTS_VIEW_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.mark.skipif(not shutil.which(CHROMIUM), reason=f"{CHROMIUM} is installed by `make install`")
def test_deployments_view_renders_the_sandbox_releases(local_clients, local_stack, bucket, screenshots):
    from playwright.sync_api import sync_playwright

    view = f"{local_stack.ui_url}/deployments-view"
    assert requests.get(f"{view}/api/releases", timeout=30).status_code == 401  # no user: nothing
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{local_stack.ui_url}/")
            page.locator("input[name=username]").fill(ADMIN)
            page.locator("input[name=password]").fill(passwords()[ADMIN])
            page.locator("[type=submit]").click()  # FAB's login form: <input type=submit>
            page.wait_for_url(lambda url: "/auth/login" not in url, timeout=60_000)

            page.goto(f"{local_stack.ui_url}/plugin/deployments")  # the navigation entry's route
            frame = page.wait_for_selector("iframe", timeout=60_000).content_frame()
            frame.wait_for_selector("body[data-ready=true]", timeout=120_000)
            rows = frame.locator("#releases-table tbody tr")
            shown = {rows.nth(i).get_attribute("data-id") for i in range(rows.count())}
            assert shown == bucket["runs"], (shown, bucket["runs"])
            assert frame.locator("#live-stack-version").inner_text() == bucket["live_version"]
            assert frame.locator("#dora-trend canvas").count() >= 4
            page.screenshot(path=str(screenshots / "1-releases.png"))

            releases = page.request.get(f"{view}/api/releases").json()["releases"]  # the UI's session
            breached = [
                r for r in releases if r["kind"] == "release" and r["rollback_status"] == "rolled_back"
            ]
            chosen = breached[0] if breached else releases[0]
            detail = page.request.get(f"{view}/api/releases/{chosen['id']}").json()
            frame.locator(f"#releases-table tr[data-id='{chosen['id']}'] a").first.click()
            frame.wait_for_selector("body[data-ready=true] #release-title", timeout=60_000)
            assert frame.locator("#timeline .row").count() == len(detail["timeline"]) >= 7
            watched = [w for w in detail["watches"] if w["polls"]]
            assert watched, detail["watches"]
            assert frame.locator("#watches .watch").count() == len(detail["watches"])
            assert frame.locator("#watches canvas").count() >= 3 * len(watched)  # error rate, latency, rps
            if any(p["outcome"] == "breach" for w in watched for p in w["polls"]):
                assert frame.locator("#watches .watch.breach").count() >= 1
            page.screenshot(path=str(screenshots / "2-release.png"))

            page.goto(f"{view}/#/release/{chosen['id']}")  # the page alone, full height
            page.wait_for_selector("body[data-ready=true] #timeline", timeout=60_000)
            page.screenshot(path=str(screenshots / "3-release-full.png"), full_page=True)
        finally:
            browser.close()
    print(f"screenshots: {screenshots}")
