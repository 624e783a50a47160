"""The traffic router seam and its two routers: the front door's KeyValueStore, weighted Route 53.

``router_for(cfg)`` is the one way in: the router ``traffic.router`` names, behind the
``TrafficRouter`` protocol of ``deployment.traffic.router``. Given a release's API versions, it
moves the API function's alias with the colours (``deployment.traffic.paired``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig
    from deployment.traffic.api_alias import ApiVersions
    from deployment.traffic.router import TrafficRouter


def router_for(cfg: DeploymentConfig, api: ApiVersions | None = None) -> TrafficRouter:
    """The router ``traffic.router`` names; with ``api``, paired with the API function's alias."""
    colours: TrafficRouter
    if cfg.traffic.router == "route53":
        from deployment.traffic.route53 import Route53Router

        colours = Route53Router(cfg)
    else:
        from deployment.traffic.front_door import KeyValueStoreRouter

        colours = KeyValueStoreRouter(cfg)
    if api is None:
        return colours
    from deployment.traffic.api_alias import ApiAlias
    from deployment.traffic.paired import PairedRouter

    return PairedRouter(colours, ApiAlias(cfg, api))
