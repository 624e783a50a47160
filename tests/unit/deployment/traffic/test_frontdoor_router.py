"""The KeyValueStore router against the sandbox's KVS API and front door (boto3's own client, SigV4A)."""

from __future__ import annotations

import json

import pytest

from deployment.config import load_config
from deployment.traffic import router_for
from deployment.traffic.front_door import LIVE_KEY, KeyValueStoreRouter, origins
from deployment.traffic.router import RoutingChange, TrafficRoutingError
from sandbox.frontdoor import FrontDoor, FunctionRunner
from sandbox.kvs import KeyValueStoreEmulator
from tests.sandbox._servers import serving

ARN = "arn:aws:cloudfront::123456789012:key-value-store/0f1e2d3c-aaaa-bbbb-cccc-000000000001"


def _ok(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"app"]


@pytest.fixture
def door(monkeypatch):
    emulator = KeyValueStoreEmulator()
    emulator.create(ARN)
    calls: list[tuple[str, str]] = []

    def recorded(environ, start_response):
        calls.append((environ["REQUEST_METHOD"], environ["PATH_INFO"]))
        return emulator(environ, start_response)

    with FunctionRunner() as runner, serving(recorded) as kvs_url, serving(_ok) as app_url:
        base = load_config("sandbox")
        declared = dict.fromkeys(origins(base).values(), app_url)
        front = FrontDoor(runner, lambda: emulator.snapshot(ARN), declared, app_url)
        with serving(front) as door_url:
            traffic = base.traffic.model_copy(
                update={
                    "router": "keyvaluestore",
                    "front_door": base.traffic.front_door.model_copy(
                        update={"key_value_store_arn": ARN, "probe_interval_seconds": 0.05}
                    ),
                }
            )
            cfg = base.model_copy(update={"traffic": traffic})
            service = {"endpoint_url": kvs_url, "proxy_url": kvs_url}
            monkeypatch.setenv(
                f"AIRFLOW_CONN_{cfg.connections.front_door.upper()}",
                json.dumps({"conn_type": "http", "host": door_url}),
            )
            extra = {"region_name": cfg.region, "service_config": {"cloudfront-keyvaluestore": service}}
            monkeypatch.setenv(
                f"AIRFLOW_CONN_{cfg.connections.aws.upper()}",
                json.dumps({"conn_type": "aws", "login": "testing", "password": "testing", "extra": extra}),
            )
            router = router_for(cfg)
            assert isinstance(router, KeyValueStoreRouter)
            router.seed("blue")
            yield {"cfg": cfg, "router": router, "kvs": emulator, "calls": calls}


def stored(door):
    return json.loads(door["kvs"].snapshot(ARN)["routing"])


def live(door):
    return door["kvs"].snapshot(ARN).get(LIVE_KEY)


def test_seeded_at_production_state_with_colours_only(door):
    router = door["router"]
    assert router.weights() == {"blue": 100, "green": 0} and router.live_colour() == "blue"
    assert door["kvs"].snapshot(ARN) == {
        "routing": json.dumps({"stable": "blue", "new": "green", "weight": 0, "epoch": 1}),
        LIVE_KEY: "blue",
    }
    assert router.live() == "blue"


def test_reading_the_weights_is_one_get_key(door):
    """Only a write needs the store's ETag (UpdateKeys' IfMatch): a read asks for the key alone."""
    door["calls"].clear()
    assert door["router"].weights() == {"blue": 100, "green": 0}
    assert len(door["calls"]) == 1 and door["calls"][0][0] == "GET"
    assert door["calls"][0][1].endswith("/keys/routing")


def test_a_release_shifts_keeps_the_epoch_and_waits_at_the_front_door(door):
    router = door["router"]
    change = router.set_weights({"blue": 90, "green": 10})
    assert change.before == {"blue": 100, "green": 0} and change.after == {"blue": 90, "green": 10}
    assert stored(door) == {"stable": "blue", "new": "green", "weight": 10, "epoch": 1}
    router.wait_applied(change, timeout=5)
    assert change.applied_at and RoutingChange.from_dict(change.to_dict()) == change
    assert live(door) == "blue"  # a canary step is not a new live colour
    assert router.set_weights({"blue": 90, "green": 10}) is None
    done = router.set_weights({"blue": 0, "green": 100})
    assert stored(door)["weight"] == 100 and stored(door)["epoch"] == 1
    assert router.live_colour() == "green"
    assert live(door) == "blue"  # written, not yet served
    router.wait_applied(done, timeout=5)
    assert live(door) == "green"


def test_the_next_release_turns_the_pair_round_with_a_new_epoch(door):
    router = door["router"]
    router.set_weights({"blue": 0, "green": 100})
    router.set_weights({"blue": 10, "green": 90})
    assert {k: stored(door)[k] for k in ("stable", "new", "weight", "epoch")} == {
        "stable": "green",
        "new": "blue",
        "weight": 10,
        "epoch": 2,
    }
    assert router.weights() == {"blue": 10, "green": 90} and router.live_colour() == "green"


def test_restore_moves_everyone_with_a_new_epoch_and_is_idempotent(door):
    router = door["router"]
    router.set_weights({"blue": 50, "green": 50})
    change = router.restore("blue")
    assert change.after == {"blue": 100, "green": 0} and change.epoch == 2
    router.wait_applied(change, timeout=5)
    assert router.restore("blue") is None
    assert stored(door)["epoch"] == 2


