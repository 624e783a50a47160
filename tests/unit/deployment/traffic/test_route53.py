"""The weighted records: read the live colour and weights, set both weights in one idempotent batch."""

from __future__ import annotations

import pytest

from deployment.traffic import route53
from tests.unit import _fixtures_phases58 as fx
from tests.unit._fixtures_phases58 import weighted

aws_server = fx.aws_server
moto_url = fx.moto_url


def test_weights_and_live_colour(aws_server):
    cfg = aws_server["cfg"]
    assert route53.weights(cfg) == {"blue": 100, "green": 0}
    assert route53.live_colour(cfg) == "blue"


def test_set_weights_changes_both_records_in_one_batch_and_keeps_targets(aws_server):
    cfg = aws_server["cfg"]
    change_id = route53.set_weights(cfg, {"blue": 90, "green": 10})
    assert change_id
    assert route53.weights(cfg) == {"blue": 90, "green": 10}
    records = route53.records(cfg)
    assert records["green"]["ResourceRecords"] == weighted(cfg, "green", 0)["ResourceRecords"]
    route53.wait_insync(cfg, change_id, timeout=5, interval=0.1)
    assert route53.live_colour(cfg) == "blue"  # while split: the larger share


def test_set_weights_is_idempotent(aws_server):
    cfg = aws_server["cfg"]
    assert route53.set_weights(cfg, {"blue": 100, "green": 0}) is None
    route53.set_weights(cfg, {"blue": 0, "green": 100})
    assert route53.set_weights(cfg, {"blue": 0, "green": 100}) is None
    assert route53.live_colour(cfg) == "green"


@pytest.mark.parametrize("bad", [{"blue": 100}, {"blue": -1, "green": 101}, {"blue": 256, "green": 0}])
def test_bad_weights_are_refused(aws_server, bad):
    with pytest.raises(ValueError):
        route53.set_weights(aws_server["cfg"], bad)


def test_missing_record_is_named(aws_server):
    cfg, client = aws_server["cfg"], aws_server["route53"]
    zone_id = route53.hosted_zone_id(cfg)
    client.change_resource_record_sets(
        HostedZoneId=zone_id,
        ChangeBatch={"Changes": [{"Action": "DELETE", "ResourceRecordSet": weighted(cfg, "green", 0)}]},
    )
    with pytest.raises(route53.TrafficRecordError, match=r"SetIdentifier\(s\) \['green'\]"):
        route53.weights(cfg)
