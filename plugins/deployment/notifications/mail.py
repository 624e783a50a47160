"""Email: an HTML message through the SMTP connection."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig
from deployment.notifications.base import NotificationError


# ---------------------------------------------------------------------- email
def send_email(cfg: DeploymentConfig, to: list[str], subject: str, html: str, run_id: str) -> dict[str, Any]:
    """Send an HTML email through the SMTP connection."""
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    try:
        with SmtpHook(smtp_conn_id=cfg.connections.smtp) as hook:
            hook.send_email_smtp(
                to=to,
                subject=subject,
                html_content=html,
                from_email=cfg.notifications.email_from,
                custom_headers={"X-Deployment-Run": run_id, "X-Deployment-Application": cfg.application},
            )
    except Exception as err:
        raise NotificationError(
            f"SMTP connection {cfg.connections.smtp!r} did not send {subject!r}: {err}"
        ) from err
    return {"to": list(to), "subject": subject}
