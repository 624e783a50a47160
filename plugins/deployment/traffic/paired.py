"""The colours' router and the API's alias as one router: a step moves both, one change records both.

The alias is written first, then the colours: its write is one call that takes effect at once,
while the colours' may wait for the edge. A restore writes the colours even when the alias's
write failed, then raises that failure, so viewers are never left on the new colour because the
API could not be moved.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from deployment.traffic.router import RoutingChange, full, now_iso

if TYPE_CHECKING:
    from deployment.config import Colour
    from deployment.traffic.api_alias import ApiAlias
    from deployment.traffic.router import TrafficRouter

# The router named by a change that moved the alias alone (the colours were already so).
ALIAS_ONLY = "api-alias"


class PairedRouter:
    def __init__(self, colours: TrafficRouter, api: ApiAlias) -> None:
        self.colours = colours
        self.api = api

    def weights(self) -> dict[Colour, int]:
        return self.colours.weights()

    def live_colour(self) -> Colour:
        return self.colours.live_colour()

    def set_weights(self, wanted: dict[Colour, int]) -> RoutingChange | None:
        api = self.api.set_weights(wanted)
        return _with_api(self.colours.set_weights(wanted), api, wanted)

    def wait_applied(self, change: RoutingChange, *, timeout: float) -> None:
        if change.router == ALIAS_ONLY:  # an alias serves its new routing from the call on
            change.applied_at = change.applied_at or now_iso()
            return
        self.colours.wait_applied(change, timeout=timeout)

    def prepare(self) -> None:
        self.colours.prepare()  # the alias's client is built with it

    def restore(self, colour: Colour) -> RoutingChange | None:
        failed: Exception | None = None
        try:
            api = self.api.restore(colour)
        except Exception as err:  # the colours go back whatever the alias did
            api, failed = None, err
        change = _with_api(self.colours.restore(colour), api, full(colour))
        if failed is not None:
            raise failed
        return change


def _with_api(change: RoutingChange | None, api: dict[str, Any] | None, wanted: dict) -> RoutingChange | None:
    if api is None:
        return change
    if change is None:
        return RoutingChange(
            router=ALIAS_ONLY,
            change_id=f"alias-{uuid.uuid4().hex[:12]}",
            before=dict(wanted),
            after=dict(wanted),
            applied_at=api["at"],
            api=api,
        )
    change.api = api
    return change
