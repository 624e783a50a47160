"""Slack: a message to a channel's webhook, and the on-call mentions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig
from deployment.notifications.base import NotificationError

SLACK_SECTION_LIMIT = 3000


# ---------------------------------------------------------------------- Slack
def send_slack(conn_id: str, text: str) -> dict[str, Any]:
    """Post ``text`` (Slack mrkdwn) through the incoming webhook of connection ``conn_id``."""
    from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

    hook = SlackWebhookHook(slack_webhook_conn_id=conn_id)
    blocks = [
        {"type": "section", "text": {"type": "mrkdwn", "text": text[i : i + SLACK_SECTION_LIMIT]}}
        for i in range(0, len(text), SLACK_SECTION_LIMIT)
    ]
    try:
        hook.send(text=text, blocks=blocks)
    except Exception as err:
        raise NotificationError(f"Slack webhook {conn_id!r} refused the message: {err}") from err
    return {"connection": conn_id, "chars": len(text)}


def oncall_mentions(cfg: DeploymentConfig) -> str:
    return " ".join(f"<@{user}>" for user in cfg.notifications.oncall_users)
