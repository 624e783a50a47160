"""The stack's REST client asks a stalled read again, and never repeats a write."""

from __future__ import annotations

import json
import time

import pytest
import requests
from werkzeug.wrappers import Request, Response

from airflow_stack.client import AirflowClient
from tests.sandbox._servers import serving


class StallingApi:
    """Answers a token, then stalls the first ``stalls`` calls of each path past the client's timeout."""

    def __init__(self, stalls: int) -> None:
        self.stalls = stalls
        self.calls: dict[str, int] = {}

    def __call__(self, environ, start_response):
        request = Request(environ)
        if request.path == "/auth/token":
            body, status = {"access_token": "t"}, 201
        else:
            key = f"{request.method} {request.path}"
            self.calls[key] = self.calls.get(key, 0) + 1
            if self.calls[key] <= self.stalls:
                time.sleep(0.6)
            body, status = {"state": "running"}, 200
        return Response(json.dumps(body), status, mimetype="application/json")(environ, start_response)


def test_a_read_that_times_out_is_asked_again():
    api = StallingApi(stalls=1)
    with serving(api) as url:
        client = AirflowClient(url, "ci", "ci-pass", timeout=0.3)
        assert client.run("r1") == {"state": "running"}
    assert api.calls == {"GET /api/v2/dags/deploy_production/dagRuns/r1": 2}


def test_a_write_that_times_out_is_not_repeated():
    api = StallingApi(stalls=1)
    with serving(api) as url:
        client = AirflowClient(url, "ci", "ci-pass", timeout=0.3)
        with pytest.raises(requests.Timeout):
            client.request("PATCH", "/dags/deploy_production/dagRuns/r1", json={"state": "failed"})
    assert api.calls == {"PATCH /api/v2/dags/deploy_production/dagRuns/r1": 1}
