"""The sandbox's front door: the function file on every request, in front of the blue and green apps."""

from __future__ import annotations

import json
import time

import pytest
import requests

from deployment.traffic.front_door import LIVE_KEY


def put_routing(sandbox, **routing) -> None:
    value = {"stable": "blue", "new": "green", "weight": 0, "epoch": 1, **routing}
    sandbox.kvs.put(sandbox.kvs_arn, "routing", json.dumps(value))


def visit(sandbox, jar: dict[str, str], **headers: str) -> requests.Response:
    if jar:
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())
    response = requests.get(f"{sandbox.endpoints['frontdoor']}/health", headers=headers, timeout=5)
    for cookie in response.raw.headers.getlist("Set-Cookie"):
        name, _, rest = cookie.partition("=")
        jar[name] = rest.split(";", 1)[0]
    return response


def test_the_probe_reports_the_seeded_routing(sandbox):
    probe = requests.get(f"{sandbox.endpoints['frontdoor']}/__frontdoor", timeout=5).json()
    assert probe == {"stable": "blue", "new": "green", "weight": 0, "epoch": "1"}
    assert sandbox.kvs.snapshot(sandbox.kvs_arn)[LIVE_KEY] == "blue"


def test_a_viewer_reaches_the_stable_app_and_gets_a_cookie(sandbox):
    jar: dict[str, str] = {}
    response = visit(sandbox, jar)
    assert response.status_code == 200 and response.json()["colour"] == "blue"
    assert response.headers["x-bg-colour"] == "blue"
    assert jar["bg-route"].startswith("1.")
    assert "Max-Age" in response.headers["Set-Cookie"]
    again = visit(sandbox, jar)
    assert "Set-Cookie" not in again.headers  # the cookie holds: nothing to set


FORGED = {"x-bg-colour": "green", "x-bg-assign": "1.0"}  # green, bucket 0: what the viewer claims


def test_a_viewer_cannot_choose_its_colour_by_header(sandbox):
    answers = [visit(sandbox, {}, **FORGED) for _ in range(10)]  # seeded: everyone on blue
    assert {a.json()["colour"] for a in answers} == {a.headers["x-bg-colour"] for a in answers} == {"blue"}


@pytest.mark.parametrize("broken", [None, "{not json", json.dumps({"stable": "blue", "new": "blue"})])
def test_without_usable_routing_every_viewer_reaches_the_last_live_colour(sandbox, broken):
    """Green was live last (the live key): a missing or broken routing key sends every viewer to
    green, which the sandbox's declared origin of that id serves, whatever their cookie or headers."""
    try:
        if broken is None:
            sandbox.kvs.delete(sandbox.kvs_arn, "routing")
        else:
            sandbox.kvs.put(sandbox.kvs_arn, "routing", broken)
        sandbox.kvs.put(sandbox.kvs_arn, LIVE_KEY, "green")
        answers = [visit(sandbox, {"bg-route": f"1.{b}"}, **FORGED) for b in (0, 50, 99)]
        probe = requests.get(f"{sandbox.endpoints['frontdoor']}/__frontdoor", timeout=5).json()
    finally:
        sandbox.reseed()
    assert [a.headers["x-bg-colour"] for a in answers] == ["green"] * 3
    # the green app answered (seeded idle: no version on the green branch yet)
    assert all(a.json() == {"error": "no version is deployed on the green branch"} for a in answers)
    assert all("Set-Cookie" not in a.headers for a in answers)  # the forged assignment set no cookie
    assert probe == {"stable": "green", "new": "blue", "weight": 0, "epoch": None, "fallback": "live-key"}


def test_viewers_split_by_weight_stay_put_and_all_move_on_a_new_epoch(sandbox):
    try:
        put_routing(sandbox, weight=50, epoch=2)
        jars: list[dict[str, str]] = [{} for _ in range(40)]
        first = [visit(sandbox, jar).headers["x-bg-colour"] for jar in jars]
        assert 5 <= first.count("green") <= 35  # 50 % of 40 viewers, ±4.7 standard deviations
        assert [visit(sandbox, jar).headers["x-bg-colour"] for jar in jars] == first  # sticky
        put_routing(sandbox, weight=0, epoch=3)  # a rollback: restore() writes a new epoch
        assert {visit(sandbox, jar).headers["x-bg-colour"] for jar in jars} == {"blue"}
    finally:
        sandbox.reseed()


def test_the_simulated_viewers_follow_the_router_the_control_api_names(sandbox):
    control = sandbox.endpoints["control"]
    assert sandbox.cfg.traffic.router == sandbox.traffic_router == "keyvaluestore"  # the default
    try:
        response = requests.post(f"{control}/traffic/router", json={"router": "route53"}, timeout=10)
        assert response.json() == {"router": "route53"} and sandbox.traffic_router == "route53"
        state = requests.get(f"{control}/traffic", timeout=10).json()
        assert state == {
            "router": "route53",
            "configured": "keyvaluestore",
            "weights": {"blue": 100, "green": 0},
        }
        refused = requests.post(f"{control}/traffic/router", json={"router": "dns"}, timeout=10)
        assert refused.status_code == 400
    finally:
        sandbox.reseed()
    assert sandbox.traffic_router == sandbox.cfg.traffic.router


def test_the_control_api_reports_the_split_the_front_door_serves(sandbox):
    control = sandbox.endpoints["control"]
    state = requests.get(f"{control}/traffic", timeout=10).json()
    assert state["router"] == "keyvaluestore" and state["weights"] == {"blue": 100, "green": 0}, state
    assert state["routing"] == {"stable": "blue", "new": "green", "weight": 0, "epoch": "1"}
    try:
        put_routing(sandbox, weight=10, epoch=2)
        state = requests.get(f"{control}/traffic", timeout=10).json()
        assert state["weights"] == {"blue": 90, "green": 10} and state["routing"]["epoch"] == "2", state
    finally:
        sandbox.reseed()


def test_under_a_propagation_fault_the_edge_serves_the_store_as_it_was(sandbox):
    """A KeyValueStore write reaches CloudFront's edges seconds later, not at once."""
    probe_url = f"{sandbox.endpoints['frontdoor']}/__frontdoor"
    fault = sandbox.faults.add("kvs_propagation", ms=1500)
    try:
        put_routing(sandbox, weight=10, epoch=2)
        lagging = sandbox.kvs.snapshot(sandbox.kvs_arn, lag_seconds=1.5)
        assert sandbox.kvs.snapshot(sandbox.kvs_arn)["routing"] != lagging.get("routing")
        assert requests.get(probe_url, timeout=5).json()["weight"] == 0  # the edge still has epoch 1
        time.sleep(1.6)
        assert requests.get(probe_url, timeout=5).json() == {
            "stable": "blue",
            "new": "green",
            "weight": 10,
            "epoch": "2",
        }
    finally:
        sandbox.faults.remove(fault)
        sandbox.reseed()
