"""Releases through each traffic router, on the real engine.

The front door (``keyvaluestore``, sandbox.yaml's default as production's): the sandbox's simulated
viewers (100, a cookie jar each) go through its front door, which runs
``include/frontdoor/blue_green.js`` on every request, so the split and the stickiness the metrics show
are the CloudFront Function's own, and a breach moves every viewer back at once (and makes the stable
colour the one the front door falls back to). Route 53, where it is
sound (origins answering for one host name): the same breach on the weighted records, with the
pipeline and the simulated viewers switched to ``route53`` as an operator would, and the front door
left alone. The new version fails 60 % of its requests, so the 10 % step breaches and its watch
restores traffic through the router.
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


def _breached_at_10(release: Release, router: str) -> dict:
    step = release.section("frontend")["steps"]["10"]
    assert step["outcome"] == "breach", step
    change = step["routing_change"]
    assert change["router"] == router and change["after"] == SPLIT and change["applied_at"], change
    restored = step["traffic_restored"]
    assert restored["colour"] == "blue" and "error" not in restored, restored
    return step


def test_a_release_through_the_front_door(local, world, seeded, sandbox, record_property):
    assert world.cfg.traffic.router == "keyvaluestore", "sandbox.yaml routes by the front door"
    assert sandbox.control("GET", "/traffic")["router"] == "keyvaluestore"
    sandbox.inject("error_rate", version=NEW, percent=60)
    release = Release.trigger(local, world, "frontdoor")
    release.approve()
    release.wait("failed")
    ticks = sandbox.control("GET", "/recorded/traffic")

    step = _breached_at_10(release, "keyvaluestore")
    # At 10 %: about a tenth of the viewers on green, each on one colour for the whole step. A tick
    # reads the routing first, then visits its 100 viewers (~1 s): the tick during which the restore
    # was written starts at 10 % and moves its later viewers to blue, so the steady ticks are those
    # that ended before the write (its RoutingChange is made when UpdateKeys has answered).
    restore = step["traffic_restored"]
    written = datetime.fromisoformat((restore.get("change") or {}).get("requested_at") or restore["at"])
    split = [t for t in ticks if t.get("weights") == SPLIT]
    steady = [t for t in split if datetime.fromisoformat(t["received_at"]) < written]
    assert steady, [(t["received_at"], t.get("weights")) for t in ticks]
    green = steady[0]["viewers"]["green"]
    assert green in GREEN_VIEWERS and steady[0]["viewers"]["blue"] == VIEWERS - green, steady[0]
    assert len({t["assignments"] for t in steady}) == 1, [t["assignments"] for t in steady]

    # After the breach: every viewer on blue within one poll interval + 3 s of the window that showed it.
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
    restored_at = written.timestamp()
    first_all_blue = min(
        datetime.fromisoformat(t["received_at"]).timestamp()
        for t in ticks
        if t.get("assignments")
        and set(t["assignments"]) == {"b"}
        and datetime.fromisoformat(t["received_at"]).timestamp() > last_green.timestamp()
    )
    record_property(  # seconds after the end of the window that showed the breach (--junitxml)
        "front_door_restore",
        {
            "green_viewers_at_10": green,
            "store_restored_s": round(restored_at - breach_end.timestamp(), 2),
            "last_green_tick_s": round(last_green.timestamp() - breach_end.timestamp(), 2),
            "first_all_blue_tick_s": round(first_all_blue - breach_end.timestamp(), 2),
            "deadline_s": world.cfg.timings.poll_interval_seconds + 3,
        },
    )

    # The store, the front door and the control API agree: blue at 100 %, under a new epoch.
    assert world.weights() == {"blue": 100, "green": 0}
    probe = world.front_door_probe()
    assert probe["stable"] == "blue" and probe["weight"] == 0 and int(probe["epoch"]) > 1, probe
    assert world.front_door().live() == "blue", "the restore names blue as the last live colour"
    assert sandbox.control("GET", "/traffic")["weights"] == {"blue": 100, "green": 0}
    assert world.weight_changes(release.started, "route53") == [], "Route 53 is not the router here"


def test_a_release_on_route53_where_it_is_sound(local, world, seeded, sandbox, stack_config):
    try:
        sandbox.control("POST", "/traffic/router", {"router": "route53"})
        with stack_config.overridden(traffic={"router": "route53"}):
            sandbox.inject("error_rate", version=NEW, percent=60)
            release = Release.trigger(local, world, "route53")
            release.approve()
            release.wait("failed")
        ticks = sandbox.control("GET", "/recorded/traffic")
        state = sandbox.control("GET", "/traffic")
    finally:
        sandbox.control("POST", "/traffic/router", {"router": world.cfg.traffic.router})

    _breached_at_10(release, "route53")
    assert any(t.get("weights") == SPLIT for t in ticks), [t.get("weights") for t in ticks]
    assert state == {"router": "route53", "configured": "keyvaluestore", "weights": {"blue": 100, "green": 0}}
    assert world.weights("route53") == {"blue": 100, "green": 0}
    assert len(world.weight_changes(release.started, "route53")) >= 2, "the 10 % step, then its restore"
    # The front door's store is not this pipeline's router: untouched, still all on blue.
    assert world.weight_changes(release.started, "keyvaluestore") == []
    assert world.weights("keyvaluestore") == {"blue": 100, "green": 0}
