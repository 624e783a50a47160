"""The ``keyvaluestore`` traffic router: the split lives in a CloudFront KeyValueStore.

The front door (README "Traffic routing") is a CloudFront distribution whose
viewer-request function ``include/frontdoor/blue_green.js`` reads one key,
``traffic.front_door.key`` (``routing``), holding JSON::

    {"stable": "blue", "new": "green", "weight": 10, "epoch": 7,
     "origins": {"blue": "main-blue.<app>.amplifyapp.com", "green": "main-green.<app>.amplifyapp.com"}}

``weight`` is the new colour's percentage. Viewers keep their colour while the
epoch holds; the epoch is bumped when the pair (stable, new) changes and by
``restore``, so that a rollback moves every viewer at once. Writes go through
UpdateKeys with the store's ETag (If-Match), so a concurrent writer is refused
(ConflictException), never overwritten. ``wait_applied`` probes the front door's
``probe_path``, answered by the function itself from its own copy of the store,
until it reports the change.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from deployment.router import (
    COLOURS,
    RoutingChange,
    TrafficRoutingError,
    check_weights,
    full,
    live_of,
    now_iso,
    other,
)

if TYPE_CHECKING:
    from deployment.config import Colour, DeploymentConfig, FrontDoor


def client(cfg: DeploymentConfig) -> Any:
    from deployment.hooks.aws import KeyValueStoreHook, hook_for

    return hook_for(cfg, KeyValueStoreHook).conn


def store_arn(cfg: DeploymentConfig) -> str:
    """The KeyValueStore's ARN: from config, or else from the application stack's output."""
    door = _door(cfg)
    if door.key_value_store_arn:
        return door.key_value_store_arn
    from deployment.cloudformation import live_stack

    outputs = live_stack(cfg)["outputs"]
    if door.key_value_store_output not in outputs:
        raise TrafficRoutingError(
            f"stack {cfg.stack.name} has no output {door.key_value_store_output!r} with the front door's "
            "KeyValueStore ARN (README: what the application's stack must contain)"
        )
    return outputs[door.key_value_store_output]


def origins(cfg: DeploymentConfig) -> dict[Colour, str]:
    """Each colour's Amplify branch domain, ``<branch>.<app id>.amplifyapp.com``."""
    return {c: f"{cfg.amplify.branches[c]}.{cfg.amplify.app_id}.amplifyapp.com" for c in COLOURS}


def first_routing(cfg: DeploymentConfig, colour: Colour) -> str:
    """The key's value for a store that has none yet: every viewer on ``colour``, epoch 1."""
    value = {"stable": colour, "new": other(colour), "weight": 0, "epoch": 1, "origins": origins(cfg)}
    return json.dumps(value)


def front_door_url(cfg: DeploymentConfig) -> str:
    """The front door's base URL: the ``connections.front_door`` connection's host when configured
    (the sandbox's port is only known when it runs), else ``traffic.front_door.url``."""
    if cfg.connections.front_door:
        from airflow.sdk import BaseHook

        return BaseHook.get_connection(cfg.connections.front_door).host.rstrip("/")
    url = _door(cfg).url
    if not url:
        raise TrafficRoutingError("neither connections.front_door nor traffic.front_door.url is configured")
    return url.rstrip("/")


def routing_weights(routing: dict[str, Any]) -> dict[Colour, int]:
    stable, new, weight = routing["stable"], routing["new"], int(routing["weight"])
    if stable not in COLOURS or new != other(stable) or not 0 <= weight <= 100:
        raise TrafficRoutingError(f"the front door's routing is not a blue/green split: {routing}")
    return {stable: 100 - weight, new: weight}


def _door(cfg: DeploymentConfig) -> FrontDoor:
    if cfg.traffic.front_door is None:
        raise TrafficRoutingError("traffic.front_door is not configured")
    return cfg.traffic.front_door


