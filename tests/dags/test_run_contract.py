"""The conf CI sends is validated by the DAG's Params, exactly as run creation does."""

from __future__ import annotations

import copy

import pytest
from airflow.exceptions import ParamValidationError
from airflow.sdk.definitions.param import ParamsDict

from deployment.run_contract import release_params

GOOD = {"version": "v1.2.3", "commit_sha": "a" * 40, "author": "dave"}


def validate(conf: dict) -> dict:
    params = ParamsDict(release_params())
    for key, value in conf.items():
        params[key] = value
    return params.validate()


def test_good_conf_gets_default_emergency_flags():
    resolved = validate(GOOD)
    assert resolved["emergency"] == {
        "force_deploy": False,
        "skip_monitoring": False,
        "ignore_alarms": [],
        "reason": "",
    }


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"version": "1.2.3"}, "version"),
        ({"version": "v1.2"}, "version"),
        ({"commit_sha": "abc123"}, "commit_sha"),
        ({"commit_sha": "A" * 40}, "commit_sha"),
        ({"author": ""}, "author"),
        ({"author": "<!channel>"}, "author"),
        ({"author": "dave@example.com"}, "author"),
        ({"author": "-dave"}, "author"),
        ({"author": "d" * 40}, "author"),
        ({"emergency": {"force_deploy": True, "reason": "r" * 501}}, "emergency"),
        ({"emergency": {"ignore_alarms": ["a\nb"], "reason": "a long enough reason"}}, "emergency"),
        ({"emergency": {"force_deploy": True}}, "emergency"),
        ({"emergency": {"skip_monitoring": True, "reason": "short"}}, "emergency"),
        ({"emergency": {"ignore_alarms": ["x"]}}, "emergency"),
        ({"emergency": {"force_deploy": "yes", "reason": "a long enough reason"}}, "emergency"),
        ({"emergency": {"unknown_flag": True}}, "emergency"),
    ],
)
def test_bad_conf_is_refused_naming_the_param(change, field):
    conf = {**copy.deepcopy(GOOD), **change}
    with pytest.raises(ParamValidationError, match=f"Invalid input for param {field}:"):
        validate(conf)


@pytest.mark.parametrize("missing", ["version", "commit_sha", "author"])
def test_required_fields(missing):
    conf = {k: v for k, v in GOOD.items() if k != missing}
    with pytest.raises(ParamValidationError, match=f"param {missing}"):
        validate(conf)


def test_emergency_with_reason_is_accepted():
    conf = {
        **GOOD,
        "emergency": {
            "force_deploy": True,
            "skip_monitoring": True,
            "reason": "CVE-2026-1234 hotfix, outage in progress",
        },
    }
    assert validate(conf)["emergency"]["force_deploy"] is True


def test_reason_and_alarm_names_may_hold_any_printable_text():
    conf = {
        **GOOD,
        "author": "Dave-Dev",
        "emergency": {"ignore_alarms": ["<!channel> alarm"], "reason": "<!channel> " + "r" * 489},
    }
    assert validate(conf)["emergency"]["reason"].startswith("<!channel>")


def test_only_emergency_users_may_set_flags():
    from deployment.run_contract import EmergencyNotAllowed, check_emergency_allowed

    flagged = {**GOOD, "emergency": {"force_deploy": True, "reason": "a long enough reason"}}
    check_emergency_allowed(["Alice"], flagged, "alice")
    check_emergency_allowed([], GOOD, "ci")
    with pytest.raises(EmergencyNotAllowed, match=r"\['force_deploy'\] need a run triggered by one of"):
        check_emergency_allowed(["alice"], flagged, "ci")
    with pytest.raises(EmergencyNotAllowed):
        check_emergency_allowed(["alice"], flagged, None)


def test_copies_of_the_params_share_each_schema_but_not_the_values():
    params = ParamsDict(release_params())
    copied = copy.deepcopy(params)
    for name in params:
        assert copied.get_param(name).schema is params.get_param(name).schema
    assert copied.get_param("emergency").value == params.get_param("emergency").value
    assert copied.get_param("emergency").value is not params.get_param("emergency").value
    copied["emergency"] = {"force_deploy": True, "reason": "a long enough reason"}
    assert params["emergency"]["force_deploy"] is False


def test_the_shared_schemas_serialize_as_the_plain_schemas_did():
    from airflow.sdk import Param
    from airflow.serialization.serialized_objects import BaseSerialization

    shared = release_params()
    plain = {k: Param(p.value, p.description, schema=dict(p.schema)) for k, p in shared.items()}
    serialized = BaseSerialization._serialize_params_dict(shared)
    assert serialized == BaseSerialization._serialize_params_dict(plain)
    assert [key for key, _ in serialized] == ["version", "commit_sha", "author", "emergency"]
    assert serialized[3][1]["schema"]["__var"]["title"] == "Emergency flags"
