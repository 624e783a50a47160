"""Blue/green traffic on Route 53 weighted records (the ``route53`` router of deployment.traffic.router).

One record per colour (``SetIdentifier`` ``blue``/``green``) under
``traffic.record_name`` in ``traffic.hosted_zone``. The live colour is the one
with weight > 0, the larger one while traffic is split.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from deployment.traffic.router import (
    COLOURS,
    RoutingChange,
    TrafficRoutingError,
    check_weights,
    full,
    live_of,
    now_iso,
)

if TYPE_CHECKING:
    from deployment.config import Colour, DeploymentConfig


class TrafficRecordError(TrafficRoutingError):
    """The weighted records are missing or not as the blue/green setup needs them."""


def _fqdn(name: str) -> str:
    return name if name.endswith(".") else f"{name}."


def client(cfg: DeploymentConfig) -> Any:
    from deployment.hooks.aws import Route53Hook, hook_for

    return hook_for(cfg, Route53Hook).conn


def hosted_zone_id(cfg: DeploymentConfig, route53: Any = None) -> str:
    route53 = route53 or client(cfg)
    zone = _fqdn(cfg.traffic.hosted_zone)
    for candidate in route53.list_hosted_zones_by_name(DNSName=zone).get("HostedZones", []):
        if candidate["Name"] == zone:
            return candidate["Id"].rsplit("/", 1)[-1]
    raise TrafficRecordError(f"no Route 53 hosted zone {zone!r}")


def records(cfg: DeploymentConfig, route53: Any = None) -> dict[Colour, dict[str, Any]]:
    """Each colour's weighted record set, as ``list_resource_record_sets`` returns it."""
    route53 = route53 or client(cfg)
    zone_id = hosted_zone_id(cfg, route53)
    name, kind = _fqdn(cfg.traffic.record_name), cfg.traffic.record_type
    found = route53.list_resource_record_sets(
        HostedZoneId=zone_id, StartRecordName=name, StartRecordType=kind, MaxItems="10"
    )["ResourceRecordSets"]
    by_colour = {
        r["SetIdentifier"]: r
        for r in found
        if r["Name"] == name and r["Type"] == kind and r.get("SetIdentifier") in COLOURS and "Weight" in r
    }
    missing = [colour for colour in COLOURS if colour not in by_colour]
    if missing:
        raise TrafficRecordError(
            f"the weighted {kind} records {name} in {cfg.traffic.hosted_zone} lack SetIdentifier(s) {missing}"
        )
    return by_colour


def weights(cfg: DeploymentConfig, route53: Any = None) -> dict[Colour, int]:
    """The weight of each colour's record, e.g. ``{"blue": 100, "green": 0}``."""
    return {colour: int(record["Weight"]) for colour, record in records(cfg, route53).items()}


def live_colour(cfg: DeploymentConfig, route53: Any = None) -> Colour:
    """The colour serving traffic: weight > 0; the larger one while traffic is split."""
    current = weights(cfg, route53)
    if not any(current.values()):
        raise TrafficRecordError(f"both colours of {cfg.traffic.record_name} have weight 0: nothing is live")
    return "blue" if current["blue"] >= current["green"] else "green"


def set_weights(cfg: DeploymentConfig, wanted: dict[Colour, int]) -> str | None:
    """Set both weights in one change batch; None (no change) when they already are ``wanted``."""
    if set(wanted) != set(COLOURS) or any(not 0 <= w <= 255 for w in wanted.values()):
        raise ValueError(f"weights must give blue and green each 0..255, got {wanted}")
    route53 = client(cfg)
    current = records(cfg, route53)
    if all(int(current[c]["Weight"]) == wanted[c] for c in COLOURS):
        return None
    changes = []
    for colour in COLOURS:
        record = {k: v for k, v in current[colour].items() if k != "ResponseMetadata"}
        record["Weight"] = wanted[colour]
        changes.append({"Action": "UPSERT", "ResourceRecordSet": record})
    response = route53.change_resource_record_sets(
        HostedZoneId=hosted_zone_id(cfg, route53),
        ChangeBatch={"Comment": f"weights {wanted}", "Changes": changes},
    )
    return response["ChangeInfo"]["Id"]


def wait_insync(cfg: DeploymentConfig, change_id: str, *, timeout: float = 60, interval: float = 5) -> None:
    """Wait until Route 53 reports the change INSYNC; raises TimeoutError after ``timeout`` seconds."""
    route53 = client(cfg)
    deadline = time.monotonic() + timeout
    while route53.get_change(Id=change_id)["ChangeInfo"]["Status"] != "INSYNC":
        if time.monotonic() > deadline:
            raise TimeoutError(f"Route 53 change {change_id} not INSYNC after {timeout:.0f} s")
        time.sleep(interval)


class Route53Router:
    """Weighted records ``blue``/``green`` under ``traffic.record_name``; weights are percentages."""

    name = "route53"

    def __init__(self, cfg: DeploymentConfig) -> None:
        self.cfg = cfg

    def weights(self) -> dict[Colour, int]:
        return weights(self.cfg)

    def live_colour(self) -> Colour:
        return live_of(self.weights())

    def set_weights(self, wanted: dict[Colour, int]) -> RoutingChange | None:
        check_weights(wanted)
        before = self.weights()
        change_id = set_weights(self.cfg, wanted)
        if change_id is None:
            return None
        return RoutingChange(self.name, change_id, dict(before), dict(wanted))

    def wait_applied(self, change: RoutingChange, *, timeout: float) -> None:
        """Route 53 INSYNC: every authoritative server answers with the change (resolvers' caches still
        hold the old answer for up to the record's TTL)."""
        interval = min(5.0, max(timeout / 20, 0.2))
        wait_insync(self.cfg, change.change_id, timeout=timeout, interval=interval)
        change.applied_at = now_iso()

    def restore(self, colour: Colour) -> RoutingChange | None:
        return self.set_weights(full(colour))

    def prepare(self) -> None:
        client(self.cfg)  # this process's hook, kept for the calls to come