class KeyValueStoreRouter:
    name = "keyvaluestore"

    def __init__(self, cfg: DeploymentConfig, kvs: Any = None) -> None:
        self.cfg = cfg
        self.door = _door(cfg)
        self._kvs = kvs
        self._arn: str | None = None

    @property
    def kvs(self) -> Any:
        if self._kvs is None:
            self._kvs = client(self.cfg)
        return self._kvs

    @property
    def arn(self) -> str:
        if self._arn is None:
            self._arn = store_arn(self.cfg)
        return self._arn

    def routing(self) -> tuple[dict[str, Any], str]:
        """The stored routing and the store's ETag (read first, so a write after it is detected)."""
        etag = self.kvs.describe_key_value_store(KvsARN=self.arn)["ETag"]
        try:
            value = self.kvs.get_key(KvsARN=self.arn, Key=self.door.key)["Value"]
        except self.kvs.exceptions.ResourceNotFoundException:
            raise TrafficRoutingError(
                f"the KeyValueStore {self.arn} has no key {self.door.key!r}: the front door sends every "
                "viewer to its default origin; restore a colour to write it"
            ) from None
        return json.loads(value), etag

    def weights(self) -> dict[Colour, int]:
        return routing_weights(self.routing()[0])

    def live_colour(self) -> Colour:
        return live_of(self.weights())

    def set_weights(self, wanted: dict[Colour, int]) -> RoutingChange | None:
        check_weights(wanted)
        current, etag = self.routing()
        before = routing_weights(current)
        if before == wanted:
            return None
        gaining = next((c for c in COLOURS if wanted[c] > before[c]), None)
        if gaining == current["new"] or wanted[current["stable"]] == 100:
            routing = {**current, "weight": wanted[current["new"]]}
        else:  # the other colour is becoming the new one: a new pair, a new epoch
            routing = {
                **current,
                "stable": other(gaining),
                "new": gaining,
                "weight": wanted[gaining],
                "epoch": int(current.get("epoch", 0)) + 1,
            }
        return self._write(routing, etag, before)

    def restore(self, colour: Colour) -> RoutingChange | None:
        current, etag = self.routing()
        before = routing_weights(current)
        if before == full(colour):
            return None
        routing = {
            **current,
            "stable": colour,
            "new": other(colour),
            "weight": 0,
            "epoch": int(current.get("epoch", 0)) + 1,
        }
        return self._write(routing, etag, before)

    def seed(self, colour: Colour) -> str:
        """Write a first routing (all on ``colour``, epoch 1) into an empty store; returns the ETag."""
        etag = self.kvs.describe_key_value_store(KvsARN=self.arn)["ETag"]
        value = first_routing(self.cfg, colour)
        return self.kvs.put_key(KvsARN=self.arn, Key=self.door.key, Value=value, IfMatch=etag)["ETag"]

    def _write(self, routing: dict[str, Any], etag: str, before: dict[Colour, int]) -> RoutingChange:
        routing["origins"] = origins(self.cfg)
        response = self.kvs.update_keys(
            KvsARN=self.arn, IfMatch=etag, Puts=[{"Key": self.door.key, "Value": json.dumps(routing)}]
        )
        return RoutingChange(
            self.name, response["ETag"], dict(before), routing_weights(routing), epoch=int(routing["epoch"])
        )

    def probe(self) -> dict[str, Any]:
        """What the front door's function reads from its copy of the store right now."""
        import requests

        response = requests.get(front_door_url(self.cfg) + self.door.probe_path, timeout=5)
        response.raise_for_status()
        return response.json()

    def wait_applied(self, change: RoutingChange, *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        seen: Any = None
        while True:
            try:
                seen = self.probe()
                stable, new, weight = seen.get("stable"), seen.get("new"), int(seen.get("weight", -1))
                if (
                    stable in COLOURS
                    and {stable: 100 - weight, new: weight} == change.after
                    and (change.epoch is None or str(seen.get("epoch")) == str(change.epoch))
                ):
                    change.applied_at = now_iso()
                    return
            except (OSError, ValueError) as err:  # requests' errors are OSErrors; a bad body a ValueError
                seen = repr(err)
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the front door at {front_door_url(self.cfg)} does not serve {change.after} "
                    f"(epoch {change.epoch}) after {timeout:.0f} s; it answers {seen}"
                )
            time.sleep(min(self.door.probe_interval_seconds, max(deadline - time.monotonic(), 0.05)))
