"""The release candidate's build: read its manifest, prove its bytes, hand out its template.

The contract (README "The artifact contract", written by scripts/publish_build.py):
``s3://<artifacts.bucket>/<artifacts.builds_prefix>/<commit_sha>/`` holds
``manifest.json`` (commit, version, build time, the staging run, every object's key,
size and SHA-256), ``template.yaml`` (what ``sam package`` wrote: each ``CodeUri`` an
S3 object of the build) and the code objects.

Integrity is checked by recomputing SHA-256 over the bytes read back from S3, not by
trusting a checksum S3 stores: ``sam package`` does not ask S3 for SHA-256 (S3 then
keeps only its default CRC64NVME), and an object uploaded in parts carries a composite
checksum (a checksum of the parts' checksums), which cannot be compared with the
whole-object SHA-256 of the manifest. Reading the objects costs one download of each
(Lambda packages: megabytes), a small price for the one proof that does not depend on
how the object was uploaded.

A build's digests are what the approvers see and what the deploy must match: the
manifest's SHA-256 (``manifest_sha256``) and the packaged template's
(``template_sha256``).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig

S3_URI = re.compile(r"^s3://(?P<bucket>[^/]+)/(?P<key>[^?]+)(\?versionId=(?P<version>.+))?$")


class ArtifactError(RuntimeError):
    """The build cannot be trusted or found; the message names the object at fault."""


def build_prefix(cfg: DeploymentConfig, commit_sha: str) -> str:
    return f"{cfg.artifacts.builds_prefix.strip('/')}/{commit_sha}"


def manifest_key(cfg: DeploymentConfig, commit_sha: str) -> str:
    return f"{build_prefix(cfg, commit_sha)}/manifest.json"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def s3_client(cfg: DeploymentConfig) -> Any:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from deployment.hooks.aws import hook_for

    return hook_for(cfg, S3Hook).conn


def _read(s3: Any, bucket: str, key: str) -> bytes | None:
    from botocore.exceptions import ClientError

    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as err:
        if err.response["Error"].get("Code") in ("NoSuchKey", "404", "NotFound"):
            return None
        raise


def read_manifest(cfg: DeploymentConfig, commit_sha: str, s3: Any = None) -> tuple[dict[str, Any], str]:
    """The manifest of ``commit_sha``'s build and its SHA-256; raises naming the key when absent."""
    s3 = s3 or s3_client(cfg)
    key = manifest_key(cfg, commit_sha)
    raw = _read(s3, cfg.artifacts.bucket, key)
    if raw is None:
        raise ArtifactError(
            f"no build manifest s3://{cfg.artifacts.bucket}/{key}: commit {commit_sha} was never "
            "built and published by staging (scripts/publish_build.py)"
        )
    try:
        manifest = json.loads(raw)
    except ValueError as err:
        raise ArtifactError(f"the manifest s3://{cfg.artifacts.bucket}/{key} is not JSON: {err}") from None
    return manifest, sha256_hex(raw)


def template_code_uris(body: str) -> list[tuple[str, str]]:
    """``(bucket, key)`` of every code object a packaged template names (SAM and plain Lambda)."""
    from deployment.sam import parse_template

    found = []
    for resource in (parse_template(body).get("Resources") or {}).values():
        properties = resource.get("Properties") or {}
        code_uri = properties.get("CodeUri")
        if isinstance(code_uri, str):
            match = S3_URI.match(code_uri)
            if not match:
                raise ArtifactError(f"CodeUri {code_uri!r} is not an S3 object: the template is not packaged")
            found.append((match["bucket"], match["key"]))
        elif isinstance(code_uri, dict):
            found.append((code_uri.get("Bucket"), code_uri.get("Key")))
        code = properties.get("Code")
        if isinstance(code, dict) and "S3Key" in code:
            found.append((code.get("S3Bucket"), code.get("S3Key")))
    return sorted(found)


