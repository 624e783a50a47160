"""The front door's CloudFront Function (include/frontdoor/blue_green.js), run as is under Node.

Each test feeds the function the event CloudFront builds and the KeyValueStore
items it would read; ``random`` fixes the bucket a viewer without a cookie draws
(Math.random() * 100, floored). ``originId`` is the id the function passed to
``cf.selectRequestOriginById`` (the harness's stand-in has no ``updateRequestOrigin``:
a function naming an origin by host would fail here).
"""

from __future__ import annotations

import json

import pytest

from deployment.traffic.front_door import LIVE_KEY, ORIGIN_IDS
from sandbox.frontdoor import FUNCTION_FILE, FunctionRunner

ROUTING_HEADERS = ("x-bg-colour", "x-bg-assign")


@pytest.fixture(scope="module")
def fn():
    with FunctionRunner() as runner:
        yield runner


def routing(stable="blue", new="green", weight=10, epoch=3, live="blue", **extra):
    value = {"stable": stable, "new": new, "weight": weight, "epoch": epoch, **extra}
    return {"routing": json.dumps(value), **({LIVE_KEY: live} if live else {})}


def request(uri="/", cookie=None, headers=None):
    cookies = {"bg-route": {"value": cookie}} if cookie is not None else {}
    return {
        "version": "1.0",
        "context": {"eventType": "viewer-request"},
        "viewer": {"ip": "198.51.100.7"},
        "request": {
            "method": "GET",
            "uri": uri,
            "querystring": {},
            "headers": {name: {"value": value} for name, value in (headers or {}).items()},
            "cookies": cookies,
        },
    }


def colour_of(answer):
    return answer["result"]["headers"]["x-bg-colour"]["value"]


def test_a_new_viewer_below_the_weight_goes_to_the_new_colours_origin(fn):
    answer = fn.run(request(), routing(weight=10), random=0.05)
    assert colour_of(answer) == "green" and answer["originId"] == ORIGIN_IDS["green"] == "green"
    assert answer["result"]["headers"]["x-bg-assign"]["value"] == "3.5"


def test_a_new_viewer_at_or_above_the_weight_stays_on_stable(fn):
    answer = fn.run(request(), routing(weight=10), random=0.10)
    assert colour_of(answer) == "blue" and answer["originId"] == "blue"


def test_the_split_follows_the_weight_over_all_buckets(fn):
    answers = [fn.run(request(), routing(weight=10), random=b / 100) for b in range(100)]
    assert sum(colour_of(a) == "green" for a in answers) == 10
    assert all(a["originId"] == colour_of(a) for a in answers)


def test_a_viewer_keeps_its_bucket_while_the_epoch_holds(fn):
    # bucket 5 is green at 10 %, whatever the draw says
    answer = fn.run(request(cookie="3.5"), routing(weight=10), random=0.99)
    assert colour_of(answer) == "green" and answer["result"]["headers"]["x-bg-assign"]["value"] == "3.5"
    # bucket 40 is blue at 10 % and green at 50 %: only stable viewers move when the weight rises
    assert colour_of(fn.run(request(cookie="3.40"), routing(weight=10), random=0.0)) == "blue"
    assert colour_of(fn.run(request(cookie="3.40"), routing(weight=50), random=0.99)) == "green"


def test_a_new_epoch_ignores_the_cookie_and_draws_again(fn):
    answer = fn.run(request(cookie="3.5"), routing(weight=10, epoch=4), random=0.50)
    assert colour_of(answer) == "blue" and answer["result"]["headers"]["x-bg-assign"]["value"] == "4.50"


@pytest.mark.parametrize("cookie", ["garbage", "3.", "3.100", "3.-1", "3.5.1", ""])
def test_a_malformed_cookie_is_ignored(fn, cookie):
    answer = fn.run(request(cookie=cookie), routing(weight=10), random=0.50)
    assert answer["result"]["headers"]["x-bg-assign"]["value"] == "3.50"


