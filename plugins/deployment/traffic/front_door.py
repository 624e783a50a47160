"""The ``keyvaluestore`` traffic router: the split lives in a CloudFront KeyValueStore.

The front door (README "Traffic routing") is a CloudFront distribution whose
viewer-request function ``include/frontdoor/blue_green.js`` reads, from the
store, colours and numbers only, never host names:

- ``traffic.front_door.key`` (``routing``), the split, written on every change::

      {"stable": "blue", "new": "green", "weight": 10, "epoch": 7}

  ``weight`` is the new colour's percentage. Viewers keep their colour while the
  epoch holds; the epoch is bumped when the pair (stable, new) changes and by
  ``restore``, so that a rollback moves every viewer at once.
- ``live`` (:data:`LIVE_KEY`), the colour that last served every viewer.

The function maps a colour to the distribution's own origin of that id
(:func:`origins`; ``cf.selectRequestOriginById``), so whoever can write the store
can move viewers between the two declared origins and nowhere else.

Where the last live colour is kept, and why. A routing key that is absent or
unusable in any field is not half-applied: the function serves the last live
colour, looked up in this order:

1. the ``live`` key. It is a key of its own, so a bad write of ``routing`` (a
   hand edit, a truncated value, a deleted key) leaves it alone; and the pipeline
   writes it only for a colour proven good: by ``wait_applied`` once a change that
   puts every viewer on one colour serves at the edge (a completed release), and
   by ``restore`` together with the routing (the rollback's colour is the known-good
   one by definition). A release's 10 % and 50 % steps never touch it, so during a
   canary a broken key serves the stable colour, not the canary.
2. ``BUILT_IN_LIVE`` in the function's code, for a store that lost both keys or
   that the function cannot read: code, so no store write can change it.

Writes go through UpdateKeys with the store's ETag (If-Match), so a concurrent
writer is refused (ConflictException), never overwritten. ``wait_applied``
probes the front door's ``probe_path``, answered by the function itself from its
own copy of the store, until it reports the change.
"""

from __future__ import annotations

import json
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
    other,
)

if TYPE_CHECKING:
    from deployment.config import Colour, DeploymentConfig, FrontDoor

# The distribution's origin id of each colour: the template declares these ids and the function's
# ORIGIN_IDS holds the same table.
ORIGIN_IDS: dict[Colour, str] = {"blue": "blue", "green": "green"}
# The key naming the colour that last served every viewer (the function's LIVE_KEY).
LIVE_KEY = "live"
# The function's bound: an epoch is at most 15 digits in the viewer's cookie.
MAX_EPOCH = 10**15 - 1


def client(cfg: DeploymentConfig) -> Any:
    from deployment.hooks.aws import KeyValueStoreHook, hook_for

    return hook_for(cfg, KeyValueStoreHook).conn


def store_arn(cfg: DeploymentConfig) -> str:
    """The KeyValueStore's ARN: from config, or else from the application stack's output."""
    door = _door(cfg)
    if door.key_value_store_arn:
        return door.key_value_store_arn
    from deployment.aws.cloudformation import live_stack

    outputs = live_stack(cfg, template=False)["outputs"]
    if door.key_value_store_output not in outputs:
        raise TrafficRoutingError(
            f"stack {cfg.stack.name} has no output {door.key_value_store_output!r} with the front door's "
            "KeyValueStore ARN (README: what the application's stack must contain)"
        )
    return outputs[door.key_value_store_output]


def origins(cfg: DeploymentConfig) -> dict[Colour, str]:
    """Each colour's origin, by its id in the distribution: the same for every configuration (the
    template declares them so), which the sandbox's front door declares too."""
    return dict(ORIGIN_IDS)


def routing_value(stable: Colour, weight: int, epoch: int) -> str:
    """The routing key's value: ``weight`` % on the other colour, the rest on ``stable``."""
    return json.dumps({"stable": stable, "new": other(stable), "weight": weight, "epoch": epoch})


def first_routing(cfg: DeploymentConfig, colour: Colour) -> str:
    """The key's value for a store that has none yet: every viewer on ``colour``, epoch 1."""
    return routing_value(colour, 0, 1)


def parse_routing(value: str) -> dict[str, Any]:
    """The routing key's value, checked as the function checks it: anything it would not use raises."""
    try:
        routing = json.loads(value)
    except ValueError:
        raise TrafficRoutingError(f"the front door's routing is not JSON: {value!r}") from None
    if not isinstance(routing, dict):
        raise TrafficRoutingError(f"the front door's routing is not an object: {value!r}")
    stable, weight, epoch = routing.get("stable"), routing.get("weight"), routing.get("epoch")
    if (
        stable not in COLOURS
        or routing.get("new") != other(stable)
        or not _integer(weight, 0, 100)
        or not _integer(epoch, 0, MAX_EPOCH)
    ):
        raise TrafficRoutingError(f"the front door's routing is not a blue/green split: {value!r}")
    return {"stable": stable, "new": routing["new"], "weight": weight, "epoch": epoch}


