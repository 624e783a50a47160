"""Contract tests: the status page API (Statuspage v1 shapes) driven by requests over HTTP."""

from __future__ import annotations

import pytest
import requests

from sandbox.faults import Faults
from sandbox.statuspage import StatusPage
from tests.sandbox._servers import serving

KEY = "sandbox-statuspage-key"
PAGE = "bayon"


@pytest.fixture
def faults() -> Faults:
    return Faults()


@pytest.fixture
def page(faults: Faults) -> StatusPage:
    return StatusPage(KEY, {PAGE: {"web-app": "Web application", "api": "API"}}, faults=faults)


@pytest.fixture
def api(page: StatusPage):
    with serving(page) as base:
        session = requests.Session()
        session.headers["Authorization"] = f"OAuth {KEY}"
        session.base = f"{base}/v1/pages/{PAGE}"  # type: ignore[attr-defined]
        yield session


def test_component_status_round_trip(api, page: StatusPage) -> None:
    assert api.get(f"{api.base}/components/web-app").json()["status"] == "operational"
    response = api.patch(
        f"{api.base}/components/web-app", json={"component": {"status": "under_maintenance"}}
    )
    assert response.status_code == 200
    assert (response.json()["id"], response.json()["status"]) == ("web-app", "under_maintenance")
    assert page.components(PAGE)["web-app"]["status"] == "under_maintenance"
    listed = api.get(f"{api.base}/components").json()
    assert {c["id"]: c["status"] for c in listed} == {"web-app": "under_maintenance", "api": "operational"}
    patch = page.recorder.list(method="PATCH")[0]
    assert patch["json"] == {"component": {"status": "under_maintenance"}}
    assert patch["path"] == f"/v1/pages/{PAGE}/components/web-app" and patch["status"] == 200


def test_incident_lifecycle(api, page: StatusPage) -> None:
    created = api.post(
        f"{api.base}/incidents",
        json={
            "incident": {
                "name": "Release v1.1.0 rolled back",
                "status": "investigating",
                "body": "Elevated errors after the release.",
                "impact_override": "minor",
                "component_ids": ["web-app"],
                "components": {"web-app": "partial_outage"},
            }
        },
    )
    assert created.status_code == 201
    incident = created.json()
    assert (incident["status"], incident["impact"]) == ("investigating", "minor")
    assert [c["id"] for c in incident["components"]] == ["web-app"]
    assert incident["incident_updates"][0]["body"] == "Elevated errors after the release."
    assert page.components(PAGE)["web-app"]["status"] == "partial_outage"
    assert [i["id"] for i in api.get(f"{api.base}/incidents/unresolved").json()] == [incident["id"]]

    resolved = api.patch(
        f"{api.base}/incidents/{incident['id']}",
        json={
            "incident": {
                "status": "resolved",
                "body": "Rolled back.",
                "components": {"web-app": "operational"},
            }
        },
    ).json()
    assert resolved["status"] == "resolved" and resolved["resolved_at"]
    assert [u["status"] for u in resolved["incident_updates"]] == ["resolved", "investigating"]
    assert page.components(PAGE)["web-app"]["status"] == "operational"
    assert api.get(f"{api.base}/incidents/unresolved").json() == []
    assert api.get(f"{api.base}/incidents/{incident['id']}").json()["status"] == "resolved"
    assert [i["name"] for i in api.get(f"{api.base}/incidents").json()] == ["Release v1.1.0 rolled back"]
    assert [e["method"] for e in page.recorder.list()].count("POST") == 1


def test_authentication_required(api, page: StatusPage) -> None:
    url = f"{api.base}/components/web-app"
    for headers in ({}, {"Authorization": "OAuth wrong"}, {"Authorization": f"Bearer {KEY}"}):
        response = requests.get(url, headers=headers, timeout=5)
        assert response.status_code == 401
        assert response.json() == {"error": "Could not authenticate"}
    assert [e["status"] for e in page.recorder.list()] == [401, 401, 401]


def test_errors_have_the_error_shape(api) -> None:
    cases = [
        (api.get(f"{api.base}/components/nope"), 404),
        (api.get(f"{api.base.replace(PAGE, 'other')}/components"), 404),
        (api.get(f"{api.base}/incidents/inc999"), 404),
        (api.patch(f"{api.base}/components/web-app", json={"component": {"status": "on_fire"}}), 422),
        (api.patch(f"{api.base}/components/web-app", json={"status": "operational"}), 400),
        (api.patch(f"{api.base}/components/web-app", data="{bad"), 400),
        (api.post(f"{api.base}/incidents", json={"incident": {"status": "investigating"}}), 422),
        (api.post(f"{api.base}/incidents", json={"incident": {"name": "x", "status": "panicking"}}), 422),
        (api.post(f"{api.base}/incidents", json={"incident": {"name": "x", "component_ids": ["nope"]}}), 404),
    ]
    for response, status in cases:
        assert response.status_code == status, response.text
        assert isinstance(response.json()["error"], str)


def test_outage_answers_503(api, page: StatusPage, faults: Faults) -> None:
    faults.add("outage", service="statuspage")
    response = api.patch(f"{api.base}/components/web-app", json={"component": {"status": "major_outage"}})
    assert response.status_code == 503
    assert page.components(PAGE)["web-app"]["status"] == "operational"
    faults.clear()
    faults.add("outage", service="smtp")
    assert api.get(f"{api.base}/components/web-app").status_code == 200


