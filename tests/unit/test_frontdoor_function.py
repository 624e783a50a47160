"""The front door's CloudFront Function (include/frontdoor/blue_green.js), run as is under Node.

Each test feeds the function the event CloudFront builds and the KeyValueStore
items it would read; ``random`` fixes the bucket a viewer without a cookie draws
(Math.random() * 100, floored).
"""

from __future__ import annotations

import json

import pytest

from sandbox.frontdoor import FunctionRunner

ORIGINS = {"blue": "main-blue.d2app.amplifyapp.com", "green": "main-green.d2app.amplifyapp.com"}


@pytest.fixture(scope="module")
def fn():
    with FunctionRunner() as runner:
        yield runner


def routing(stable="blue", new="green", weight=10, epoch=3, **extra):
    value = {"stable": stable, "new": new, "weight": weight, "epoch": epoch, "origins": ORIGINS, **extra}
    return {"routing": json.dumps(value)}


def request(uri="/", cookie=None):
    cookies = {"bg-route": {"value": cookie}} if cookie is not None else {}
    return {
        "version": "1.0",
        "context": {"eventType": "viewer-request"},
        "viewer": {"ip": "198.51.100.7"},
        "request": {"method": "GET", "uri": uri, "querystring": {}, "headers": {}, "cookies": cookies},
    }


def colour_of(answer):
    return answer["result"]["headers"]["x-bg-colour"]["value"]


def test_a_new_viewer_below_the_weight_goes_to_the_new_colour(fn):
    answer = fn.run(request(), routing(weight=10), random=0.05)
    assert colour_of(answer) == "green"
    assert answer["origin"] == {"domainName": ORIGINS["green"]}
    assert answer["result"]["headers"]["x-bg-assign"]["value"] == "3.5"


def test_a_new_viewer_at_or_above_the_weight_stays_on_stable(fn):
    answer = fn.run(request(), routing(weight=10), random=0.10)
    assert colour_of(answer) == "blue" and answer["origin"] == {"domainName": ORIGINS["blue"]}


def test_the_split_follows_the_weight_over_all_buckets(fn):
    greens = sum(
        colour_of(fn.run(request(), routing(weight=10), random=b / 100)) == "green" for b in range(100)
    )
    assert greens == 10


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
        assert colour_of(answer) == "blue"


def test_weight_100_sends_everyone_to_the_new_colour(fn):
    assert colour_of(fn.run(request(cookie="3.99"), routing(weight=100), random=0.99)) == "green"


def test_a_missing_key_leaves_the_default_origin_tagged_stable(fn):
    answer = fn.run(request(cookie="3.5"), {}, random=0.0)
    assert answer["origin"] is None
    assert answer["result"]["headers"] == {"x-bg-colour": {"value": "stable"}}


@pytest.mark.parametrize(
    "broken",
    [
        {"weight": "ten"},
        {"weight": 150},
        {"weight": 2.5},
        {"weight": None},
        {"new": "purple"},
        {"new": "blue"},
    ],
)
def test_bad_fields_fall_back_to_stable(fn, broken):
    value = json.loads(routing(weight=10)["routing"]) | broken
    answer = fn.run(request(cookie="3.5"), {"routing": json.dumps(value)}, random=0.0)
    assert colour_of(answer) == "blue"


def test_missing_new_and_weight_fall_back_to_stable(fn):
    answer = fn.run(request(), {"routing": json.dumps({"stable": "green", "origins": ORIGINS})}, random=0.0)
    assert colour_of(answer) == "green" and answer["origin"] == {"domainName": ORIGINS["green"]}


def test_an_unknown_stable_or_unparsable_value_is_a_missing_key(fn):
    for items in ({"routing": json.dumps({"stable": "red"})}, {"routing": "{not json"}):
        assert colour_of(fn.run(request(), items, random=0.0)) == "stable"


def test_a_colour_without_an_origin_keeps_the_default_origin(fn):
    value = {"stable": "blue", "new": "green", "weight": 10, "epoch": 3}
    answer = fn.run(request(), {"routing": json.dumps(value)}, random=0.0)
    assert colour_of(answer) == "green" and answer["origin"] is None


def test_the_probe_reports_what_the_function_reads(fn):
    answer = fn.run(request(uri="/__frontdoor"), routing(weight=50, epoch=9))
    response = answer["result"]
    assert response["statusCode"] == 200 and response["headers"]["cache-control"]["value"] == "no-store"
    assert json.loads(response["body"]) == {"stable": "blue", "new": "green", "weight": 50, "epoch": "9"}
    assert json.loads(fn.run(request(uri="/__frontdoor"), {})["result"]["body"]) == {"stable": None}


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


def test_the_response_without_routing_sets_no_cookie(fn):
    req = fn.run(request(), {})["result"]
    response = fn.run(_viewer_response(req), {})["result"]
    assert response["cookies"] == {} and response["headers"]["x-bg-colour"] == {"value": "stable"}
