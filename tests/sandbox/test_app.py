"""Contract tests: the blue/green application over HTTP, its faults, and the simulated request."""

from __future__ import annotations

import random
import time

import boto3
import pytest
import requests
from moto import mock_aws

from deployment.config import load_config
from sandbox.app import (
    DEFAULT_CHECKS,
    ColourApp,
    DynamoContentStore,
    MemoryContentStore,
    simulate_request,
)
from sandbox.faults import Faults
from tests.sandbox._servers import serving

VERSIONS = {"blue": "v1.0.0", "green": "v1.1.0"}
CHECKS = load_config("sandbox").smoke_tests.checks
USERS = {"smoke-test": "smoke-secret"}


@pytest.fixture
def faults() -> Faults:
    return Faults()


@pytest.fixture
def versions() -> dict[str, str | None]:
    return dict(VERSIONS)


@pytest.fixture
def store() -> MemoryContentStore:
    return MemoryContentStore()


@pytest.fixture
def apps(faults: Faults, versions: dict, store: MemoryContentStore):
    blue = ColourApp("blue", versions.get, faults=faults, content_store=store, users=USERS, seed=1)
    green = ColourApp("green", versions.get, faults=faults, content_store=store, users=USERS, seed=2)
    with serving(blue) as blue_url, serving(green) as green_url:
        yield {"blue": (blue, blue_url), "green": (green, green_url)}


def run_checks(url: str) -> dict[str, requests.Response]:
    """Each configured smoke check, sending the connection's credentials where the check says so."""
    responses = {}
    for check in CHECKS:
        body = dict(check.json_body or {})
        if check.credentials_from_connection:
            body.update(username="smoke-test", password=USERS["smoke-test"])
        responses[check.name] = requests.request(check.method, url + check.path, json=body, timeout=5)
    return responses


def test_default_checks_match_the_config() -> None:
    assert DEFAULT_CHECKS == {c.path: c.name for c in CHECKS}


def test_every_smoke_check_passes_on_both_colours(apps, store: MemoryContentStore) -> None:
    for colour, (app, url) in apps.items():
        responses = run_checks(url)
        for check in CHECKS:
            response = responses[check.name]
            assert response.status_code == check.expect_status, (colour, check.name, response.text)
            assert check.expect_json_key in response.json()
        health = requests.get(f"{url}/health", timeout=5).json()
        assert health == {"status": "ok", "colour": colour, "version": VERSIONS[colour]}
        [session] = app.recorder.list(path="/api/auth/session")
        assert session["json"] == {"username": "smoke-test", "password": "***"}
        recorded = app.recorder.list(path="/api/content")
        assert recorded and recorded[0]["version"] == VERSIONS[colour] and recorded[0]["status"] == 201
    assert {item["colour"] for item in store.items()} == {"blue", "green"}


def test_version_follows_version_of(apps, versions: dict) -> None:
    _, url = apps["green"]
    versions["green"] = "v1.2.0"
    assert requests.get(f"{url}/health", timeout=5).json()["version"] == "v1.2.0"
    versions["green"] = None
    response = requests.get(f"{url}/health", timeout=5)
    assert response.status_code == 503 and "no version" in response.json()["error"]


def test_smoke_failure_by_version_and_check(apps, faults: Faults) -> None:
    faults.add("smoke_failure", version="v1.1.0", check="payment_processing")
    green = run_checks(apps["green"][1])
    assert green["payment_processing"].status_code == 500
    assert "payment_processing" in green["payment_processing"].json()["error"]
    assert all(r.status_code < 300 for name, r in green.items() if name != "payment_processing")
    assert all(r.status_code < 300 for r in run_checks(apps["blue"][1]).values())


def test_smoke_failure_by_colour_breaks_every_check(apps, faults: Faults) -> None:
    faults.add("smoke_failure", colour="green")
    assert {r.status_code for r in run_checks(apps["green"][1]).values()} == {500}
    assert requests.get(f"{apps['green'][1]}/health", timeout=5).status_code == 200


def test_error_rate_fault(apps, faults: Faults) -> None:
    faults.add("error_rate", colour="blue", percent=100)
    url = apps["blue"][1]
    assert {r.status_code for r in run_checks(url).values()} == {500}
    assert requests.get(f"{url}/health", timeout=5).status_code == 200
    faults.clear()
    faults.add("error_rate", version="v1.0.0", percent=50)
    statuses = [
        requests.post(f"{url}/api/ai/generate", json={"prompt": "p"}, timeout=5).status_code
        for _ in range(40)
    ]
    assert 8 <= statuses.count(500) <= 32


def elapsed(call) -> float:
    started = time.monotonic()
    call()
    return time.monotonic() - started


def test_latency_fault(apps, faults: Faults) -> None:
    faults.add("latency", version="v1.1.0", ms=300)
    green, blue = apps["green"][1], apps["blue"][1]
    for url, slow in ((green, True), (blue, False)):
        generate = f"{url}/api/ai/generate"
        api = elapsed(lambda generate=generate: requests.post(generate, json={"prompt": "p"}, timeout=5))
        assert (api >= 0.3) is slow, (url, api)
    # /health is spared: the simulator's viewers learn their colour through it, tick after tick.
    assert elapsed(lambda: requests.get(f"{green}/health", timeout=5).raise_for_status()) < 0.3


