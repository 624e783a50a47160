"""Messages to the team's Slack channel (through its incoming-webhook connection)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig


def announce_team(cfg: DeploymentConfig, text: str) -> None:
    """Post ``text`` to the team channel; raises if Slack does not accept it."""
    from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

    SlackWebhookHook(slack_webhook_conn_id=cfg.connections.slack_team).send_text(text)
