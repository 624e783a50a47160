"""The traffic simulator against moto's server: live Route 53 weights in, CloudWatch metrics out."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import boto3
import pytest
import requests
from moto.server import ThreadedMotoServer

from deployment.config import load_config
from sandbox.faults import Faults
from sandbox.traffic import TrafficSimulator, _split
from tests.sandbox._servers import free_port

CONFIG = load_config("sandbox")
VERSIONS = {"blue": "v1.0.0", "green": "v1.1.0"}
ALARM = f"{CONFIG.alarms.prefix}5xx-errors"


@pytest.fixture(scope="module")
def moto_url():
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def aws(moto_url: str):
    requests.post(f"{moto_url}/moto-api/reset", timeout=5).raise_for_status()
    session = boto3.session.Session(
        aws_access_key_id="sandbox", aws_secret_access_key="sandbox", region_name=CONFIG.region
    )
    route53 = session.client("route53", endpoint_url=moto_url)
    cloudwatch = session.client("cloudwatch", endpoint_url=moto_url)
    zone = route53.create_hosted_zone(Name=CONFIG.traffic.hosted_zone, CallerReference="test")["HostedZone"]
    cloudwatch.put_metric_alarm(
        AlarmName=ALARM,
        Namespace=CONFIG.metrics.namespace,
        MetricName=CONFIG.metrics.errors_metric,
        Dimensions=[{"Name": k, "Value": v} for k, v in CONFIG.metrics.dimensions.items()],
        Statistic="Sum",
        Period=10,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanThreshold",
    )

    def set_weights(blue: int, green: int) -> None:
        changes = [
            {
                "Action": "UPSERT",
                "ResourceRecordSet": {
                    "Name": CONFIG.traffic.record_name,
                    "Type": "CNAME",
                    "SetIdentifier": colour,
                    "Weight": weight,
                    "TTL": 60,
                    "ResourceRecords": [{"Value": f"{colour}.d2bayoncoagent.amplifyapp.com"}],
                },
            }
            for colour, weight in (("blue", blue), ("green", green))
        ]
        route53.change_resource_record_sets(HostedZoneId=zone["Id"], ChangeBatch={"Changes": changes})

    set_weights(100, 0)
    return {"url": moto_url, "cloudwatch": cloudwatch, "set_weights": set_weights}


def simulator(aws, faults: Faults | None = None, **kwargs) -> TrafficSimulator:
    return TrafficSimulator(
        CONFIG, endpoint_url=aws["url"], version_of=VERSIONS.get, faults=faults or Faults(), **kwargs
    )


def published(
    cloudwatch, metric: str, dimensions: dict[str, str], start: datetime, stat: str = "Sum"
) -> float:
    """``stat`` of the series with exactly ``dimensions`` (GetMetricData matches them exactly, as
    CloudWatch does; moto's GetMetricStatistics would also count the per-colour series)."""
    query = {
        "Id": "m",
        "MetricStat": {
            "Metric": {
                "Namespace": CONFIG.metrics.namespace,
                "MetricName": metric,
                "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
            },
            "Period": 3600,
            "Stat": stat,
        },
    }
    result = cloudwatch.get_metric_data(
        MetricDataQueries=[query], StartTime=start, EndTime=datetime.now(UTC) + timedelta(seconds=2)
    )["MetricDataResults"][0]
    return sum(result["Values"])


def published_sum(cloudwatch, metric: str, dimensions: dict[str, str], start: datetime) -> float:
    return published(cloudwatch, metric, dimensions, start)


def alarm_state(cloudwatch) -> str:
    return cloudwatch.describe_alarms(AlarmNames=[ALARM])["MetricAlarms"][0]["StateValue"]


def test_bad_green_at_ten_percent_raises_error_rate_by_a_tenth(aws) -> None:
    faults = Faults()
    faults.add("error_rate", colour="green", percent=50)
    aws["set_weights"](90, 10)
    start = datetime.now(UTC) - timedelta(seconds=1)
    sim = simulator(aws, faults, seed=11)
    ticks = [sim.tick() for _ in range(15)]
    assert all(t["weights"] == {"blue": 90, "green": 10} for t in ticks)
    requests_sum = published_sum(
        aws["cloudwatch"], CONFIG.metrics.requests_metric, CONFIG.metrics.dimensions, start
    )
    errors_sum = published_sum(
        aws["cloudwatch"], CONFIG.metrics.errors_metric, CONFIG.metrics.dimensions, start
    )
    assert requests_sum == sum(t["requests"] for t in ticks)
    assert 15 * 190 <= requests_sum <= 15 * 210
    assert errors_sum == sum(t["errors"] for t in ticks)
    assert 3.5 < 100 * errors_sum / requests_sum < 6.5
    assert alarm_state(aws["cloudwatch"]) == "ALARM"


def test_healthy_traffic_and_staging(aws) -> None:
    start = datetime.now(UTC) - timedelta(seconds=1)
    sim = simulator(aws, seed=5)
    ticks = [sim.tick() for _ in range(10)]
    assert all(t["weights"] == {"blue": 100, "green": 0} and t["alarm"] is None for t in ticks)
    cloudwatch = aws["cloudwatch"]
    requests_sum = published_sum(cloudwatch, CONFIG.metrics.requests_metric, CONFIG.metrics.dimensions, start)
    errors_sum = published_sum(cloudwatch, CONFIG.metrics.errors_metric, CONFIG.metrics.dimensions, start)
    assert errors_sum / requests_sum < 0.01
    latency_metric, dims = CONFIG.metrics.latency_metric, CONFIG.metrics.dimensions
    assert 110 < published(cloudwatch, latency_metric, dims, start, "Average") < 130
    assert published(cloudwatch, latency_metric, dims, start, "SampleCount") == requests_sum
    staging = published_sum(
        cloudwatch, CONFIG.metrics.requests_metric, CONFIG.metrics.staging_dimensions, start
    )
    assert staging == requests_sum
    assert alarm_state(cloudwatch) != "ALARM"


def test_alarm_fires_and_clears_at_the_edges(aws) -> None:
    faults = Faults()
    fault = faults.add("error_rate", version="v1.1.0", percent=40)
    aws["set_weights"](50, 50)
    sim = simulator(aws, faults, seed=3, alarm_ticks=2)
    assert sim.tick()["alarm"] == "ALARM"
    assert sim.tick()["alarm"] is None
    assert alarm_state(aws["cloudwatch"]) == "ALARM"
    faults.remove(fault)
    assert sim.tick()["alarm"] is None  # the window still holds the bad tick
    assert sim.tick()["alarm"] == "OK"
    assert alarm_state(aws["cloudwatch"]) == "OK"
    # a state set by someone else stands while the traffic stays healthy
    aws["cloudwatch"].set_alarm_state(AlarmName=ALARM, StateValue="ALARM", StateReason="injected")
    assert sim.tick()["alarm"] is None
    assert alarm_state(aws["cloudwatch"]) == "ALARM"


def test_undeployed_colour_answers_errors_and_missing_alarm_is_skipped(aws) -> None:
    aws["cloudwatch"].delete_alarms(AlarmNames=[ALARM])
    aws["set_weights"](0, 100)
    sim = TrafficSimulator(CONFIG, endpoint_url=aws["url"], version_of={"blue": "v1.0.0"}.get, seed=1)
    tick = sim.tick()
    assert tick["versions"]["green"] is None
    assert tick["errors"] == tick["requests"] > 0
    assert tick["alarm"] is None


def test_missing_records_publish_nothing(aws) -> None:
    config = CONFIG.model_copy(
        update={"traffic": CONFIG.traffic.model_copy(update={"record_name": "x.other."})}
    )
    sim = TrafficSimulator(config, endpoint_url=aws["url"], version_of=VERSIONS.get)
    assert "no weighted records" in sim.tick()["error"]
    assert sim.recorder.list()[0]["error"].startswith("no weighted records")


def test_same_seed_same_traffic(aws) -> None:
    aws["set_weights"](90, 10)
    first, second = (simulator(aws, seed=9, evaluate_alarms=False).tick() for _ in range(2))
    first.pop("received_at"), second.pop("received_at")
    assert first == second
    assert first["latency_ms"] != simulator(aws, seed=10, evaluate_alarms=False).tick()["latency_ms"]


def test_thread_ticks_until_stopped(aws) -> None:
    sim = simulator(aws, tick_seconds=0.05, requests_per_tick=20)
    sim.start()
    deadline = time.monotonic() + 5
    while len(sim.recorder) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    sim.stop()
    count = len(sim.recorder)
    assert count >= 3
    time.sleep(0.15)
    assert len(sim.recorder) == count
    assert all("requests" in t for t in sim.recorder.list())


def test_split_follows_weights() -> None:
    assert _split(200, {"blue": 90, "green": 10}) == {"blue": 180, "green": 20}
    assert _split(201, {"blue": 50, "green": 50}) in (
        {"blue": 101, "green": 100},
        {"blue": 100, "green": 101},
    )
    assert _split(10, {"blue": 0, "green": 0}) == {"blue": 5, "green": 5}
    assert _split(7, {"blue": 100}) == {"blue": 7}


def test_rejects_bad_settings(aws) -> None:
    with pytest.raises(ValueError):
        simulator(aws, tick_seconds=0)


# ------------------------------------------------------------------ through the front door
def _app(colour: str):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/json")])
        return [f'{{"colour": "{colour}"}}'.encode()]

    return app


@pytest.fixture
def door(aws):
    import json

    from deployment.traffic.front_door import first_routing, origins
    from sandbox.frontdoor import FrontDoor, FunctionRunner
    from sandbox.kvs import KeyValueStoreEmulator
    from tests.sandbox._servers import serving

    arn = "arn:aws:cloudfront::123456789012:key-value-store/traffic-test"
    kvs = KeyValueStoreEmulator()
    kvs.create(arn)
    kvs.put(arn, "routing", first_routing(CONFIG, "blue"))

    def route(**fields):
        kvs.put(arn, "routing", json.dumps(json.loads(kvs.snapshot(arn)["routing"]) | fields))

    with FunctionRunner() as runner, serving(_app("blue")) as blue, serving(_app("green")) as green:
        apps = {origins(CONFIG)["blue"]: blue, origins(CONFIG)["green"]: green}
        with serving(FrontDoor(runner, lambda: kvs.snapshot(arn), apps, blue)) as url:
            yield {"url": url, "route": route}


def test_viewers_through_the_front_door_split_stick_and_are_published_per_colour(aws, door) -> None:
    faults = Faults()
    faults.add("error_rate", colour="green", percent=50)
    door["route"](weight=10, epoch=2)
    start = datetime.now(UTC) - timedelta(seconds=1)
    sim = simulator(aws, faults, seed=3, front_door_url=door["url"], viewers=200)
    ticks = [sim.tick() for _ in range(4)]
    assert all(t["weights"] == {"blue": 90, "green": 10} for t in ticks)
    greens = ticks[0]["viewers"]["green"]
    assert 6 <= greens <= 36  # 10 % of 200 viewers is 20, ±3.4 standard deviations
    assert len({t["assignments"] for t in ticks}) == 1  # every viewer kept its colour

    cloudwatch, m = aws["cloudwatch"], CONFIG.metrics
    per_colour = {
        colour: published_sum(
            cloudwatch, m.requests_metric, {**m.dimensions, m.colour_dimension: colour}, start
        )
        for colour in ("blue", "green")
    }
    total = published_sum(cloudwatch, m.requests_metric, m.dimensions, start)
    assert total == sum(t["requests"] for t in ticks) == per_colour["blue"] + per_colour["green"]
    assert 0.5 * greens / 200 < per_colour["green"] / total < 1.5 * greens / 200
    green_errors = published_sum(
        cloudwatch, m.errors_metric, {**m.dimensions, m.colour_dimension: "green"}, start
    )
    assert 30 < 100 * green_errors / per_colour["green"] < 70

    door["route"](weight=0, epoch=3)  # a rollback
    after = sim.tick()
    assert after["viewers"] == {"blue": 200, "green": 0} and set(after["assignments"]) == {"b"}


def test_viewers_make_real_requests_when_the_routing_changes_and_a_tenth_in_turn(aws, door) -> None:
    """Under the same routing a viewer with its cookie keeps its colour (one bucket per epoch), so
    only a tenth of the viewers ask the front door each tick; a new weight re-routes every viewer."""
    sim = simulator(aws, Faults(), seed=5, front_door_url=door["url"], viewers=100)
    visits: list[int] = []
    real_visit = sim._visit
    sim._visit = lambda jar: visits.append(1) or real_visit(jar)

    door["route"](weight=10, epoch=2)
    first = sim.tick()
    assert len(visits) == 100  # a new routing: everyone
    visits.clear()
    same = [sim.tick() for _ in range(3)]
    assert len(visits) == 30  # ten per tick, in turn
    assert {t["assignments"] for t in same} == {first["assignments"]}

    visits.clear()
    door["route"](weight=50)  # the same epoch: viewers below the new weight move to green
    moved = sim.tick()
    assert len(visits) == 100
    assert moved["viewers"]["green"] > first["viewers"]["green"]
    assert all(b == "g" for a, b in zip(first["assignments"], moved["assignments"], strict=True) if a == "g")
