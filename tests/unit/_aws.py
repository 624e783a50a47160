"""The AWS side of the unit tests: the connection the hooks read, and the weighted records."""

from __future__ import annotations

import json
from typing import Any


def aws_connection(cfg, monkeypatch, **extra: Any) -> None:
    """Point the config's AWS connection (and boto3's environment) at test credentials; ``extra``
    goes into the connection's extra (``endpoint_url`` for a moto server, ``service_config``)."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", cfg.region)
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{cfg.connections.aws.upper()}",
        json.dumps(
            {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                "extra": {"region_name": cfg.region, **extra},
            }
        ),
    )


def weighted(cfg, colour: str, weight: int) -> dict[str, Any]:
    """The Route 53 weighted record of ``colour``, as the seeded production has it."""
    return {
        "Name": cfg.traffic.record_name,
        "Type": cfg.traffic.record_type,
        "SetIdentifier": colour,
        "Weight": weight,
        "TTL": cfg.traffic.ttl,
        "ResourceRecords": [{"Value": f"{cfg.amplify.branches[colour]}.{cfg.amplify.app_id}.amplifyapp.com"}],
    }