def _maintenance(**extra):
    return {
        "incident": {
            "name": "Release v1.1.0",
            "status": "scheduled",
            "body": "Deploying v1.1.0.",
            "scheduled_for": "2026-12-01T19:00:00Z",
            "scheduled_until": "2026-12-01T20:00:00+00:00",
            "scheduled_auto_in_progress": False,
            "scheduled_auto_completed": False,
            "auto_transition_to_maintenance_state": True,
            "auto_transition_to_operational_state": True,
            "component_ids": ["web-app"],
            **extra,
        }
    }


def test_scheduled_maintenance_lifecycle(api, page: StatusPage) -> None:
    created = api.post(f"{api.base}/incidents", json=_maintenance())
    assert created.status_code == 201, created.text
    maintenance = created.json()
    assert maintenance["status"] == "scheduled" and maintenance["resolved_at"] is None
    assert maintenance["scheduled_for"] == "2026-12-01T19:00:00.000000Z"
    assert maintenance["scheduled_until"] == "2026-12-01T20:00:00.000000Z"
    assert page.components(PAGE)["web-app"]["status"] == "operational"  # not before it starts
    assert [i["id"] for i in api.get(f"{api.base}/incidents/upcoming").json()] == [maintenance["id"]]
    assert api.get(f"{api.base}/incidents/unresolved").json() == []  # maintenances are listed apart

    started = api.patch(
        f"{api.base}/incidents/{maintenance['id']}", json={"incident": {"status": "in_progress"}}
    ).json()
    assert started["status"] == "in_progress"
    assert page.components(PAGE)["web-app"]["status"] == "under_maintenance"  # auto transition
    assert [i["id"] for i in api.get(f"{api.base}/incidents/active_maintenance").json()] == [started["id"]]
    assert api.get(f"{api.base}/incidents/upcoming").json() == []

    done = api.patch(
        f"{api.base}/incidents/{maintenance['id']}",
        json={"incident": {"status": "completed", "body": "v1.1.0 is live."}},
    ).json()
    assert done["status"] == "completed" and done["resolved_at"]
    assert page.components(PAGE)["web-app"]["status"] == "operational"
    assert [u["status"] for u in done["incident_updates"]] == ["completed", "in_progress", "scheduled"]
    assert api.get(f"{api.base}/incidents/active_maintenance").json() == []
    assert [i["id"] for i in api.get(f"{api.base}/incidents/scheduled").json()] == [maintenance["id"]]


def test_explicit_components_win_over_the_auto_transition(api, page: StatusPage) -> None:
    maintenance = api.post(f"{api.base}/incidents", json=_maintenance()).json()
    api.patch(
        f"{api.base}/incidents/{maintenance['id']}",
        json={"incident": {"status": "in_progress", "components": {"web-app": "degraded_performance"}}},
    )
    assert page.components(PAGE)["web-app"]["status"] == "degraded_performance"


def test_maintenance_and_incident_statuses_do_not_mix(api) -> None:
    maintenance = api.post(f"{api.base}/incidents", json=_maintenance()).json()
    incident = api.post(f"{api.base}/incidents", json={"incident": {"name": "Outage"}}).json()
    assert incident["status"] == "investigating" and incident["scheduled_for"] is None
    cases = [
        api.patch(f"{api.base}/incidents/{maintenance['id']}", json={"incident": {"status": "resolved"}}),
        api.patch(f"{api.base}/incidents/{incident['id']}", json={"incident": {"status": "completed"}}),
        api.post(f"{api.base}/incidents", json={"incident": {"name": "x", "status": "in_progress"}}),
        api.post(f"{api.base}/incidents", json=_maintenance(status="investigating")),
    ]
    assert [r.status_code for r in cases] == [422] * 4, [r.text for r in cases]


def test_maintenance_window_and_unknown_fields_are_refused(api, page: StatusPage) -> None:
    cases = [
        _maintenance(scheduled_until="2026-12-01T18:00:00Z"),
        _maintenance(scheduled_for="tomorrow"),
        _maintenance(scheduled_for="2026-12-01T19:00:00"),
        _maintenance(scheduled_end="2026-12-01T20:00:00Z"),
        {"incident": {"name": "Outage", "severity": "high"}},
        {"incident": {"name": "Outage", "metadata": {"run": "r1"}}},
    ]
    for body in cases:
        response = api.post(f"{api.base}/incidents", json=body)
        assert response.status_code == 422, (body, response.text)
        assert isinstance(response.json()["error"], str)
    assert "scheduled_end" in api.post(f"{api.base}/incidents", json=cases[3]).json()["error"]
    maintenance = api.post(f"{api.base}/incidents", json=_maintenance(metadata={"deployment": {"run": "r1"}}))
    maintenance = maintenance.json()
    assert maintenance["metadata"] == {"deployment": {"run": "r1"}}
    bad = api.patch(f"{api.base}/incidents/{maintenance['id']}", json={"incident": {"state": "in_progress"}})
    assert bad.status_code == 422
    component = api.patch(f"{api.base}/components/web-app", json={"component": {"colour": "red"}})
    assert component.status_code == 422
    assert page.incidents(PAGE)[0]["status"] == "scheduled"
