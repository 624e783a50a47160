"""The sandbox's control API (port B+7): inject faults, force alarms, read what was recorded.

``GET /health``; ``GET /faults``; ``POST /faults {"kind", matchers..., settings...}`` → 201
``{"id"}``; ``POST /builds/{version}/faults {"kind": tampered_object|missing_manifest|
rc_tag_moved|republished, "template"?}`` → 201 (that release candidate's build or tag broken,
or its build published again from ``template``, until ``/reseed``);
``DELETE /faults/{id}``; ``POST /reset`` (faults and recordings cleared, state
kept); ``POST /reseed`` (back to the freshly seeded state, simulated viewers routed as
configured); ``GET /traffic`` (the router the simulated viewers follow and the split it
serves: through the front door, what its function reads, and the last tick's viewers per
colour); ``POST /traffic/router {"router": "keyvaluestore"|"route53"}`` (how the
simulated viewers are routed from now on); ``POST /alarms/{name}
{"state", "reason"?}``; ``GET /requests?since=<epoch>&service=<signing name>`` (the
AWS request log); ``GET /recorded/{service}`` (github, slack, statuspage, pagerduty, smtp,
app_blue, app_green, lambda (the API function's invocations), traffic). Fault matchers are
``sandbox.faults.MATCHERS`` (``backend_version`` among them: the release a Lambda version of the
API runs). Errors are ``{"error": "..."}`` with 400 or 404. See README.md.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError
from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from sandbox.faults import KINDS, MATCHERS
from sandbox.github import GitHubError

if TYPE_CHECKING:
    from sandbox.launcher import Sandbox

SETTINGS = {
    "percent": float,
    "ms": float,
    "reason": str,
    "rollback_fails": bool,
    "resource": str,
    "mode": str,  # cloudwatch_failure: error | throttling
    "spacing": str,  # error_rate: random (each request a draw) | even (exactly one in 100/percent)
    "seconds": float,  # any fault: lasts this long
}
ALARM_STATES = ("OK", "ALARM", "INSUFFICIENT_DATA")


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def parse_fault(body: Any) -> dict[str, Any]:
    """Check a fault request; return ``{"kind", ...}`` or raise ControlError(400)."""
    if not isinstance(body, dict):
        raise ControlError(400, "the body must be a JSON object")
    kind = body.get("kind")
    if kind not in KINDS:
        raise ControlError(400, f"kind must be one of {sorted(KINDS)}, got {kind!r}")
    fault = {"kind": kind}
    for key, value in body.items():
        if key == "kind":
            continue
        if key in MATCHERS:
            if not isinstance(value, str) or not value:
                raise ControlError(400, f"matcher {key} must be a non-empty string")
        elif key in SETTINGS:
            wanted = SETTINGS[key]
            if not _is(value, wanted):
                raise ControlError(
                    400, f"setting {key} must be a {'number' if wanted is float else wanted.__name__}"
                )
        else:
            raise ControlError(
                400, f"unknown field {key!r}; matchers: {sorted(MATCHERS)}, settings: {sorted(SETTINGS)}"
            )
        fault[key] = value
    if "percent" in fault and not 0 <= fault["percent"] <= 100:
        raise ControlError(400, "percent must be between 0 and 100")
    if "mode" in fault and fault["mode"] not in ("error", "throttling"):
        raise ControlError(400, "mode must be error or throttling")
    if "spacing" in fault and fault["spacing"] not in ("random", "even"):
        raise ControlError(400, "spacing must be random or even")
    if "seconds" in fault and fault["seconds"] <= 0:
        raise ControlError(400, "seconds must be positive")
    if "ms" in fault and fault["ms"] < 0:
        raise ControlError(400, "ms must not be negative")
    return fault


class ControlApi:
    """The WSGI app; ``sandbox`` is the running :class:`~sandbox.launcher.Sandbox`."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.urls = Map(
            [
                Rule("/health", methods=["GET"], endpoint="health"),
                Rule("/faults", methods=["GET"], endpoint="list_faults"),
                Rule("/faults", methods=["POST"], endpoint="add_fault"),
                Rule("/faults/<int:fault_id>", methods=["DELETE"], endpoint="remove_fault"),
                Rule("/reset", methods=["POST"], endpoint="reset"),
                Rule("/reseed", methods=["POST"], endpoint="reseed"),
                Rule("/traffic", methods=["GET"], endpoint="traffic"),
                Rule("/traffic/router", methods=["POST"], endpoint="traffic_router"),
                Rule("/alarms/<name>", methods=["POST"], endpoint="set_alarm"),
                Rule("/builds/<version>/faults", methods=["POST"], endpoint="build_fault"),
                Rule("/requests", methods=["GET"], endpoint="requests"),
                Rule("/recorded/<service>", methods=["GET"], endpoint="recorded"),
            ]
        )

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        try:
            endpoint, args = self.urls.bind_to_environ(environ).match()
            status, payload = getattr(self, endpoint)(request, **args)
        except ControlError as err:
            status, payload = err.status, {"error": err.message}
        except HTTPException as err:
            status, payload = err.code or 500, {"error": f"{request.method} {request.path}: {err.name}"}
        response = Response(json.dumps(payload), status=status, mimetype="application/json")
        return response(environ, start_response)

    # ------------------------------------------------------------------ endpoints
    def health(self, request: Request) -> tuple[int, Any]:
        return 200, {"status": "ok", "endpoints": self.sandbox.endpoints}

    def list_faults(self, request: Request) -> tuple[int, Any]:
        return 200, self.sandbox.faults.list()

    def add_fault(self, request: Request) -> tuple[int, Any]:
        fault = parse_fault(_json(request))
        return 201, {"id": self.sandbox.faults.add(**fault)}

    def remove_fault(self, request: Request, fault_id: int) -> tuple[int, Any]:
        if not self.sandbox.faults.remove(fault_id):
            raise NotFound()
        return 200, {"removed": fault_id}

    def reset(self, request: Request) -> tuple[int, Any]:
        self.sandbox.reset()
        return 200, {"reset": True}

    def reseed(self, request: Request) -> tuple[int, Any]:
        self.sandbox.reseed()
        return 200, {"reseeded": True}

    def traffic(self, request: Request) -> tuple[int, Any]:
        return 200, self.sandbox.traffic_state()

    def traffic_router(self, request: Request) -> tuple[int, Any]:
        router = _json(request).get("router")
        try:
            self.sandbox.route_traffic(router)
        except ValueError as err:
            raise ControlError(400, str(err)) from None
        return 200, {"router": router}

    def set_alarm(self, request: Request, name: str) -> tuple[int, Any]:
        body = _json(request)
        state = body.get("state") if isinstance(body, dict) else None
        if state not in ALARM_STATES:
            raise ControlError(400, f"state must be one of {list(ALARM_STATES)}, got {state!r}")
        reason = body.get("reason") or f"Set to {state} through the sandbox control API"
        try:
            self.sandbox.set_alarm_state(name, state, str(reason))
        except ClientError as err:
            code = err.response["Error"]["Code"]
            raise ControlError(404 if code == "ResourceNotFound" else 400, f"alarm {name}: {code}") from None
        return 200, {"alarm": name, "state": state}

    def build_fault(self, request: Request, version: str) -> tuple[int, Any]:
        from sandbox.seed import BUILD_FAULTS, inject_build_fault

        body = _json(request) or {}
        kind, template = body.get("kind"), body.get("template")
        if kind not in BUILD_FAULTS:
            raise ControlError(400, f"kind must be one of {list(BUILD_FAULTS)}, got {kind!r}")
        if template is not None and not isinstance(template, str):
            raise ControlError(400, "template must be the template's text")
        try:
            s3, github = self.sandbox.aws_client("s3"), self.sandbox.github
            done = inject_build_fault(self.sandbox.cfg, s3, github, version, kind, template)
        except (ClientError, ValueError, GitHubError) as err:
            raise ControlError(404, f"no release candidate build of {version} to break: {err}") from None
        return 201, done

    def requests(self, request: Request) -> tuple[int, Any]:
        try:
            since = float(request.args["since"]) if "since" in request.args else None
        except ValueError:
            raise ControlError(400, "since must be a Unix time in seconds") from None
        return 200, self.sandbox.aws.requests.list(since=since, service=request.args.get("service"))

    def recorded(self, request: Request, service: str) -> tuple[int, Any]:
        recorder = self.sandbox.recorders.get(service)
        if recorder is None:
            raise ControlError(404, f"no recorder {service!r}; known: {sorted(self.sandbox.recorders)}")
        return 200, recorder.list()


def _is(value: Any, wanted: type) -> bool:
    if wanted is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, wanted)


def _json(request: Request) -> Any:
    if not request.get_data():
        return {}
    try:
        return json.loads(request.get_data())
    except ValueError:
        raise ControlError(400, "the body is not valid JSON") from None
