"""A real SMTP server (aiosmtpd) that records every message it accepts.

Entry point::

    SmtpSink(port: int, host: str = "127.0.0.1",
             *, faults: Faults | None = None, recorder: Recorder | None = None)

``start()`` serves in aiosmtpd's own thread (returns once it accepts
connections), ``stop()`` ends it; the object is also a context manager. The
``smtp`` connection is host/port of the sink with extras ``{"disable_ssl": true,
"disable_tls": true}`` and no login (the sink offers no AUTH).

Each accepted message is recorded as ``{mail_from, rcpt_tos, from, to, cc,
subject, body, content_type}``; ``body`` is the text/plain part, or the
text/html part when there is no plain one. An ``outage`` fault with
``service="smtp"`` refuses ``MAIL FROM`` and ``DATA`` with
``421 4.3.2 Service not available`` (smtplib then raises ``SMTPSenderRefused``
or ``SMTPDataError`` and closes the connection).
"""

from __future__ import annotations

from email import message_from_bytes, policy
from typing import Any

from aiosmtpd.controller import Controller

from sandbox.faults import Faults
from sandbox.recorder import Recorder

UNAVAILABLE = "421 4.3.2 Service not available (sandbox outage)"


class _Handler:
    def __init__(self, faults: Faults, recorder: Recorder) -> None:
        self.faults = faults
        self.recorder = recorder

    def _down(self) -> bool:
        return self.faults.find("outage", service="smtp") is not None

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options: list) -> str:
        if self._down():
            return UNAVAILABLE
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self._down():
            return UNAVAILABLE
        content = envelope.original_content or envelope.content
        message = message_from_bytes(
            content if isinstance(content, bytes) else content.encode(), policy=policy.default
        )
        part = message.get_body(preferencelist=("plain", "html"))
        self.recorder.record(
            mail_from=envelope.mail_from,
            rcpt_tos=list(envelope.rcpt_tos),
            **{"from": message.get("From"), "to": message.get("To"), "cc": message.get("Cc")},
            subject=message.get("Subject"),
            body=part.get_content() if part is not None else "",
            content_type=part.get_content_type() if part is not None else None,
        )
        return "250 Message accepted for delivery"


class SmtpSink:
    """The SMTP server; ``recorder`` holds one entry per accepted message."""

    def __init__(
        self,
        port: int,
        host: str = "127.0.0.1",
        *,
        faults: Faults | None = None,
        recorder: Recorder | None = None,
    ) -> None:
        if not 0 < port < 65536:
            raise ValueError(f"port must be 1-65535, got {port}")
        self.host = host
        self.port = port
        self.faults = faults or Faults()
        self.recorder = recorder if recorder is not None else Recorder()
        self._controller = Controller(_Handler(self.faults, self.recorder), hostname=host, port=port)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> SmtpSink:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
