"""The traffic router seam: chosen by config; the Route 53 router behind the same interface."""

from __future__ import annotations

import pytest

from deployment.traffic import router_for
from deployment.traffic.route53 import Route53Router
from deployment.traffic.router import RoutingChange, full, other
from tests.unit import _fixtures_phases58 as fx

aws_server = fx.aws_server
moto_url = fx.moto_url


def _route53(cfg):
    return cfg.model_copy(update={"traffic": cfg.traffic.model_copy(update={"router": "route53"})})


def test_other_and_full():
    assert other("blue") == "green" and other("green") == "blue"
    assert full("green") == {"green": 100, "blue": 0}


def test_router_is_chosen_by_config(aws_server):
    assert isinstance(router_for(_route53(aws_server["cfg"])), Route53Router)


def test_route53_router_sets_waits_and_restores(aws_server):
    router = router_for(_route53(aws_server["cfg"]))
    assert router.weights() == {"blue": 100, "green": 0} and router.live_colour() == "blue"
    assert router.set_weights({"blue": 100, "green": 0}) is None

    change = router.set_weights({"blue": 90, "green": 10})
    assert change.before == {"blue": 100, "green": 0} and change.after == {"blue": 90, "green": 10}
    router.wait_applied(change, timeout=5)
    assert change.applied_at and RoutingChange.from_dict(change.to_dict()) == change
    assert router.live_colour() == "blue"

    restored = router.restore("blue")
    assert restored.after == {"blue": 100, "green": 0}
    assert router.restore("blue") is None
    assert router.weights() == {"blue": 100, "green": 0}


@pytest.mark.parametrize("bad", [{"blue": 100}, {"blue": 60, "green": 60}, {"blue": -10, "green": 110}])
def test_weights_must_be_percentages_of_both_colours(aws_server, bad):
    with pytest.raises(ValueError):
        router_for(_route53(aws_server["cfg"])).set_weights(bad)