def test_a_latency_fault_naming_a_check_slows_that_check_only(apps, faults: Faults) -> None:
    faults.add("latency", version="v1.1.0", check="ai_service_integration", ms=300)
    green = apps["green"][1]
    generate = elapsed(lambda: requests.post(f"{green}/api/ai/generate", json={"prompt": "p"}, timeout=5))
    payment = elapsed(
        lambda: requests.post(
            f"{green}/api/payments/intent", json={"amount": 1, "currency": "usd"}, timeout=5
        )
    )
    assert generate >= 0.3 and payment < 0.3, (generate, payment)
    # User traffic never goes through a check: the simulated request is not slowed.
    rng = random.Random(1)
    assert max(simulate_request(faults, "green", "v1.1.0", rng)[1] for _ in range(50)) < 300 * 3


def test_bad_requests(apps) -> None:
    url = apps["blue"][1]
    wrong = {"username": "smoke-test", "password": "guess"}
    cases = [
        (requests.post(f"{url}/api/auth/session", json={"username": "u"}, timeout=5), 400),
        (requests.post(f"{url}/api/auth/session", json=wrong, timeout=5), 401),
        (requests.post(f"{url}/api/content", data="{bad", timeout=5), 400),
        (requests.post(f"{url}/api/content", json=["title"], timeout=5), 400),
        (requests.post(f"{url}/api/payments/intent", json={"amount": -1, "currency": "usd"}, timeout=5), 400),
        (
            requests.post(
                f"{url}/api/payments/intent", json={"amount": 100, "currency": "dollars"}, timeout=5
            ),
            400,
        ),
        (requests.post(f"{url}/api/ai/generate", json={}, timeout=5), 400),
        (requests.get(f"{url}/api/content", timeout=5), 405),
        (requests.get(f"{url}/nope", timeout=5), 404),
    ]
    for response, status in cases:
        assert response.status_code == status, response.text
        assert isinstance(response.json()["error"], str)


def test_content_written_to_dynamodb() -> None:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-west-2")
        client.create_table(
            TableName="bayon-coagent-production-content",
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "ts", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "ts", "AttributeType": "N"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        store = DynamoContentStore(
            "bayon-coagent-production-content", endpoint_url="unused", region="us-west-2", client=client
        )
        app = ColourApp("blue", VERSIONS.get, content_store=store)
        with serving(app) as url:
            response = requests.post(f"{url}/api/content", json={"title": "t", "body": "b"}, timeout=5)
            assert response.status_code == 201
            [item] = client.scan(TableName="bayon-coagent-production-content")["Items"]
            assert item["pk"] == {"S": response.json()["id"]}
            assert int(item["ts"]["N"]) > 0 and item["version"] == {"S": "v1.0.0"}
            client.delete_table(TableName="bayon-coagent-production-content")
            broken = requests.post(f"{url}/api/content", json={"title": "t", "body": "b"}, timeout=5)
            assert broken.status_code == 500 and "content store unavailable" in broken.json()["error"]


def test_simulate_request_baseline_and_faults() -> None:
    rng = random.Random(7)
    healthy = [simulate_request(None, "blue", "v1.0.0", rng) for _ in range(20000)]
    errors = sum(status >= 500 for status, _ in healthy)
    assert errors / len(healthy) < 0.003
    assert 115 < sum(ms for _, ms in healthy) / len(healthy) < 125

    faults = Faults()
    faults.add("error_rate", version="v1.1.0", percent=30)
    faults.add("latency", colour="green", ms=500)
    bad = [simulate_request(faults, "green", "v1.1.0", rng) for _ in range(5000)]
    assert 0.27 < sum(s == 500 for s, _ in bad) / len(bad) < 0.33
    assert sum(ms for _, ms in bad) / len(bad) > 600
    assert simulate_request(faults, "blue", None, rng)[0] == 503

    first = [simulate_request(faults, "green", "v1.1.0", random.Random(3)) for _ in range(3)]
    second = [simulate_request(faults, "green", "v1.1.0", random.Random(3)) for _ in range(3)]
    assert first == second


def test_evenly_spaced_errors_fail_exactly_one_request_in_every_hundred_over_percent() -> None:
    faults = Faults()
    faults.add("error_rate", version="v1.1.0", percent=5, spacing="even")
    # Each request draws from the same seed, whose baseline draw is no error: every 500 is the fault's.
    statuses = [simulate_request(faults, "green", "v1.1.0", random.Random(5))[0] for _ in range(2000)]
    failed = [i for i, status in enumerate(statuses) if status == 500]
    assert {b - a for a, b in zip(failed, failed[1:], strict=False)} == {20}
    assert 99 <= len(failed) <= 101


def test_a_latency_tail_slows_an_exact_evenly_spaced_share_and_keeps_the_mean() -> None:
    faults = Faults()
    faults.add("latency_tail", version="v1.1.0", ms=1500, percent=2)
    rng = random.Random(11)
    tail = [simulate_request(faults, "green", "v1.1.0", rng)[1] for _ in range(5000)]
    slow = [i for i, ms in enumerate(tail) if ms > 1000]
    assert len(slow) == 100 and {b - a for a, b in zip(slow, slow[1:], strict=False)} == {50}
    assert 115 < sum(tail) / len(tail) < 125  # the mean as without the fault
