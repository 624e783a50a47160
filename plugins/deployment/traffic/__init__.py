"""The traffic router seam and its two routers: the front door's KeyValueStore, weighted Route 53.

``router_for(cfg)`` is the one way in: the router ``traffic.router`` names, behind the
``TrafficRouter`` protocol of ``deployment.traffic.router``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig
    from deployment.traffic.router import TrafficRouter


def router_for(cfg: DeploymentConfig) -> TrafficRouter:
    """The router ``traffic.router`` names."""
    if cfg.traffic.router == "route53":
        from deployment.traffic.route53 import Route53Router

        return Route53Router(cfg)
    from deployment.traffic.front_door import KeyValueStoreRouter

    return KeyValueStoreRouter(cfg)