def test_weight_zero_sends_everyone_to_stable_whatever_the_cookie(fn):
    for cookie in ("3.0", "3.5", None):
        answer = fn.run(request(cookie=cookie), routing(weight=0), random=0.0)
        assert colour_of(answer) == "blue" and answer["originId"] == "blue"


def test_weight_100_sends_everyone_to_the_new_colour(fn):
    answer = fn.run(request(cookie="3.99"), routing(weight=100), random=0.99)
    assert colour_of(answer) == "green" and answer["originId"] == "green"


# ------------------------------------------------------------------ viewer-supplied routing headers
@pytest.mark.parametrize("name", ROUTING_HEADERS)
def test_a_viewers_routing_header_is_dropped_before_routing(fn, name):
    # a viewer on stable (bucket 50) claims the canary's colour and bucket
    sent = {"x-bg-colour": "green", "x-bg-assign": "3.1"}[name]
    answer = fn.run(request(headers={name: sent, "accept": "text/html"}), routing(weight=10), random=0.50)
    headers = answer["result"]["headers"]
    assert colour_of(answer) == "blue" and answer["originId"] == "blue"
    assert headers["x-bg-assign"] == {"value": "3.50"} and headers["accept"] == {"value": "text/html"}


@pytest.mark.parametrize("name", ROUTING_HEADERS)
def test_a_viewers_routing_header_does_not_reach_the_origin_when_falling_back(fn, name):
    answer = fn.run(request(headers={name: "3.1"}), {LIVE_KEY: "green"}, random=0.0)
    assert "x-bg-assign" not in answer["result"]["headers"]
    assert colour_of(answer) == "green" and answer["originId"] == "green"


# ------------------------------------------------------------------ no usable routing: the last live colour
def _fallback(fn, items, cookie="3.5"):
    answer = fn.run(request(cookie=cookie), items, random=0.0)
    probe = json.loads(fn.run(request(uri="/__frontdoor"), items)["result"]["body"])
    return answer, probe


def test_a_missing_routing_key_serves_the_live_keys_colour(fn):
    answer, probe = _fallback(fn, {LIVE_KEY: "green"})
    assert answer["originId"] == "green" and colour_of(answer) == "green"
    assert "x-bg-assign" not in answer["result"]["headers"]  # no assignment: the cookie stays as it is
    assert probe == {"stable": "green", "new": "blue", "weight": 0, "epoch": None, "fallback": "live-key"}


UNUSABLE = {
    "not JSON": "{not json",
    "JSON, not an object": '"blue"',
    "null": "null",
    "unknown stable": {"stable": "red"},
    "unknown new": {"new": "purple"},
    "the same colour twice": {"new": "blue"},
    "no new": {"new": None},
    "weight above 100": {"weight": 150},
    "negative weight": {"weight": -10},
    "fractional weight": {"weight": 2.5},
    "weight as text": {"weight": "10"},
    "no weight": {"weight": None},
    "no epoch": {"epoch": None},
    "epoch as text": {"epoch": "3"},
    "negative epoch": {"epoch": -1},
    "a host name for a colour": {"stable": "evil.example.com"},
    "a prototype key for a colour": {"new": "constructor"},
}


@pytest.mark.parametrize("broken", UNUSABLE.values(), ids=UNUSABLE.keys())
def test_an_unusable_routing_key_serves_the_live_keys_colour_whole(fn, broken):
    # green was live last; the broken value still names blue as stable: nothing of it is used
    if isinstance(broken, dict):
        value = json.dumps(json.loads(routing(weight=10)["routing"]) | broken)
    else:
        value = broken
    answer, probe = _fallback(fn, {"routing": value, LIVE_KEY: "green"})
    assert answer["originId"] == "green" and colour_of(answer) == "green"
    assert probe["stable"] == "green" and probe["weight"] == 0 and probe["fallback"] == "live-key"


