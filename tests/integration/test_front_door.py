"""One release through the front door, on the real engine: the split and the stickiness the metrics
show are the CloudFront Function's own, and a breach moves every viewer back at once.

The pipeline routes by ``keyvaluestore`` for this release (the stack's configuration overridden as an
operator would) and the sandbox's simulated viewers (100, a cookie jar each) go through its front
door, which runs ``include/frontdoor/blue_green.js`` on every request. The new version fails 60 % of
its requests, so the 10 % step breaches and its watch restores traffic through the router.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from _matrix import NEW, Release

pytestmark = pytest.mark.integration

SPLIT = {"blue": 90, "green": 10}
VIEWERS = 100
# 10 % of 100 viewers: 10 expected, binomial standard deviation 3; allow ±4 standard deviations.
GREEN_VIEWERS = range(0, 23)


def test_a_release_through_the_front_door(local, world, seeded, sandbox, stack_config):
    try:
        sandbox.control("POST", "/traffic/router", {"router": "keyvaluestore"})
        with stack_config.overridden(traffic={"router": "keyvaluestore"}):
            sandbox.inject("error_rate", version=NEW, percent=60)
            release = Release.trigger(local, world, "frontdoor")
            release.approve()
            release.wait("failed")
        ticks = sandbox.control("GET", "/recorded/traffic")
    finally:
        sandbox.control("POST", "/traffic/router", {"router": world.cfg.traffic.router})

    step = release.section("frontend")["steps"]["10"]
    assert step["outcome"] == "breach", step
    change = step["routing_change"]
    assert change["router"] == "keyvaluestore" and change["after"] == SPLIT and change["applied_at"], change

    # At 10 %: about a tenth of the viewers on green, each on one colour for the whole step.
    split = [t for t in ticks if t.get("weights") == SPLIT]
    assert split, [t.get("weights") for t in ticks]
    green = split[0]["viewers"]["green"]
    assert green in GREEN_VIEWERS and split[0]["viewers"]["blue"] == VIEWERS - green, split[0]
    assert len({t["assignments"] for t in split}) == 1, [t["assignments"] for t in split]

    # After the breach: every viewer on blue within one poll interval + 3 s of the window that showed it.
    restored = step["traffic_restored"]
    assert restored["colour"] == "blue" and "error" not in restored, restored
    breach_end = datetime.fromisoformat(step["watch"]["verdicts"][-1]["sample"]["end"])
    deadline = breach_end.timestamp() + world.cfg.timings.poll_interval_seconds + 3
    later = [t for t in ticks if datetime.fromisoformat(t["received_at"]).timestamp() >= deadline]
    assert later and all(set(t["assignments"]) == {"b"} for t in later), [
        (t["received_at"], t.get("viewers")) for t in ticks
    ]
    last_green = max(
        (datetime.fromisoformat(t["received_at"]) for t in ticks if "g" in t.get("assignments", "")),
        default=None,
    )
    assert last_green is not None and last_green.timestamp() < deadline, (last_green, breach_end)
