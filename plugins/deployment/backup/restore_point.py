"""The backup read back: the restore point a rollback returns to.

The ``backup`` section (``deployment.backup.take.write_manifest``): ``previous_version``,
``stack.{template_uri, parameters}``, ``dynamodb[].backup_arn``,
``amplify.{colour, branches.<colour>.variable_hmac_sha256, environment_object}``. What it shows
(the version and the colour live at the backup), the stack's template and parameters, the
branches' variables (checked against the record's hashes) and the DynamoDB backups.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from deployment.traffic.router import COLOURS

if TYPE_CHECKING:
    from deployment.config import Colour, DeploymentConfig


class RollbackError(RuntimeError):
    """A step that could not bring production back, with what it found."""


def backup_live_colour(backup: dict[str, Any]) -> Colour | None:
    colour = (backup.get("amplify") or {}).get("colour")
    return colour if colour in COLOURS else None


def backup_version(cfg: DeploymentConfig, backup: dict[str, Any]) -> str | None:
    """The version production ran when the backup was taken."""
    parameters = (backup.get("stack") or {}).get("parameters") or {}
    return backup.get("previous_version") or parameters.get(cfg.stack.version_parameter)


def backup_branch_environment(
    cfg: DeploymentConfig, backup: dict[str, Any], colour: Colour
) -> tuple[dict[str, str] | None, str]:
    """The variables ``colour``'s branch had at the backup, with values, and where they came from.

    The record holds names and keyed hashes only (``branches.<colour>.variable_hmac_sha256``);
    the values and the hash key are read from the backup's SSE-KMS object
    (``amplify.environment_object``, by its S3 version when the bucket keeps versions) and each
    value is checked against the record's hash. ``(None, why)`` when the object is unreadable
    or differs from the record: then nothing from it is restored. A record written by an earlier
    version of the pipeline holds the values themselves.
    """
    amplify = backup.get("amplify") or {}
    entry = (amplify.get("branches") or {}).get(colour)
    if not isinstance(entry, dict):
        return None, f"the backup holds no variables for the {colour} branch"
    if isinstance(entry.get("environment_variables"), dict):  # an earlier pipeline's record
        return dict(entry["environment_variables"]), "backup"
    hashes, where = entry.get("variable_hmac_sha256"), amplify.get("environment_object") or {}
    if not isinstance(hashes, dict) or not where.get("key"):
        return None, f"the backup holds no variable hashes or values object for the {colour} branch"
    from deployment.aws.amplify import variable_hashes
    from deployment.aws.artifacts import s3_client

    s3 = s3_client(cfg)
    version = {"VersionId": where["version_id"]} if where.get("version_id") else {}
    try:
        body = json.loads(s3.get_object(Bucket=where["bucket"], Key=where["key"], **version)["Body"].read())
        env, hash_key = dict(body["branches"][colour]["environment_variables"]), body["hmac_key"]
    except Exception as err:  # noqa: BLE001 - any failure to read means: not restorable from it
        return None, f"the backed-up values s3://{where['bucket']}/{where['key']} could not be read ({err})"
    found = variable_hashes(env, hash_key)
    wrong = sorted(name for name in {*found, *hashes} if found.get(name) != hashes.get(name))
    if wrong:
        return None, (
            f"the backed-up values s3://{where['bucket']}/{where['key']} do not match the record's "
            f"hashes for {', '.join(wrong)}"
        )
    return env, f"backup (s3://{where['bucket']}/{where['key']}, hashes checked)"


def dynamodb_backups(backup: dict[str, Any]) -> list[dict[str, Any]]:
    return list(backup.get("dynamodb") or [])


def _s3_read(cfg: DeploymentConfig, uri: str) -> str:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from deployment.hooks.aws import hook_for

    if not uri.startswith("s3://"):
        raise RollbackError(f"backup location {uri!r} is not an s3:// URI")
    bucket, key = S3Hook.parse_s3_url(uri)
    return hook_for(cfg, S3Hook).read_key(key, bucket_name=bucket)


def _parameters(value: Any) -> dict[str, str]:
    """Stack parameters as ``{key: value}`` from a dict or a describe_stacks-style list."""
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    if isinstance(value, list):
        return {p["ParameterKey"]: str(p.get("ParameterValue", "")) for p in value}
    raise RollbackError(f"backed-up parameters have an unknown shape: {type(value).__name__}")


def load_backed_up_stack(cfg: DeploymentConfig, backup: dict[str, Any]) -> dict[str, Any]:
    """The backed-up template body (read from S3) and parameters."""
    stack = backup.get("stack") or {}
    if not stack.get("template_uri") or stack.get("parameters") is None:
        raise RollbackError("the backup section has no stack.template_uri / stack.parameters to restore from")
    body = _s3_read(cfg, stack["template_uri"])
    return {"template_body": body, "parameters": _parameters(stack["parameters"])}