def _integer(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


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

    def prepare(self) -> None:
        _ = self.kvs, self.arn  # the lazy client and the store's ARN, built now

    def routing(self) -> tuple[dict[str, Any], str]:
        """The stored routing and the store's ETag (read first, so a write after it is detected);
        TrafficRoutingError when the key is absent or the function would not use it."""
        etag = self.kvs.describe_key_value_store(KvsARN=self.arn)["ETag"]
        return self._stored_routing(), etag

    def _stored_routing(self) -> dict[str, Any]:
        value = self._get(self.door.key)
        if value is None:
            raise TrafficRoutingError(
                f"the KeyValueStore {self.arn} has no key {self.door.key!r}: the front door serves the "
                f"last live colour ({self.live()!r}, else its built-in one); restore a colour to write it"
            )
        return parse_routing(value)

    def live(self) -> Colour | None:
        """The ``live`` key's colour, None when it is absent or not a colour."""
        value = self._get(LIVE_KEY)
        return value if value in COLOURS else None

    def weights(self) -> dict[Colour, int]:
        # A read needs no ETag (only a write's IfMatch does): one GetKey, no DescribeKeyValueStore.
        return routing_weights(self._stored_routing())

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
                "stable": other(gaining),
                "new": gaining,
                "weight": wanted[gaining],
                "epoch": current["epoch"] + 1,
            }
        return self._write(routing, etag, before)

    def restore(self, colour: Colour) -> RoutingChange | None:
        """Every viewer on ``colour`` under a new epoch, and ``colour`` as the live key, in one write.

        Also over a routing key that is absent or unusable (the front door is serving the last live
        colour then): the new epoch is the time in seconds, which no viewer's cookie holds. When the
        split is already so, only a live key that names another colour is written (None returned).
        """
        etag = self.kvs.describe_key_value_store(KvsARN=self.arn)["ETag"]
        value = self._get(self.door.key)
        try:
            current = parse_routing(value) if value is not None else None
        except TrafficRoutingError:
            current = None
        before = routing_weights(current) if current else {c: 0 for c in COLOURS}
        if before == full(colour):
            if self.live() != colour:
                self._put({LIVE_KEY: colour}, etag)
            return None
        epoch = current["epoch"] + 1 if current else int(time.time())
        routing = {"stable": colour, "new": other(colour), "weight": 0, "epoch": epoch}
        return self._write(routing, etag, before, live=colour)

    def seed(self, colour: Colour) -> str:
        """Write a first routing (all on ``colour``, epoch 1) and ``colour`` as the live key into an
        empty store; returns the ETag."""
        etag = self.kvs.describe_key_value_store(KvsARN=self.arn)["ETag"]
        return self._put({self.door.key: first_routing(self.cfg, colour), LIVE_KEY: colour}, etag)

    def _get(self, key: str) -> str | None:
        try:
            return self.kvs.get_key(KvsARN=self.arn, Key=key)["Value"]
        except self.kvs.exceptions.ResourceNotFoundException:
            return None

    def _put(self, items: dict[str, str], etag: str) -> str:
        puts = [{"Key": key, "Value": value} for key, value in items.items()]
        return self.kvs.update_keys(KvsARN=self.arn, IfMatch=etag, Puts=puts)["ETag"]

    def _write(
        self, routing: dict[str, Any], etag: str, before: dict[Colour, int], *, live: Colour | None = None
    ) -> RoutingChange:
        value = routing_value(routing["stable"], routing["weight"], routing["epoch"])
        items = {self.door.key: value, **({LIVE_KEY: live} if live else {})}
        new_etag = self._put(items, etag)
        return RoutingChange(
            self.name, new_etag, dict(before), routing_weights(routing), epoch=routing["epoch"]
        )

    def _record_live(self, change: RoutingChange) -> None:
        """After ``change`` served at the edge: when it put every viewer on one colour and the routing
        is still the one it wrote, that colour becomes the live key."""
        colour = next((c for c in COLOURS if change.after == full(c)), None)
        if colour is None or self.live() == colour:
            return
        current, etag = self.routing()
        if routing_weights(current) == change.after and current["epoch"] == change.epoch:
            self._put({LIVE_KEY: colour}, etag)

    def probe(self) -> dict[str, Any]:
        """What the front door's function reads from its copy of the store right now."""
        import requests

        response = requests.get(front_door_url(self.cfg) + self.door.probe_path, timeout=5)
        response.raise_for_status()
        return response.json()

    def wait_applied(self, change: RoutingChange, *, timeout: float) -> None:
        """Return once the front door serves ``change`` (then, for a change that puts every viewer on
        one colour, record that colour as the live key); TimeoutError after ``timeout``."""
        deadline = time.monotonic() + timeout
        seen: Any = None
        while not self._serves(seen := self._probe_or_error(), change):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the front door at {front_door_url(self.cfg)} does not serve {change.after} "
                    f"(epoch {change.epoch}) after {timeout:.0f} s; it answers {seen}"
                )
            time.sleep(min(self.door.probe_interval_seconds, max(deadline - time.monotonic(), 0.05)))
        change.applied_at = now_iso()
        self._record_live(change)

    def _probe_or_error(self) -> Any:
        try:
            return self.probe()
        except (OSError, ValueError) as err:  # requests' errors are OSErrors; a bad body a ValueError
            return repr(err)

    @staticmethod
    def _serves(seen: Any, change: RoutingChange) -> bool:
        """Whether the probe's answer ``seen`` is ``change``'s split under its epoch (a front door
        serving its last live colour reports no epoch, so it never matches a written change)."""
        if not isinstance(seen, dict) or seen.get("stable") not in COLOURS:
            return False
        try:
            weight = int(seen.get("weight", -1))
        except (TypeError, ValueError):
            return False
        return {seen["stable"]: 100 - weight, seen.get("new"): weight} == change.after and (
            change.epoch is None or str(seen.get("epoch")) == str(change.epoch)
        )