def _check_object(s3: Any, bucket: str, entry: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
    key = entry.get("key")
    data = _read(s3, bucket, key)
    if data is None:
        raise ArtifactError(f"build object s3://{bucket}/{key} is missing")
    actual = sha256_hex(data)
    if actual != entry.get("sha256"):
        raise ArtifactError(
            f"build object s3://{bucket}/{key} was changed: its SHA-256 is {actual}, "
            f"the manifest says {entry.get('sha256')}"
        )
    return data, {"key": key, "sha256": actual, "size": len(data)}


def verify_build(cfg: DeploymentConfig, commit_sha: str, version: str, s3: Any = None) -> dict[str, Any]:
    """Prove ``commit_sha``'s build: manifest present and naming ``version``, every object's SHA-256.

    Returns ``{commit_sha, version, manifest_key, manifest_sha256, template_key,
    template_sha256, objects, built_at, staging_run}``; raises :class:`ArtifactError`
    naming the manifest or object at fault.
    """
    s3 = s3 or s3_client(cfg)
    bucket = cfg.artifacts.bucket
    manifest, manifest_sha256 = read_manifest(cfg, commit_sha, s3)
    where = f"s3://{bucket}/{manifest_key(cfg, commit_sha)}"
    if manifest.get("commit_sha") != commit_sha:
        raise ArtifactError(
            f"the manifest {where} is for commit {manifest.get('commit_sha')}, not {commit_sha}"
        )
    if manifest.get("version") != version:
        raise ArtifactError(f"the manifest {where} names version {manifest.get('version')}, not {version}")
    prefix = build_prefix(cfg, commit_sha) + "/"
    entries = [manifest.get("template") or {}, *(manifest.get("objects") or [])]
    for entry in entries:
        if not str(entry.get("key", "")).startswith(prefix):
            raise ArtifactError(
                f"the manifest {where} lists {entry.get('key')!r}, outside s3://{bucket}/{prefix}"
            )
    template_bytes, template = _check_object(s3, bucket, entries[0])
    objects = [_check_object(s3, bucket, entry)[1] for entry in entries[1:]]
    listed = {o["key"] for o in objects}
    for uri_bucket, key in template_code_uris(template_bytes.decode()):
        if uri_bucket != bucket or key not in listed:
            raise ArtifactError(
                f"the packaged template {template['key']} points at s3://{uri_bucket}/{key}, "
                f"which the manifest {where} does not list"
            )
    return {
        "commit_sha": commit_sha,
        "version": version,
        "bucket": bucket,
        "manifest_key": manifest_key(cfg, commit_sha),
        "manifest_sha256": manifest_sha256,
        "template_key": template["key"],
        "template_sha256": template["sha256"],
        "objects": objects,
        "built_at": manifest.get("built_at"),
        "staging_run": manifest.get("staging_run"),
    }


def packaged_template(cfg: DeploymentConfig, commit_sha: str, expected_sha256: str, s3: Any = None) -> str:
    """The packaged template of ``commit_sha``'s build, only if its SHA-256 is ``expected_sha256``.

    The deploy calls this with the digest the approvers saw: a template published
    again since (same key, other bytes) stops the run before anything changes.
    """
    s3 = s3 or s3_client(cfg)
    key = f"{build_prefix(cfg, commit_sha)}/template.yaml"
    data = _read(s3, cfg.artifacts.bucket, key)
    if data is None:
        raise ArtifactError(f"the packaged template s3://{cfg.artifacts.bucket}/{key} is missing")
    actual = sha256_hex(data)
    if actual != expected_sha256:
        raise ArtifactError(
            f"the packaged template s3://{cfg.artifacts.bucket}/{key} has SHA-256 {actual}, "
            f"not the {expected_sha256} that was verified and approved"
        )
    return data.decode()


def code_objects(build: dict[str, Any]) -> dict[str, str]:
    """``{key: sha256}`` of a verified build's code objects (for comparing with what runs)."""
    return {o["key"]: o["sha256"] for o in build.get("objects", [])}


def build_of_template(
    cfg: DeploymentConfig, template_body: str, version: str, s3: Any = None
) -> dict[str, Any]:
    """Verify the build a deployed (or backed-up) template runs, before a rollback puts it back.

    The commit comes from the template's own code objects (``<builds_prefix>/<commit>/code/...``),
    so this works for any template a build produced, packaged or transformed; the build is
    then proven with :func:`verify_build` for ``version``. Raises :class:`ArtifactError` when
    the template's code is not one verified build's.
    """
    prefix = cfg.artifacts.builds_prefix.strip("/") + "/"
    uris = template_code_uris(template_body)
    commits = {
        key.removeprefix(prefix).split("/", 1)[0]
        for bucket, key in uris
        if bucket == cfg.artifacts.bucket and str(key).startswith(prefix)
    }
    if len(commits) != 1 or len(uris) == 0:
        raise ArtifactError(
            f"the template's code objects {[f's3://{b}/{k}' for b, k in uris]} are not one build's "
            f"(under s3://{cfg.artifacts.bucket}/{prefix}<commit>/)"
        )
    build = verify_build(cfg, commits.pop(), version, s3)
    running = {key for _, key in uris}
    if not running <= set(code_objects(build)):
        raise ArtifactError(
            f"the template runs {sorted(running)}, not all of them objects of {build['manifest_key']}"
        )
    return build
