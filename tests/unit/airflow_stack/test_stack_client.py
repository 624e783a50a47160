"""The stack's REST client asks a stalled read again, never repeats a write that may have been
applied (only one Airflow rolled back), and answers an approval only once the scheduler has
processed its parking."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime

import pytest
import requests
from werkzeug.wrappers import Request, Response

from airflow_stack.client import RESPONSE_SETTLE_SECONDS, AirflowClient
from airflow_stack.scheduler_log import SchedulerLog
from tests.sandbox._servers import serving


class CountingApi:
    """Answers a token, and counts the calls of each path; ``answer`` says what the n-th one gets."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    def answer(self, n: int) -> tuple[dict, int]:
        raise NotImplementedError

    def __call__(self, environ, start_response):
        request = Request(environ)
        if request.path == "/auth/token":
            body, status = {"access_token": "t"}, 201
        else:
            key = f"{request.method} {request.path}"
            self.calls[key] = self.calls.get(key, 0) + 1
            body, status = self.answer(self.calls[key])
        return Response(json.dumps(body), status, mimetype="application/json")(environ, start_response)


class StallingApi(CountingApi):
    """Stalls the first ``stalls`` calls of each path past the client's timeout."""

    def __init__(self, stalls: int) -> None:
        super().__init__()
        self.stalls = stalls

    def answer(self, n: int) -> tuple[dict, int]:
        if n <= self.stalls:
            time.sleep(0.6)
        return {"state": "running"}, 200


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


class RolledBackApi(CountingApi):
    """Answers the first call of each path as Airflow 3.3.2 answers a failed statement."""

    def answer(self, n: int) -> tuple[dict, int]:
        if n == 1:
            reason = {"reason": "Database error", "statement": "hidden", "orig_error": "hidden"}
            return {"detail": {**reason, "message": "Serious error ..."}}, 500
        return {"state": "failed"}, 200


def test_a_write_airflow_rolled_back_is_asked_again():
    api = RolledBackApi()
    with serving(api) as url:
        client = AirflowClient(url, "ci", "ci-pass", timeout=5)
        done = client.request("PATCH", "/dags/deploy_production/dagRuns/r1", json={"state": "failed"})
    assert done == {"state": "failed"}
    assert api.calls == {"PATCH /api/v2/dags/deploy_production/dagRuns/r1": 2}


# The line a real-engine stack's scheduler wrote when it processed the parking of an approval.
PARKED_LINE = (
    "2026-12-02T15:45:08.000820Z [info     ] TaskInstance Finished: dag_id=deploy_production, "
    "task_id=approval_gate.first_approval, run_id=matrix__killed__1796226297791, map_index=-1, "
    "ti_id=01a2376e-30eb-7eb9-857c-ad50adda6b25, run_start_date=2026-12-02 15:45:06.644613+00:00, "
    "run_end_date=None, run_duration=None, state=awaiting_input, executor=LocalExecutor(parallelism=8), "
    "executor_state=success, try_number=1, max_tries=0, pool=default_pool, queue=default, "
    "priority_weight=42, "
    "operator=ReleaseApprovalOperator, queued_dttm=2026-12-02 15:45:06.611356+00:00, "
    "scheduled_dttm=2026-12-02 15:45:06.585560+00:00,queued_by_job_id=3, pid=16727 "
    "[airflow.jobs.scheduler_job_runner.SchedulerJobRunner] loc=scheduler_job_runner.py:1439\n"
)
APPROVAL = {"id": "01a2376e-30eb-7eb9-857c-ad50adda6b25", "try_number": 1, "state": "awaiting_input"}


def test_the_scheduler_log_tells_which_tries_it_saw_parked(tmp_path):
    path = tmp_path / "scheduler.log"
    log = SchedulerLog(path)
    assert not log.parked(APPROVAL)  # no log yet
    resumed = PARKED_LINE.replace("state=awaiting_input", "state=success")
    path.write_text(resumed + PARKED_LINE.replace("try_number=1,", "try_number=2,") + PARKED_LINE[:200])
    assert not log.parked(APPROVAL)  # another state, another try, a line not yet complete
    with path.open("a") as out:
        out.write(PARKED_LINE[200:])
    assert log.parked(APPROVAL)
    assert log.parked({**APPROVAL, "try_number": 2})
    path.write_text("restarted\n")  # a new, shorter file is read from its start
    assert log.parked(APPROVAL)
    assert not log.parked({**APPROVAL, "id": "01a2376e-0000-7eb9-857c-ad50adda6b25"})


class ApprovalApi:
    """An approval requested just now, parked; records whether the scheduler had logged the parking
    when the answer came."""

    def __init__(self, log_path) -> None:
        self.log_path = log_path
        self.answered_after_parking: list[bool] = []

    def __call__(self, environ, start_response):
        request = Request(environ)
        if request.path == "/auth/token":
            body = {"access_token": "t"}
        elif request.path.endswith("/hitlDetails") and request.method == "GET":
            body = {"created_at": datetime.now(UTC).isoformat()}
        elif request.path.endswith("/hitlDetails"):
            self.answered_after_parking.append("state=awaiting_input" in self.log_path.read_text())
            body = {"chosen_options": ["Approve"]}
        else:
            body = APPROVAL
        return Response(json.dumps(body), 200, mimetype="application/json")(environ, start_response)


def test_a_scripted_answer_waits_for_the_scheduler_to_process_the_parking(tmp_path):
    path = tmp_path / "scheduler.log"
    path.write_text("")
    api = ApprovalApi(path)
    with serving(api) as url:
        client = AirflowClient(url, "bob", "bob-pass", parked=SchedulerLog(path).parked)
        writer = threading.Timer(0.3, lambda: path.write_text(PARKED_LINE))
        writer.start()
        started = time.monotonic()
        client.respond("r1", "approval_gate.first_approval")
        answered_in = time.monotonic() - started
        writer.join()
    assert api.answered_after_parking == [True]
    # Not the fixed settle of a client that cannot read the log (3 s after the request).
    assert answered_in < RESPONSE_SETTLE_SECONDS, answered_in
