"""The run contract of ``deploy_production``: the conf CI sends, as typed Params.

Airflow validates each Param against its own JSON schema when the run is
created, so a malformed conf is refused with HTTP 400 naming the param. The
rule that spans fields (an emergency flag needs a reason) lives inside the one
object param ``emergency`` so that a single schema can hold it.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param

from deployment.config import GITHUB_LOGIN

# The DAGs this contract is for, and the release's last task (its outcome).
RELEASE_DAG_ID, ROLLBACK_DAG_ID = "deploy_production", "rollback_production"
OUTCOME_TASK_ID = "record_outcome"
VERSION_PATTERN = r"^v\d+\.\d+\.\d+$"
SHA_PATTERN = r"^[0-9a-f]{40}$"
MIN_REASON_LENGTH = 10
MAX_REASON_LENGTH = 500
# CloudWatch alarm names: printable ASCII, 1-255 characters (no control characters or newlines).
ALARM_NAME_PATTERN = r"^[\x20-\x7e]{1,255}$"

_REASON_REQUIRED = {"required": ["reason"], "properties": {"reason": {"minLength": MIN_REASON_LENGTH}}}


class EmergencyNotAllowed(PermissionError):
    """Emergency flags set by someone not in ``emergency_users``."""


EMERGENCY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "force_deploy": {"type": "boolean", "description": "Skip pre-deployment validation."},
        "skip_monitoring": {"type": "boolean", "description": "Skip the post-deployment monitoring."},
        "ignore_alarms": {
            "type": "array",
            "items": {"type": "string", "pattern": ALARM_NAME_PATTERN},
            "maxItems": 50,
            "uniqueItems": True,
            "description": "Alarms already in ALARM that may stay so during the infrastructure deploy.",
        },
        "reason": {"type": "string", "maxLength": MAX_REASON_LENGTH},
    },
    "allOf": [
        {
            "if": {"properties": {flag: {"const": True}}, "required": [flag]},
            "then": _REASON_REQUIRED,
        }
        for flag in ("force_deploy", "skip_monitoring")
    ]
    + [
        {
            "if": {"properties": {"ignore_alarms": {"minItems": 1}}, "required": ["ignore_alarms"]},
            "then": _REASON_REQUIRED,
        }
    ],
}

NO_EMERGENCY: dict[str, Any] = {
    "force_deploy": False,
    "skip_monitoring": False,
    "ignore_alarms": [],
    "reason": "",
}


class SharedSchema(dict):
    """A Param's JSON schema, one object for every copy Airflow makes of the Param.

    Airflow deep-copies the DAG's Params into each operator it builds, once per ``__init__`` layer
    (211 copies for deploy_production's 54 tasks), and the schemas, ``emergency``'s above all, were
    most of each copy: ~28 ms of every parse, in every task process. A schema is only read (validated
    against, serialized as the dict it is), so the copies share it; each copy keeps its own value.
    """

    def __deepcopy__(self, memo: dict[int, Any]) -> SharedSchema:
        return self


def release_params() -> dict[str, Param]:
    return {
        "version": Param(
            description="The release tag, vMAJOR.MINOR.PATCH; rc-MAJOR.MINOR.PATCH must exist.",
            schema=SharedSchema(type="string", pattern=VERSION_PATTERN, title="Version"),
        ),
        "commit_sha": Param(
            description="The full 40-character lowercase commit SHA the tag points at.",
            schema=SharedSchema(type="string", pattern=SHA_PATTERN, title="Commit"),
        ),
        "author": Param(
            description="Who cut the release: their GitHub login (mapped to an Airflow user by the "
            "config's people); they cannot approve it.",
            schema=SharedSchema(type="string", pattern=GITHUB_LOGIN, maxLength=39, title="Author"),
        ),
        "emergency": Param(
            dict(NO_EMERGENCY),
            description=(
                "force_deploy skips pre-deployment validation; skip_monitoring skips the "
                f"post-deployment monitoring; ignore_alarms lists alarms allowed to be firing. "
                f"Any of them needs a reason of {MIN_REASON_LENGTH}-{MAX_REASON_LENGTH} characters and a "
                "triggering user listed in emergency_users; all are announced to the team channel "
                "before the approval gate and written to the deployment record."
            ),
            schema=SharedSchema(title="Emergency flags", **EMERGENCY_SCHEMA),
        ),
    }


def emergency_flags(params: dict[str, Any]) -> dict[str, Any]:
    """The run's emergency settings with defaults filled in."""
    return {**NO_EMERGENCY, **(params.get("emergency") or {})}


def active_emergency(params: dict[str, Any]) -> list[str]:
    """The names of the emergency flags set in ``params``."""
    flags = emergency_flags(params)
    return [name for name in ("force_deploy", "skip_monitoring", "ignore_alarms") if flags[name]]


def check_emergency_allowed(
    emergency_users: list[str], params: dict[str, Any], triggering_user: str | None
) -> None:
    """Raise unless no flag is set or the run's triggering user is in ``emergency_users``."""
    active = active_emergency(params)
    allowed = {u.lower() for u in emergency_users}
    if active and (triggering_user or "").lower() not in allowed:
        raise EmergencyNotAllowed(
            f"emergency flags {active} need a run triggered by one of emergency_users {sorted(allowed)}; "
            f"this run was triggered by {triggering_user or 'nobody known'}"
        )
