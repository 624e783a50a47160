"""CloudFormation's query-protocol answers (XML), for the actions the sandbox answers itself."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape

CFN_NS = "http://cloudformation.amazonaws.com/doc/2010-05-15/"

WsgiResult = tuple[str, list[tuple[str, str]], bytes]


def response(action: str, result: dict[str, Any] | None = None) -> WsgiResult:
    """``200`` with ``<{action}Result>`` holding ``result`` (members of a list as ``<member>``, times in
    ISO 8601); no result element when ``result`` is None."""
    inner = "" if result is None else f"<{action}Result>{_members(result)}</{action}Result>"
    body = (
        f'<{action}Response xmlns="{CFN_NS}">{inner}<ResponseMetadata><RequestId>{uuid.uuid4()}'
        f"</RequestId></ResponseMetadata></{action}Response>"
    ).encode()
    return "200 OK", [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))], body


def error(message: str, code: str = "ValidationError") -> WsgiResult:
    body = (
        f'<ErrorResponse xmlns="{CFN_NS}"><Error><Type>Sender</Type><Code>{code}</Code>'
        f"<Message>{escape(message)}</Message></Error><RequestId>{uuid.uuid4()}</RequestId>"
        "</ErrorResponse>"
    ).encode()
    return "400 Bad Request", [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))], body


def _members(fields: dict[str, Any]) -> str:
    return "".join(f"<{name}>{_value(value)}</{name}>" for name, value in fields.items() if value is not None)


def _value(value: Any) -> str:
    if isinstance(value, dict):
        return _members(value)
    if isinstance(value, list):
        return "".join(f"<member>{_value(item)}</member>" for item in value)
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    if isinstance(value, bool):
        return "true" if value else "false"
    return escape(str(value))
