"""What every notice shares: Markdown and Slack escaping, the message templates, the run's links,
and send-once (the one send path: what was sent is kept in the deployment record, so a retried or
cleared task never sends twice)."""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from deployment.config import PROJECT_ROOT

if TYPE_CHECKING:
    import jinja2

    from deployment.config import DeploymentConfig
    from deployment.ledger import Ledger


log = logging.getLogger(__name__)

TEMPLATES_DIR = PROJECT_ROOT / "include" / "templates" / "messages"


class NotificationError(RuntimeError):
    """A channel refused or failed a message; the message names the channel."""


# ------------------------------------------------------------------ rendering
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~])")


def slack_escape(text: Any) -> str:
    """Slack mrkdwn: ``&``, ``<``, ``>`` as entities, so ``<!channel>`` or ``<url|x>`` stay literal text."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def md_escape(text: Any) -> str:
    """Markdown (GitHub, Airflow's Required Actions): HTML as entities, punctuation backslash-escaped."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", slack_escape(text))


@functools.cache
def _environment() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        undefined=jinja2.StrictUndefined,
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["slack"] = slack_escape
    env.filters["md"] = md_escape
    return env


def render(template: str, **values: Any) -> str:
    """Render ``include/templates/messages/<template>`` with ``values``."""
    return _environment().get_template(template).render(**values).strip() + "\n"


def run_url(cfg: DeploymentConfig, dag_id: str, run_id: str) -> str:
    from urllib.parse import quote

    return f"{cfg.notifications.ui_base_url.rstrip('/')}/dags/{dag_id}/runs/{quote(run_id, safe='')}"


# ---------------------------------------------------------------- idempotence
def send_once(ledger: Ledger, section: str, send: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Call ``send`` unless the record shows this message as sent; record what it returns."""
    from deployment.ledger import now_iso

    previous = ledger.read(section)
    if previous and previous.get("status") == "sent":
        log.info("%s was already sent at %s; not sending it again", section, previous.get("sent_at"))
        return {**previous, "skipped": True}
    try:
        detail = send()
    except Exception as err:
        ledger.write(section, {"status": "failed", "failed_at": now_iso(), "error": str(err)[:500]})
        raise
    entry = {"status": "sent", "sent_at": now_iso(), **detail}
    ledger.write(section, entry)
    return entry
