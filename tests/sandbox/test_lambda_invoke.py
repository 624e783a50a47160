"""Invoke of the API function by qualifier: the version named (or the alias's draw) answers as the
release it runs, with the faults matched by that release or that version."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from botocore.exceptions import ClientError

from sandbox.launcher import SMOKE_ACCOUNT
from tests.sandbox._alias_stack import new_stack, release, template


@pytest.fixture
def lam(aws):
    return aws("lambda")


@pytest.fixture
def function(aws):
    """A function with version 1 running v1.0.0 and version 2 running v1.1.0, alias live on 1."""
    cfn = aws("cloudformation")
    stack = new_stack(cfn)
    release(cfn, stack, "v1.1.0", "1", body=template())
    return f"{stack}-api"


def invoke(lam, function, qualifier, path="/health", body=None, method=None):
    event = {"httpMethod": method or ("GET" if body is None else "POST"), "path": path, "headers": {}}
    if body is not None:
        event["body"] = json.dumps(body)
    found = lam.invoke(FunctionName=function, Qualifier=qualifier, Payload=json.dumps(event))
    payload = json.loads(found["Payload"].read())
    assert found["StatusCode"] == 200
    return found["ExecutedVersion"], found.get("FunctionError"), payload


def test_each_version_answers_as_the_release_it_runs(lam, function):
    for qualifier, release_ in (("1", "v1.0.0"), ("2", "v1.1.0")):
        executed, error, payload = invoke(lam, function, qualifier)
        assert (executed, error, payload["statusCode"]) == (qualifier, None, 200)
        assert json.loads(payload["body"]) == {
            "status": "ok",
            "version": release_,
            "function_version": qualifier,
        }
    executed, _, payload = invoke(lam, function, "live")
    assert executed == "1" and json.loads(payload["body"])["version"] == "v1.0.0"


def test_the_smoke_checks_reach_a_version_through_its_api(sandbox, lam, function):
    credentials = {"username": SMOKE_ACCOUNT["login"], "password": SMOKE_ACCOUNT["password"]}
    _, error, payload = invoke(lam, function, "2", "/api/auth/session", credentials)
    assert error is None and payload["statusCode"] == 200 and "token" in json.loads(payload["body"])
    _, _, refused = invoke(lam, function, "2", "/api/auth/session", {**credentials, "password": "no"})
    assert refused["statusCode"] == 401
    _, _, missing = invoke(lam, function, "2", "/api/nope", {})
    assert missing["statusCode"] == 404

    sandbox.faults.add("smoke_failure", backend_version="v1.1.0", check="payment_processing")
    payment = {"amount": 100, "currency": "EUR"}
    assert invoke(lam, function, "2", "/api/payments/intent", payment)[2]["statusCode"] == 500  # answered
    assert invoke(lam, function, "1", "/api/payments/intent", payment)[2]["statusCode"] == 200
    recorded = sandbox.recorders["lambda"].list(path="/api/auth/session")
    assert [(r["executed_version"], r["release"], r["status"]) for r in recorded] == [
        ("2", "v1.1.0", 200),
        ("2", "v1.1.0", 401),
    ]
    assert all(r["json"]["password"] == "***" for r in recorded)


def test_a_fault_on_the_new_release_fails_only_the_new_versions_invocations(sandbox, lam, function):
    sandbox.faults.add("error_rate", backend_version="v1.1.0", percent=100)
    generate = {"prompt": "hello"}
    executed, error, payload = invoke(lam, function, "2", "/api/ai/generate", generate)
    assert (executed, error) == ("2", "Unhandled") and "errorMessage" in payload
    assert invoke(lam, function, "1", "/api/ai/generate", generate)[1] is None
    assert invoke(lam, function, "2")[1] is None  # /health is spared, as the apps spare it

    lam.update_alias(
        FunctionName=function, Name="live", RoutingConfig={"AdditionalVersionWeights": {"2": 0.5}}
    )
    outcomes = Counter(invoke(lam, function, "live", "/api/ai/generate", generate)[:2] for _ in range(60))
    assert set(outcomes) == {("1", None), ("2", "Unhandled")}  # drawn by the alias's weight, both seen


def test_a_stalled_version_times_out(sandbox, lam, function):
    sandbox.faults.add("stall", function_version="2")
    executed, error, payload = invoke(lam, function, "2", "/api/ai/generate", {"prompt": "x"})
    assert (executed, error) == ("2", "Unhandled")
    assert payload == {"errorMessage": "Task timed out after 3.00 seconds"}  # the function's Timeout


def test_unknown_versions_and_aliases_are_not_found(lam, function):
    for qualifier in ("9", "canary"):
        with pytest.raises(ClientError) as info:
            invoke(lam, function, qualifier)
        assert info.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as info:
        invoke(lam, "no-such-function", "1")
    assert info.value.response["Error"]["Code"] == "ResourceNotFoundException"
