"""CloudWatch answering with an error or throttling, for the ``cloudwatch_failure`` fault.

The answer is shaped as CloudWatch's own for the protocol the client spoke: Smithy RPC v2
CBOR (what current botocore uses for ``monitoring``), JSON 1.0 (``X-Amz-Target``) or the
query protocol (XML). ``mode`` ``throttling`` answers 400 ``Throttling`` (botocore retries
it with backoff), ``error`` answers 500 ``InternalServiceFault``.
"""

from __future__ import annotations

import json
import uuid
from typing import Any
from xml.sax.saxutils import escape

WsgiResult = tuple[str, list[tuple[str, str]], bytes]
MODES = {
    "throttling": ("400 Bad Request", "Throttling", "Rate exceeded", "Sender"),
    "error": ("500 Internal Server Error", "InternalServiceFault", "Internal service error", "Receiver"),
}


def _cbor_text(text: str) -> bytes:
    data = text.encode()
    if len(data) < 24:
        return bytes([0x60 + len(data)]) + data
    if len(data) < 256:
        return bytes([0x78, len(data)]) + data
    return bytes([0x79]) + len(data).to_bytes(2, "big") + data


def _cbor_map(items: dict[str, str]) -> bytes:
    """A CBOR map of text to text (RFC 8949: major types 5 and 3), all this error body needs."""
    return bytes([0xA0 + len(items)]) + b"".join(_cbor_text(k) + _cbor_text(v) for k, v in items.items())


def failure_response(environ: dict[str, Any], fault: dict[str, Any]) -> WsgiResult:
    """The error CloudWatch would send for ``fault`` (``mode``: throttling, the default, or error)."""
    status, code, message, fault_type = MODES[fault.get("mode") or "throttling"]
    message = f"{message} (sandbox fault {fault['id']})"
    headers = [("x-amzn-RequestId", str(uuid.uuid4())), ("x-amzn-query-error", f"{code};{fault_type}")]
    if environ.get("HTTP_SMITHY_PROTOCOL") == "rpc-v2-cbor":
        body = _cbor_map({"__type": f"com.amazonaws.cloudwatch#{code}", "message": message})
        headers += [("Content-Type", "application/cbor"), ("smithy-protocol", "rpc-v2-cbor")]
    elif environ.get("HTTP_X_AMZ_TARGET"):
        body = json.dumps({"__type": f"com.amazonaws.cloudwatch#{code}", "message": message}).encode()
        headers.append(("Content-Type", "application/x-amz-json-1.0"))
    else:
        body = (
            f'<ErrorResponse xmlns="http://monitoring.amazonaws.com/doc/2010-08-01/"><Error>'
            f"<Type>{fault_type}</Type><Code>{code}</Code><Message>{escape(message)}</Message>"
            f"</Error><RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
        ).encode()
        headers.append(("Content-Type", "text/xml"))
    return status, headers, body