def test_a_prepared_router_restores_with_its_own_client_and_store(door, monkeypatch):
    """What the watch builds before its first poll: the breach's restore resolves nothing again."""
    router = KeyValueStoreRouter(door["cfg"])
    router.prepare()
    router.set_weights({"blue": 90, "green": 10})
    monkeypatch.setattr("deployment.traffic.front_door.client", lambda cfg: pytest.fail("client built again"))
    monkeypatch.setattr("deployment.traffic.front_door.store_arn", lambda cfg: pytest.fail("ARN read again"))
    assert router.restore("blue").after == {"blue": 100, "green": 0}


def test_restore_writes_the_live_colour_with_the_routing_in_one_write(door):
    router = door["router"]
    router.wait_applied(router.set_weights({"blue": 0, "green": 100}), timeout=5)
    assert live(door) == "green"
    writes = []
    real = router.kvs.update_keys
    router.kvs.update_keys = lambda **kwargs: writes.append(kwargs["Puts"]) or real(**kwargs)
    router.restore("blue")  # the trigger's rollback: it does not wait for the edge
    assert [sorted(p["Key"] for p in puts) for puts in writes] == [[LIVE_KEY, "routing"]]
    assert live(door) == "blue" and stored(door)["weight"] == 0 and stored(door)["stable"] == "blue"


def test_restore_mends_a_live_key_that_names_another_colour(door):
    router = door["router"]
    _, etag = router.routing()
    router.kvs.put_key(KvsARN=ARN, Key=LIVE_KEY, Value="green", IfMatch=etag)
    assert router.restore("blue") is None
    assert live(door) == "blue"


@pytest.mark.parametrize("broken", [None, "{not json", json.dumps({"stable": "blue", "weight": 10})])
def test_restore_rewrites_an_absent_or_unusable_routing_key(door, broken):
    router, kvs = door["router"], door["router"].kvs
    etag = kvs.describe_key_value_store(KvsARN=ARN)["ETag"]
    if broken is None:
        kvs.delete_key(KvsARN=ARN, Key="routing", IfMatch=etag)
    else:
        kvs.put_key(KvsARN=ARN, Key="routing", Value=broken, IfMatch=etag)
    change = router.restore("blue")
    assert change.after == {"blue": 100, "green": 0} and change.before == {"blue": 0, "green": 0}
    assert change.epoch > 1_000_000_000  # seconds: no viewer's cookie holds it
    router.wait_applied(change, timeout=5)
    assert router.weights() == {"blue": 100, "green": 0} and live(door) == "blue"


def test_a_bad_routing_write_leaves_the_live_key_and_the_front_door_serves_it(door):
    router, kvs = door["router"], door["router"].kvs
    router.wait_applied(router.set_weights({"blue": 0, "green": 100}), timeout=5)
    etag = kvs.describe_key_value_store(KvsARN=ARN)["ETag"]
    kvs.put_key(KvsARN=ARN, Key="routing", Value='{"stable": "blue", "weight": "x"}', IfMatch=etag)
    assert router.probe() == {
        "stable": "green",
        "new": "blue",
        "weight": 0,
        "epoch": None,
        "fallback": "live-key",
    }
    with pytest.raises(TrafficRoutingError, match="not a blue/green split"):
        router.set_weights({"blue": 10, "green": 90})


def test_a_value_with_host_names_loses_them_on_the_next_write(door):
    router, kvs = door["router"], door["router"].kvs
    etag = kvs.describe_key_value_store(KvsARN=ARN)["ETag"]
    legacy = {"stable": "blue", "new": "green", "weight": 0, "epoch": 1, "origins": {"blue": "x.example.com"}}
    kvs.put_key(KvsARN=ARN, Key="routing", Value=json.dumps(legacy), IfMatch=etag)
    router.set_weights({"blue": 90, "green": 10})
    assert stored(door) == {"stable": "blue", "new": "green", "weight": 10, "epoch": 1}


def test_a_concurrent_write_is_refused_not_overwritten(door):
    router = door["router"]
    kvs = router.kvs
    _, etag = router.routing()
    kvs.put_key(KvsARN=ARN, Key="other", Value="x", IfMatch=etag)  # someone else wrote since
    with pytest.raises(kvs.exceptions.ConflictException):
        router._write(
            {"stable": "blue", "new": "green", "weight": 10, "epoch": 1}, etag, {"blue": 100, "green": 0}
        )
    assert stored(door)["weight"] == 0


def test_wait_applied_times_out_naming_what_the_front_door_serves(door):
    router = door["router"]
    change = RoutingChange(
        "keyvaluestore", "etag", {"blue": 100, "green": 0}, {"blue": 50, "green": 50}, epoch=1
    )
    with pytest.raises(TimeoutError, match="answers {'stable': 'blue'"):
        router.wait_applied(change, timeout=0.3)


def test_a_missing_key_is_named(door):
    kvs, router = door["router"].kvs, door["router"]
    _, etag = router.routing()
    kvs.delete_key(KvsARN=ARN, Key="routing", IfMatch=etag)
    with pytest.raises(TrafficRoutingError, match="no key 'routing'.*last live colour \\('blue'"):
        router.weights()


@pytest.mark.parametrize("bad", [{"blue": 100}, {"blue": 60, "green": 60}])
def test_weights_must_be_percentages_of_both_colours(door, bad):
    with pytest.raises(ValueError):
        door["router"].set_weights(bad)
