"""Lambda's Invoke of the API function, answered as that version of the function would answer.

moto would start a container to run the code. Here the sandbox's own API (``sandbox.app``'s
:class:`~sandbox.app.ApiHandler`) answers instead, for the release the invoked version runs (its
``APP_VERSION``), with the faults matched by ``backend_version`` (that release) and
``function_version`` (that version) applied, as the colour apps apply theirs by colour and
frontend release. ``POST /2015-03-31/functions/{FunctionName}/invocations[?Qualifier=Q]`` with
an API Gateway proxy event (``{"httpMethod", "path", "headers", "body"}``, ``isBase64Encoded``
honoured): ``Q`` a version runs that version; an alias, the version its routing draws (the
additional version with its weight, as Lambda does); none or ``$LATEST``, the unpublished code.

The answer is Invoke's: HTTP 200, ``X-Amz-Executed-Version``, and as payload the proxy
response ``{"statusCode", "headers", "body"}``. A request the API answers with an error (a
``smoke_failure`` fault: 500; bad input: 400) is still the function's normal answer. Under an
``error_rate`` fault the function fails instead: ``X-Amz-Function-Error: Unhandled`` and an error
payload; under ``stall`` it times out (reported at once, not after the function's timeout).
``InvocationType`` ``Event`` runs it and answers 202 with no payload, ``DryRun`` answers 204.
An unknown function, version or alias is moto's own error. Every invocation is recorded
(function, qualifier, executed version, release, method, path, JSON body with any password
masked, status, function error).
"""

from __future__ import annotations

import base64
import json
import random
import re
import threading
from typing import Any
from urllib.parse import parse_qs, unquote

from moto.awslambda.exceptions import LambdaClientError
from moto.awslambda.models import LambdaFunction, lambda_backends
from moto.core import DEFAULT_ACCOUNT_ID
from werkzeug.http import HTTP_STATUS_CODES

from sandbox.app import ApiHandler, Failed, Stalled, masked_json
from sandbox.lambda_alias import RELEASE_VARIABLE, AliasRouting
from sandbox.recorder import Recorder

WsgiResult = tuple[str, list[tuple[str, str]], bytes]
INVOKE_PATH = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations$")


def is_invoke(environ: dict[str, Any]) -> bool:
    return environ.get("REQUEST_METHOD") == "POST" and bool(INVOKE_PATH.match(environ.get("PATH_INFO", "")))


class LambdaInvoke:
    """Invoke for the functions in the sandbox's Lambda (moto's, in this process)."""

    def __init__(self, api: ApiHandler, *, recorder: Recorder | None = None, seed: int | None = None) -> None:
        self.api = api
        self.recorder = recorder if recorder is not None else Recorder()
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()

    def invoke(self, environ: dict[str, Any], region: str) -> WsgiResult:
        name, qualifier = _target(environ)
        try:
            function, executed = self._resolve(region, name, qualifier)
        except LambdaClientError as err:
            body = err.get_body().encode()
            return (
                f"{err.code} {HTTP_STATUS_CODES[err.code]}",
                [*err.get_headers(), ("Content-Length", str(len(body)))],
                body,
            )
        invocation_type = environ.get("HTTP_X_AMZ_INVOCATION_TYPE", "RequestResponse")
        if invocation_type == "DryRun":
            return _answer(204, executed, b"")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        event = json.loads(environ["wsgi.input"].read(length) or b"{}")
        release = function.environment_vars.get(RELEASE_VARIABLE)
        status, payload, failure = self._run(event, release, executed, function)
        self.recorder.record(
            function=function.function_name,
            qualifier=qualifier,
            executed_version=executed,
            release=release,
            method=event.get("httpMethod"),
            path=event.get("path"),
            json=masked_json(_body(event)),
            status=status,
            function_error=failure,
        )
        if invocation_type == "Event":
            return _answer(202, executed, b"")
        return _answer(200, executed, json.dumps(payload).encode(), failure)

    def _resolve(self, region: str, name: str, qualifier: str | None) -> tuple[LambdaFunction, str]:
        """The function (version) that runs this invocation, and its version (``$LATEST`` unpublished)."""
        backend = lambda_backends[DEFAULT_ACCOUNT_ID][region]
        if qualifier is None or qualifier == "$LATEST":
            return backend.get_function(name), "$LATEST"
        if not qualifier.isdigit():
            alias = backend.get_alias(qualifier, name)
            weights = (alias.routing_config or {}).get("AdditionalVersionWeights") or {}
            routing = AliasRouting(
                name, qualifier, alias.function_version, {v: float(w) for v, w in weights.items()}
            )
            with self._rng_lock:
                qualifier = routing.pick(self._rng)
        return backend.get_function(name, qualifier), qualifier

    def _run(
        self, event: dict[str, Any], release: str | None, executed: str, function: LambdaFunction
    ) -> tuple[int | None, dict[str, Any], str | None]:
        """(statusCode, Invoke's payload, FunctionError) of one invocation."""
        context = {"backend_version": release, "function_version": executed}
        method, path = event.get("httpMethod", "GET"), event.get("path", "/")
        try:
            if method == "GET" and path == "/health":
                status, body = 200, {"status": "ok", "version": release, "function_version": executed}
            else:
                status, body = self.api.answer(
                    method, path, _body(event), release=release or "", colour="", context=context
                )
        except Stalled:
            message = f"Task timed out after {float(function.timeout):.2f} seconds"
            return None, {"errorMessage": message}, "Unhandled"
        except Failed:
            return (
                None,
                {"errorType": "RuntimeError", "errorMessage": "internal server error (injected)"},
                "Unhandled",
            )
        response = {
            "statusCode": status,
            "headers": {"Content-Type": "application/json"},
            "body": json.dumps(body),
        }
        return status, response, None


def _target(environ: dict[str, Any]) -> tuple[str, str | None]:
    """(function name, qualifier) of an Invoke: the qualifier from the query, else from the name
    (``name:qualifier`` or a qualified ARN)."""
    name = unquote(INVOKE_PATH.match(environ["PATH_INFO"])["name"])
    qualifier = (parse_qs(environ.get("QUERY_STRING", "")).get("Qualifier") or [None])[-1]
    if name.startswith("arn:"):
        name = name.split(":function:", 1)[1]
    if ":" in name:
        name, named = name.split(":", 1)
        qualifier = qualifier or named
    return name, qualifier


def _body(event: dict[str, Any]) -> str:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        return base64.b64decode(body).decode()
    return body


def _answer(status: int, executed: str, payload: bytes, failure: str | None = None) -> WsgiResult:
    headers = [
        ("Content-Type", "application/json"),
        ("X-Amz-Executed-Version", executed),
        ("Content-Length", str(len(payload))),
    ]
    if failure:
        headers.append(("X-Amz-Function-Error", failure))
    return f"{status} {HTTP_STATUS_CODES[status]}", headers, payload
