"""The smoke checks against one version of the API function, through Lambda's ``Invoke``.

The new version is called by its qualifier right after the stack update, before the alias gives
it any share; the phase-7 checks call the alias again once it serves the new version alone. Each
check goes as an API Gateway proxy event (method, path, headers, JSON body) and the function's
proxy response (``statusCode``, ``body``) is judged as the HTTP checks judge a response
(``deployment.checks.smoke``), redacted the same way. A function error (``FunctionError``) fails
the check with Lambda's error message.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from deployment.checks.smoke import EXCERPT_CHARS, _judge, redact, request_body
from deployment.ledger import now_iso

if TYPE_CHECKING:
    from deployment.config import Colour, DeploymentConfig, SmokeCheck


def proxy_event(check: SmokeCheck, body: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "httpMethod": check.method,
        "path": check.path,
        "headers": {"content-type": "application/json"},
        "queryStringParameters": None,
        "body": json.dumps(body) if body is not None else None,
        "isBase64Encoded": False,
    }


def invoke_check(
    cfg: DeploymentConfig, client: Any, qualifier: str, check: SmokeCheck, connection: Any
) -> dict:
    """One check against ``qualifier`` (a version number or the alias) of ``backend.function_name``."""
    assert cfg.backend is not None
    result: dict[str, Any] = {
        "name": check.name,
        "qualifier": qualifier,
        "method": check.method,
        "path": check.path,
        "checked_at": now_iso(),
    }
    secrets = [connection.password, connection.login]
    started = time.perf_counter()
    try:
        response = client.invoke(
            FunctionName=cfg.backend.function_name,
            Qualifier=qualifier,
            Payload=json.dumps(proxy_event(check, request_body(check, connection))).encode(),
        )
        payload = response["Payload"].read().decode()
    except Exception as err:  # an API error or a timeout fails the check, saying which
        return {**result, "ok": False, "status": None, "error": redact(f"invoke failed: {err}", secrets)}
    latency = round((time.perf_counter() - started) * 1000, 1)
    result.update(executed_version=response.get("ExecutedVersion"), latency_ms=latency)
    if response.get("FunctionError"):
        excerpt = redact(payload, secrets)[:EXCERPT_CHARS]
        return {
            **result,
            "ok": False,
            "status": None,
            "error": f"function error ({response['FunctionError']})",
            "response_excerpt": excerpt,
        }
    try:
        answer = json.loads(payload)
        status, body = int(answer["statusCode"]), answer.get("body") or ""
    except (ValueError, KeyError, TypeError):
        excerpt = redact(payload, secrets)[:EXCERPT_CHARS]
        return {
            **result,
            "ok": False,
            "status": None,
            "error": "not an API proxy response",
            "response_excerpt": excerpt,
        }
    failure = _judge(check, status, body)
    result.update(ok=failure is None, status=status)
    if failure:
        result.update(error=failure, response_excerpt=redact(body, secrets)[:EXCERPT_CHARS])
    return result


def run_api_checks(cfg: DeploymentConfig, qualifier: str, credentials_colour: Colour) -> dict[str, Any]:
    """Every configured check against ``qualifier``; ``credentials_colour``'s app connection gives the
    login a check with ``credentials_from_connection`` sends. ``{"ok", "qualifier", "results"}``."""
    from airflow.sdk import BaseHook

    from deployment.aws.lambda_alias import lambda_client

    client = lambda_client(cfg)
    connection = BaseHook.get_connection(cfg.connections.app(credentials_colour))
    results = [invoke_check(cfg, client, qualifier, check, connection) for check in cfg.smoke_tests.checks]
    return {"ok": all(r["ok"] for r in results), "qualifier": qualifier, "results": results}
