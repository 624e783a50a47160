"""A status page API modelled on Atlassian Statuspage's REST API v1.

Entry point::

    StatusPage(api_key: str, pages: Mapping[str, Mapping[str, str]] | None = None,
               *, faults: Faults | None = None, recorder: Recorder | None = None)

``pages`` maps a page id to its components, ``{component_id: name}``, all starting
``operational``; ``add_component(page_id, component_id, name, status=...)`` adds
one later. The instance is a WSGI app; the ``statuspage`` http connection's host
is ``http://127.0.0.1:<port>`` and its password the API key, sent as
``Authorization: OAuth <key>`` (401 ``{"error": ...}`` otherwise).

Served under ``/v1/pages/{page}``: ``GET components``, ``GET``/``PATCH``/``PUT
components/{id}`` (body ``{"component": {"status": ...}}``); ``GET``/``POST incidents``,
``GET incidents/unresolved`` (realtime incidents not resolved), ``GET
incidents/upcoming`` (maintenances still ``scheduled``), ``GET
incidents/active_maintenance`` (``in_progress`` or ``verifying``), ``GET
incidents/scheduled`` (every maintenance), ``GET``/``PATCH incidents/{id}`` (body
``{"incident": {...}}`` with the fields of Statuspage's create/update incident
schema: ``name``, ``status``, ``body``, ``impact_override``, ``component_ids``,
``components`` ``{id: status}``, ``scheduled_for``, ``scheduled_until``,
``scheduled_remind_prior``, ``scheduled_auto_in_progress``,
``scheduled_auto_completed``, ``auto_transition_to_maintenance_state``,
``auto_transition_to_operational_state``, ``deliver_notifications``, ``metadata``...;
any other field is refused with 422). An incident's ``components`` also set those
components' status, as Statuspage does.

Two kinds of incident, as in Statuspage: a realtime incident (``investigating`` →
``identified`` → ``monitoring`` → ``resolved``) and a scheduled maintenance, created
with ``scheduled_for`` and ``scheduled_until`` (ISO 8601, until after for), whose
statuses are ``scheduled`` → ``in_progress`` → ``verifying`` → ``completed``; a status of
the other kind is refused (422). When a maintenance goes ``in_progress`` with
``auto_transition_to_maintenance_state``, its components go ``under_maintenance``
(unless the request sets them); when it is ``completed`` with
``auto_transition_to_operational_state``, ``operational``. Time-driven transitions
(``scheduled_auto_in_progress``/``_completed``) are stored, not run: the pipeline moves
its maintenance itself. Errors are ``{"error": "..."}``: 400 bad JSON, 404 unknown
page/component/incident, 422 invalid status, field or time. An ``outage`` fault with
``service="statuspage"`` answers 503. Every request is recorded (method, path, json,
status).
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from sandbox.faults import Faults
from sandbox.recorder import Recorder

COMPONENT_STATUSES = (
    "operational",
    "degraded_performance",
    "partial_outage",
    "major_outage",
    "under_maintenance",
)
INCIDENT_STATUSES = ("investigating", "identified", "monitoring", "resolved")
MAINTENANCE_STATUSES = ("scheduled", "in_progress", "verifying", "completed")
IMPACTS = ("none", "minor", "major", "critical")
# Statuspage API v1, POST/PATCH /pages/{page_id}/incidents: the incident object's fields.
MAINTENANCE_FLAGS = (
    "scheduled_remind_prior",
    "scheduled_auto_in_progress",
    "scheduled_auto_completed",
    "scheduled_auto_transition",
    "auto_transition_to_maintenance_state",
    "auto_transition_to_operational_state",
    "auto_transition_deliver_notifications_at_start",
    "auto_transition_deliver_notifications_at_end",
    "auto_tweet_at_beginning",
    "auto_tweet_on_completion",
    "auto_tweet_on_creation",
    "auto_tweet_one_hour_before",
)
INCIDENT_FIELDS = frozenset(
    {
        "name",
        "status",
        "impact_override",
        "scheduled_for",
        "scheduled_until",
        "metadata",
        "deliver_notifications",
        "backfill_date",
        "backfilled",
        "body",
        "components",
        "component_ids",
        *MAINTENANCE_FLAGS,
    }
)
# PATCH /pages/{page_id}/components/{component_id}: the component object's fields.
COMPONENT_FIELDS = frozenset(
    {"name", "description", "status", "only_show_if_degraded", "group_id", "showcase", "start_date"}
)


class StatusPageError(ValueError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class StatusPage:
    """The WSGI app; ``components()`` and ``incidents()`` expose the current state."""

    def __init__(
        self,
        api_key: str,
        pages: Mapping[str, Mapping[str, str]] | None = None,
        *,
        faults: Faults | None = None,
        recorder: Recorder | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("api_key must not be empty")
        self.api_key = api_key
        self.faults = faults or Faults()
        self.recorder = recorder if recorder is not None else Recorder()
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._components: dict[str, dict[str, dict[str, Any]]] = {}
        self._incidents: dict[str, dict[str, dict[str, Any]]] = {}
        for page_id, components in (pages or {}).items():
            for component_id, name in components.items():
                self.add_component(page_id, component_id, name)
        page = "/v1/pages/<page_id>"
        self._map = Map(
            [
                Rule(f"{page}/components", endpoint="list_components", methods=["GET"]),
                Rule(f"{page}/components/<component_id>", endpoint="get_component", methods=["GET"]),
                Rule(
                    f"{page}/components/<component_id>", endpoint="update_component", methods=["PATCH", "PUT"]
                ),
                Rule(f"{page}/incidents", endpoint="list_incidents", methods=["GET"]),
                Rule(f"{page}/incidents", endpoint="create_incident", methods=["POST"]),
                Rule(f"{page}/incidents/unresolved", endpoint="unresolved", methods=["GET"]),
                Rule(f"{page}/incidents/upcoming", endpoint="upcoming", methods=["GET"]),
                Rule(f"{page}/incidents/active_maintenance", endpoint="active_maintenance", methods=["GET"]),
                Rule(f"{page}/incidents/scheduled", endpoint="scheduled", methods=["GET"]),
                Rule(f"{page}/incidents/<incident_id>", endpoint="get_incident", methods=["GET"]),
                Rule(f"{page}/incidents/<incident_id>", endpoint="update_incident", methods=["PATCH", "PUT"]),
            ]
        )

    def add_component(self, page_id: str, component_id: str, name: str, status: str = "operational") -> None:
        _check(status, COMPONENT_STATUSES, "component status")
        now = _now()
        with self._lock:
            self._incidents.setdefault(page_id, {})
            components = self._components.setdefault(page_id, {})
            components[component_id] = {
                "id": component_id,
                "page_id": page_id,
                "group_id": None,
                "name": name,
                "description": None,
                "position": len(components) + 1,
                "status": status,
                "showcase": True,
                "only_show_if_degraded": False,
                "group": False,
                "created_at": now,
                "updated_at": now,
            }

    def components(self, page_id: str) -> dict[str, dict[str, Any]]:
        with self._lock:
            return json.loads(json.dumps(self._components.get(page_id, {})))

    def incidents(self, page_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return json.loads(json.dumps(list(self._incidents.get(page_id, {}).values())))

    # --------------------------------------------------------------------- WSGI
    def __call__(self, environ: dict, start_response: Any) -> Any:
        request = Request(environ)
        response = self._dispatch(request)
        self.recorder.record_request(request, response.status_code)
        return response(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
        if self.faults.find("outage", service="statuspage"):
            return _json({"error": "Service Unavailable"}, 503)
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "oauth" or key.strip() != self.api_key:
            return _json({"error": "Could not authenticate"}, 401)
        try:
            endpoint, args = self._map.bind_to_environ(request.environ).match()
            page_id = args.pop("page_id")
            with self._lock:
                if page_id not in self._components:
                    raise StatusPageError(404, f"page {page_id!r} not found")
                return getattr(self, f"_{endpoint}")(request, page_id, **args)
        except StatusPageError as err:
            return _json({"error": err.message}, err.status)
        except HTTPException as err:
            return _json({"error": err.name}, err.code or 400)

    # ---------------------------------------------------------------- endpoints
    def _list_components(self, request: Request, page_id: str) -> Response:
        return _json(list(self._components[page_id].values()))

    def _get_component(self, request: Request, page_id: str, component_id: str) -> Response:
        return _json(self._component(page_id, component_id))

    def _update_component(self, request: Request, page_id: str, component_id: str) -> Response:
        component = self._component(page_id, component_id)
        changes = _body(request, "component")
        _known(changes, COMPONENT_FIELDS, "component")
        if "status" in changes:
            _check(changes["status"], COMPONENT_STATUSES, "component status")
        for field in ("status", "name", "description"):
            if field in changes:
                component[field] = changes[field]
        component["updated_at"] = _now()
        return _json(component)

    def _list_incidents(self, request: Request, page_id: str) -> Response:
        return _json(sorted(self._incidents[page_id].values(), key=lambda i: i["created_at"], reverse=True))

    def _unresolved(self, request: Request, page_id: str) -> Response:
        return self._listed(page_id, lambda i: i["scheduled_for"] is None and i["status"] != "resolved")

    def _upcoming(self, request: Request, page_id: str) -> Response:
        return self._listed(page_id, lambda i: i["status"] == "scheduled")

    def _active_maintenance(self, request: Request, page_id: str) -> Response:
        return self._listed(page_id, lambda i: i["status"] in ("in_progress", "verifying"))

    def _scheduled(self, request: Request, page_id: str) -> Response:
        return self._listed(page_id, lambda i: i["scheduled_for"] is not None)

    def _listed(self, page_id: str, keep: Any) -> Response:
        incidents = [i for i in self._incidents[page_id].values() if keep(i)]
        return _json(sorted(incidents, key=lambda i: i["created_at"], reverse=True))

    def _create_incident(self, request: Request, page_id: str) -> Response:
        spec = _body(request, "incident")
        _known(spec, INCIDENT_FIELDS, "incident")
        name = spec.get("name")
        if not isinstance(name, str) or not name.strip():
            raise StatusPageError(422, "name can't be blank")
        scheduled = "scheduled_for" in spec or spec.get("status") in MAINTENANCE_STATUSES
        window = _window(spec) if scheduled else (None, None)
        status = spec.get("status", "scheduled" if scheduled else "investigating")
        _check(status, MAINTENANCE_STATUSES if scheduled else INCIDENT_STATUSES, "incident status")
        impact = spec.get("impact_override", "none")
        _check(impact, IMPACTS, "impact_override")
        now = _now()
        incident_id = f"inc{next(self._ids):06d}"
        incident = {
            "id": incident_id,
            "page_id": page_id,
            "name": name,
            "status": status,
            "impact": impact,
            "impact_override": spec.get("impact_override"),
            "created_at": now,
            "updated_at": now,
            "started_at": now,
            "monitoring_at": now if status == "monitoring" else None,
            "resolved_at": now if status in ("resolved", "completed") else None,
            "scheduled_for": window[0],
            "scheduled_until": window[1],
            **{flag: bool(spec.get(flag, False)) for flag in MAINTENANCE_FLAGS if scheduled},
            "metadata": spec.get("metadata") or {},
            "shortlink": f"https://stspg.io/{incident_id}",
            "components": [],
            "incident_updates": [],
        }
        self._apply_components(page_id, incident, spec)
        self._add_update(incident, status, spec.get("body", ""))
        self._incidents[page_id][incident_id] = incident
        return _json(incident, 201)

    def _get_incident(self, request: Request, page_id: str, incident_id: str) -> Response:
        return _json(self._incident(page_id, incident_id))

    def _update_incident(self, request: Request, page_id: str, incident_id: str) -> Response:
        incident = self._incident(page_id, incident_id)
        spec = _body(request, "incident")
        _known(spec, INCIDENT_FIELDS, "incident")
        scheduled = incident["scheduled_for"] is not None
        status = spec.get("status", incident["status"])
        _check(status, MAINTENANCE_STATUSES if scheduled else INCIDENT_STATUSES, "incident status")
        if "impact_override" in spec:
            _check(spec["impact_override"], IMPACTS, "impact_override")
            incident["impact"] = incident["impact_override"] = spec["impact_override"]
        if "name" in spec:
            incident["name"] = spec["name"]
        if "metadata" in spec:
            incident["metadata"] = spec["metadata"] or {}
        if scheduled and ({"scheduled_for", "scheduled_until"} & set(spec)):
            merged = {k: spec.get(k, incident[k]) for k in ("scheduled_for", "scheduled_until")}
            incident["scheduled_for"], incident["scheduled_until"] = _window(merged)
        for flag in MAINTENANCE_FLAGS:
            if scheduled and flag in spec:
                incident[flag] = bool(spec[flag])
        now = _now()
        if status == "monitoring" and incident["monitoring_at"] is None:
            incident["monitoring_at"] = now
        if status in ("resolved", "completed") and incident["resolved_at"] is None:
            incident["resolved_at"] = now
        moved = status != incident["status"]
        incident["status"] = status
        incident["updated_at"] = now
        if scheduled and moved and not spec.get("components"):
            automatic = {
                "in_progress": ("auto_transition_to_maintenance_state", "under_maintenance"),
                "completed": ("auto_transition_to_operational_state", "operational"),
            }.get(status)
            if automatic and incident.get(automatic[0]):
                spec = {**spec, "components": {c["id"]: automatic[1] for c in incident["components"]}}
        self._apply_components(page_id, incident, spec)
        if "status" in spec or "body" in spec:
            self._add_update(incident, status, spec.get("body", ""))
        return _json(incident)

    # ------------------------------------------------------------------ helpers
    def _component(self, page_id: str, component_id: str) -> dict[str, Any]:
        component = self._components[page_id].get(component_id)
        if component is None:
            raise StatusPageError(404, f"component {component_id!r} not found")
        return component

    def _incident(self, page_id: str, incident_id: str) -> dict[str, Any]:
        incident = self._incidents[page_id].get(incident_id)
        if incident is None:
            raise StatusPageError(404, f"incident {incident_id!r} not found")
        return incident

    def _apply_components(self, page_id: str, incident: dict[str, Any], spec: dict[str, Any]) -> None:
        statuses = spec.get("components") or {}
        if not isinstance(statuses, dict):
            raise StatusPageError(422, "components must map component ids to statuses")
        named = dict.fromkeys([*(spec.get("component_ids") or []), *statuses])
        for component_id in named:
            component = self._component(page_id, component_id)
            if component_id in statuses:
                _check(statuses[component_id], COMPONENT_STATUSES, "component status")
                component["status"] = statuses[component_id]
                component["updated_at"] = _now()
        affected = dict.fromkeys([*(c["id"] for c in incident["components"]), *named])
        incident["components"] = [dict(self._component(page_id, i)) for i in affected]

    def _add_update(self, incident: dict[str, Any], status: str, body: str) -> None:
        now = _now()
        incident["incident_updates"].insert(
            0,
            {
                "id": f"upd{next(self._ids):06d}",
                "incident_id": incident["id"],
                "status": status,
                "body": body,
                "created_at": now,
                "updated_at": now,
                "display_at": now,
                "affected_components": [
                    {"code": c["id"], "name": c["name"], "new_status": c["status"]}
                    for c in incident["components"]
                ],
            },
        )


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json; charset=utf-8")


def _body(request: Request, key: str) -> dict[str, Any]:
    try:
        data = json.loads(request.get_data(as_text=True) or "{}")
    except ValueError:
        raise StatusPageError(400, "request body is not valid JSON") from None
    inner = data.get(key) if isinstance(data, dict) else None
    if not isinstance(inner, dict):
        raise StatusPageError(400, f"request body must be an object with a {key!r} object")
    return inner


def _known(spec: dict[str, Any], fields: frozenset[str], what: str) -> None:
    unknown = sorted(set(spec) - fields)
    if unknown:
        raise StatusPageError(422, f"{what} has unknown field(s): {', '.join(unknown)}")
    metadata = spec.get("metadata")
    if metadata is not None and not (
        isinstance(metadata, dict) and all(isinstance(v, dict) for v in metadata.values())
    ):
        raise StatusPageError(422, "metadata must be an object whose top-level values are objects")


def _window(spec: dict[str, Any]) -> tuple[str, str]:
    """A maintenance's ``scheduled_for`` and ``scheduled_until``: both ISO 8601, until after for."""
    parsed = []
    for field in ("scheduled_for", "scheduled_until"):
        value = spec.get(field)
        try:
            parsed.append(datetime.fromisoformat(str(value).replace("Z", "+00:00")))
        except ValueError:
            raise StatusPageError(422, f"{field} {value!r} is not an ISO 8601 time") from None
        if parsed[-1].tzinfo is None:
            raise StatusPageError(422, f"{field} {value!r} has no time zone")
    if parsed[1] <= parsed[0]:
        raise StatusPageError(422, "scheduled_until must be after scheduled_for")
    return tuple(t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") for t in parsed)  # type: ignore[return-value]


def _check(value: Any, allowed: tuple[str, ...], what: str) -> None:
    if value not in allowed:
        raise StatusPageError(422, f"{what} {value!r} is not one of {', '.join(allowed)}")