@pytest.mark.parametrize("live", [None, "", "purple", "evil.example.com", "constructor", '"green"'])
def test_without_a_usable_live_key_the_built_in_colour_is_served(fn, live):
    items = {"routing": "{not json", **({LIVE_KEY: live} if live is not None else {})}
    answer, probe = _fallback(fn, items)
    built_in = "blue"  # BUILT_IN_LIVE, the colour production is created with
    assert answer["originId"] == built_in and colour_of(answer) == built_in
    assert probe == {"stable": built_in, "new": "green", "weight": 0, "epoch": None, "fallback": "built-in"}


def test_an_empty_store_serves_the_built_in_colour(fn):
    answer, probe = _fallback(fn, {})
    assert answer["originId"] == "blue" and probe["fallback"] == "built-in"


def test_the_built_in_colour_is_the_one_the_function_file_names():
    assert "const BUILT_IN_LIVE = 'blue';" in FUNCTION_FILE.read_text()


def test_host_names_in_a_routing_value_are_never_used(fn):
    # values written before the store held colours only carried each colour's host: ignored
    hosts = {"blue": "evil.example.com", "green": "evil.example.com"}
    answer = fn.run(request(), routing(weight=10, origins=hosts), random=0.05)
    assert answer["originId"] == "green" and "evil" not in json.dumps(answer)


def test_a_usable_routing_key_wins_over_the_live_key(fn):
    answer = fn.run(request(), routing(weight=0, live="green"), random=0.0)
    assert answer["originId"] == "blue"


# ------------------------------------------------------------------ the probe
def test_the_probe_reports_what_the_function_reads(fn):
    answer = fn.run(request(uri="/__frontdoor"), routing(weight=50, epoch=9))
    response = answer["result"]
    assert response["statusCode"] == 200 and response["headers"]["cache-control"]["value"] == "no-store"
    assert json.loads(response["body"]) == {"stable": "blue", "new": "green", "weight": 50, "epoch": "9"}
    assert answer["originId"] is None


# ------------------------------------------------------------------ viewer-response
def _viewer_response(req, cookie=None):
    event = request(cookie=cookie)
    event["context"]["eventType"] = "viewer-response"
    event["request"] = req
    event["response"] = {"statusCode": 200, "headers": {}, "cookies": {}}
    return event


def test_the_response_sets_the_cookie_for_a_new_assignment_and_tags_the_colour(fn):
    req = fn.run(request(), routing(weight=10), random=0.05)["result"]
    response = fn.run(_viewer_response(req), routing(weight=10))["result"]
    assert response["cookies"]["bg-route"]["value"] == "3.5"
    assert "Max-Age=" in response["cookies"]["bg-route"]["attributes"]
    assert response["headers"]["x-bg-colour"] == {"value": "green"}


def test_the_response_leaves_an_unchanged_cookie_alone(fn):
    req = fn.run(request(cookie="3.5"), routing(weight=10))["result"]
    assert fn.run(_viewer_response(req), routing(weight=10))["result"]["cookies"] == {}


def test_the_response_while_falling_back_sets_no_cookie_and_tags_the_served_colour(fn):
    req = fn.run(request(), {LIVE_KEY: "green"})["result"]
    response = fn.run(_viewer_response(req), {LIVE_KEY: "green"})["result"]
    assert response["cookies"] == {} and response["headers"]["x-bg-colour"] == {"value": "green"}


@pytest.mark.parametrize(
    "headers",
    [
        {"x-bg-assign": {"value": "3.5; Domain=example.com"}, "x-bg-colour": {"value": "<script>"}},
        {"x-bg-assign": {"value": "3.100"}, "x-bg-colour": {"value": "purple"}},
    ],
)
def test_the_response_copies_only_well_formed_routing_values(fn, headers):
    req = request()["request"] | {"headers": headers}
    response = fn.run(_viewer_response(req), routing())["result"]
    assert response["cookies"] == {} and "x-bg-colour" not in response["headers"]
