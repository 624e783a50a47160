"""The sandbox's CloudFront: the front door's own function file, run on every request.

:class:`FunctionRunner` runs ``include/frontdoor/blue_green.js`` under Node
(``include/frontdoor/harness.js`` binds a stand-in for the ``cloudfront``
module: ``kvs().get`` reads the items it is given, ``selectRequestOriginById``
is recorded). One Node process serves every call, one JSON line each way.

:class:`FrontDoor` is a WSGI app doing what the distribution does: build the
viewer-request event from the HTTP request, run the function with the
KeyValueStore's current items, answer directly when the function returns a
response (the probe), else forward to the origin the function selected by id
among the sandbox's declared origins (origin id -> that colour's sandbox app, as
the template declares ``Id: blue`` and ``Id: green``; the default origin when it
selected none; 502 for an id the distribution does not declare), then run the
function's viewer-response event and answer. Nothing is cached, so the cache
key's colour header has nothing to protect here."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterable
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

FRONTDOOR_DIR = Path(__file__).resolve().parents[1] / "frontdoor"
FUNCTION_FILE = FRONTDOOR_DIR / "blue_green.js"
HARNESS_FILE = FRONTDOOR_DIR / "harness.js"
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host"}


class FunctionError(RuntimeError):
    """The function threw, or Node is not there."""


class FunctionRunner:
    """A CloudFront Function file run by one long-lived Node process."""

    def __init__(self, function_file: Path = FUNCTION_FILE) -> None:
        node = shutil.which("node") or shutil.which("nodejs")
        if node is None:
            raise FunctionError("Node.js is needed to run the front door's function (Debian package nodejs)")
        self._lock = threading.Lock()
        self._proc = subprocess.Popen(
            [node, str(HARNESS_FILE), str(function_file)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )

    def run(
        self, event: dict[str, Any], kvs: dict[str, str], *, random: float | None = None
    ) -> dict[str, Any]:
        """``{"result": request-or-response, "originId": selectRequestOriginById's id or None}``."""
        call: dict[str, Any] = {"event": event, "kvs": kvs}
        if random is not None:
            call["random"] = random
        with self._lock:
            assert self._proc.stdin and self._proc.stdout
            self._proc.stdin.write(json.dumps(call) + "\n")
            self._proc.stdin.flush()
            line = self._proc.stdout.readline()
        if not line:
            raise FunctionError(f"the function's Node process ended (exit code {self._proc.poll()})")
        answer = json.loads(line)
        if "error" in answer:
            raise FunctionError(answer["error"])
        return answer

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.stdin.close()  # type: ignore[union-attr]
            self._proc.wait(timeout=5)

    def __enter__(self) -> FunctionRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def viewer_request_event(environ: dict[str, Any]) -> dict[str, Any]:
    """CloudFront Functions' event for an HTTP request (headers lower-case, cookies parsed)."""
    headers = {
        key[5:].lower().replace("_", "-"): {"value": value}
        for key, value in environ.items()
        if key.startswith("HTTP_") and key != "HTTP_COOKIE"
    }
    cookies = {
        name: {"value": morsel.value} for name, morsel in SimpleCookie(environ.get("HTTP_COOKIE", "")).items()
    }
    query = environ.get("QUERY_STRING", "")
    querystring = {}
    for pair in filter(None, query.split("&")):
        name, _, value = pair.partition("=")
        querystring[name] = {"value": value}
    return {
        "version": "1.0",
        "context": {"eventType": "viewer-request"},
        "viewer": {"ip": environ.get("REMOTE_ADDR", "127.0.0.1")},
        "request": {
            "method": environ["REQUEST_METHOD"],
            "uri": environ.get("PATH_INFO", "/") or "/",
            "querystring": querystring,
            "headers": headers,
            "cookies": cookies,
        },
    }


class FrontDoor:
    """WSGI app: the distribution in front of the blue and green apps."""

    def __init__(
        self,
        runner: FunctionRunner,
        items: Callable[[], dict[str, str]],
        origins: dict[str, str],
        default_origin: str,
    ) -> None:
        """``items``: the KeyValueStore's items now; ``origins``: the declared origins, origin id ->
        app base URL; ``default_origin``: the base URL of the default cache behaviour's origin."""
        self.runner = runner
        self.items = items
        self.origins = origins
        self.default_origin = default_origin
        import requests

        self._http = requests.Session()

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        event = viewer_request_event(environ)
        answer = self.runner.run(event, self.items())
        result = answer["result"]
        if "statusCode" in result:  # the function answered itself
            return self._respond(start_response, result)
        origin_id = answer.get("originId")
        if origin_id is not None and origin_id not in self.origins:
            return self._respond(
                start_response,
                {"statusCode": 502, "statusDescription": "Bad Gateway", "body": f"no origin {origin_id!r}"},
            )
        origin = self.origins[origin_id] if origin_id is not None else self.default_origin
        length = int(environ.get("CONTENT_LENGTH") or 0)
        upstream = self._http.request(
            result["method"],
            origin + result["uri"],
            params=environ.get("QUERY_STRING") or None,
            headers={k: v["value"] for k, v in result["headers"].items() if k not in HOP_BY_HOP},
            cookies={k: v["value"] for k, v in result.get("cookies", {}).items()},
            data=environ["wsgi.input"].read(length) if length else None,
            timeout=10,
            allow_redirects=False,
        )
        response = {
            "statusCode": upstream.status_code,
            "headers": {
                k.lower(): {"value": v} for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP
            },
            "cookies": {},
        }
        final = self.runner.run(
            {**event, "context": {"eventType": "viewer-response"}, "request": result, "response": response},
            self.items(),
        )["result"]
        final["body"] = upstream.content
        return self._respond(start_response, final)

    @staticmethod
    def _respond(start_response: Callable, response: dict[str, Any]) -> Iterable[bytes]:
        headers = [(name, h["value"]) for name, h in (response.get("headers") or {}).items()]
        for name, cookie in (response.get("cookies") or {}).items():
            attributes = cookie.get("attributes")
            headers.append(
                ("Set-Cookie", f"{name}={cookie['value']}" + (f"; {attributes}" if attributes else ""))
            )
        body = response.get("body") or b""
        start_response(f"{response['statusCode']} {response.get('statusDescription', '')}".strip(), headers)
        return [body if isinstance(body, bytes) else str(body).encode()]
