"""The traffic router seam: read, set, wait for and restore the blue/green split.

Every phase that moves or reads production traffic (shifts, rollback, guards,
the manual rollback, the benchmark) goes through ``deployment.traffic.router_for(cfg)``,
a router that follows this module's ``TrafficRouter``; which one is chosen by
``traffic.router``:

- ``keyvaluestore`` (default): a CloudFront distribution in front of both
  Amplify branches, whose viewer-request function reads the split from a
  CloudFront KeyValueStore (``deployment.traffic.front_door``).
- ``route53``: weighted DNS records (``deployment.traffic.route53``). Sound only where
  both origins answer for the same host name (e.g. load balancers); it cannot
  split an Amplify custom domain (see the README).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from deployment.config import Colour

COLOURS: tuple[Colour, Colour] = ("blue", "green")


def other(colour: Colour) -> Colour:
    return "green" if colour == "blue" else "blue"


def full(colour: Colour) -> dict[Colour, int]:
    """All traffic on ``colour``: ``{colour: 100, other: 0}``."""
    return {colour: 100, other(colour): 0}


def check_weights(wanted: dict[Colour, int]) -> None:
    if set(wanted) != set(COLOURS) or sum(wanted.values()) != 100 or min(wanted.values()) < 0:
        raise ValueError(f"weights must give blue and green percentages adding up to 100, got {wanted}")


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class RoutingChange:
    """One accepted change of the split, JSON-safe (``to_dict``) for the deployment record."""

    router: str
    change_id: str
    before: dict[str, int]
    after: dict[str, int]
    requested_at: str = field(default_factory=now_iso)
    epoch: int | None = None
    applied_at: str | None = None
    # The API alias's change made with it (``traffic.api_alias``): {"before", "after", "at"}.
    api: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RoutingChange:
        return cls(**data)


class TrafficRouter(Protocol):
    def weights(self) -> dict[Colour, int]:
        """Percent per colour, e.g. ``{"blue": 90, "green": 10}``."""

    def live_colour(self) -> Colour:
        """The colour with weight > 0; the larger one while traffic is split."""

    def set_weights(self, wanted: dict[Colour, int]) -> RoutingChange | None:
        """Apply ``wanted``; None when the split already is so."""

    def wait_applied(self, change: RoutingChange, *, timeout: float) -> None:
        """Return once ``change`` serves viewers (sets ``applied_at``); TimeoutError after ``timeout``."""

    def restore(self, colour: Colour) -> RoutingChange | None:
        """100 % to ``colour`` for every viewer at once; None when already so."""

    def prepare(self) -> None:
        """Build what a write needs (clients, resolved names) ahead of it, so that a restore at a
        breach pays only for its own calls."""


class TrafficRoutingError(RuntimeError):
    """The routing state is missing or not as the blue/green setup needs it."""


def live_of(weights: dict[Colour, int]) -> Colour:
    if not any(weights.values()):
        raise TrafficRoutingError(f"both colours have weight 0: nothing is live ({weights})")
    return "blue" if weights["blue"] >= weights["green"] else "green"
