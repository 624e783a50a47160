"""The production smoke checks of ``smoke_tests.checks``, against one colour of the app.

Each check is one HTTP request through the colour's connection
(``connections.app_blue`` / ``app_green``: an http connection whose host is the
colour's base URL). It passes when the status is the expected one and, where
configured, the JSON body carries the expected key. A failure keeps the start
of the response body so the record says what the app answered, redacted: values
under secret-looking JSON keys and the connection's credentials never reach the
record or XCom. Only a check with ``credentials_from_connection`` sends them.
"""

from __future__ import annotations

import json
import re
import time
from typing import TYPE_CHECKING, Any

from deployment.ledger import now_iso

if TYPE_CHECKING:
    from deployment.config import Colour, DeploymentConfig, SmokeCheck

EXCERPT_CHARS = 500
REDACTED = "[redacted]"
SECRET_KEY = re.compile(r"pass|secret|token|key|auth|cookie|session|credential", re.IGNORECASE)


def _redact_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: REDACTED if SECRET_KEY.search(str(k)) else _redact_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_json(v) for v in value]
    return value


def redact(text: str, secrets: list[str | None]) -> str:
    """``text`` with secret-looking JSON values and every literal of ``secrets`` replaced."""
    try:
        text = json.dumps(_redact_json(json.loads(text)))
    except ValueError:
        pass
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def _judge(check: SmokeCheck, status: int, body: str) -> str | None:
    """Why the response fails ``check``, or None when it passes."""
    if status != check.expect_status:
        return f"expected HTTP {check.expect_status}, got {status}"
    if check.expect_json_key is None:
        return None
    try:
        payload = json.loads(body)
    except ValueError:
        return f"expected a JSON body with {check.expect_json_key!r}, got a body that is not JSON"
    if not isinstance(payload, dict) or check.expect_json_key not in payload:
        return f"expected the JSON body to carry {check.expect_json_key!r}"
    return None


def request_body(check: SmokeCheck, connection: Any) -> dict[str, Any] | None:
    """The check's JSON body; with ``credentials_from_connection``, the connection's login and password."""
    if not check.credentials_from_connection:
        return check.json_body
    if not connection.login or not connection.password:
        raise ValueError(
            f"smoke check {check.name} needs a login and password on connection {connection.conn_id!r}"
        )
    return {**(check.json_body or {}), "username": connection.login, "password": connection.password}


def run_check(cfg: DeploymentConfig, colour: Colour, check: SmokeCheck) -> dict[str, Any]:
    from airflow.providers.http.hooks.http import HttpHook
    from requests import RequestException

    conn_id = cfg.connections.app(colour)
    hook = HttpHook(method=check.method, http_conn_id=conn_id)
    result: dict[str, Any] = {
        "name": check.name,
        "colour": colour,
        "method": check.method,
        "path": check.path,
        "checked_at": now_iso(),
    }
    connection = hook.get_connection(conn_id)
    body = request_body(check, connection)
    started = time.perf_counter()
    try:
        response = hook.run(
            check.path,
            json=body,
            extra_options={"check_response": False, "timeout": cfg.smoke_tests.timeout_seconds},
        )
    except RequestException as err:
        latency = (time.perf_counter() - started) * 1000
        return {
            **result,
            "ok": False,
            "status": None,
            "latency_ms": round(latency, 1),
            "error": redact(f"request failed: {type(err).__name__}: {err}", [connection.password]),
        }
    latency = (time.perf_counter() - started) * 1000
    failure = _judge(check, response.status_code, response.text)
    result.update(ok=failure is None, status=response.status_code, latency_ms=round(latency, 1))
    if failure:
        excerpt = redact(response.text, [connection.password, connection.login])[:EXCERPT_CHARS]
        result.update(error=failure, response_excerpt=excerpt)
    return result


def run_smoke_checks(cfg: DeploymentConfig, colour: Colour, names: list[str] | None = None) -> list[dict]:
    """Run the configured checks (all, or those named) against ``colour``; one result per check."""
    checks = cfg.smoke_tests.checks
    if names is not None:
        known = {c.name for c in checks}
        unknown = sorted(set(names) - known)
        if unknown:
            raise ValueError(f"no smoke check named {unknown} in smoke_tests.checks (known: {sorted(known)})")
        checks = [c for c in checks if c.name in names]
    return [run_check(cfg, colour, check) for check in checks]
