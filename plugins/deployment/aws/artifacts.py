"""The release candidate's build: read its manifest, prove its bytes, hand out its template.

The contract (README "The artifact contract", written by scripts/publish_build.py):
``s3://<artifacts.bucket>/<artifacts.builds_prefix>/<commit_sha>/`` holds
``manifest.json`` (commit, version, build time, the staging run, every object's key,
S3 version id, size and SHA-256), ``template.yaml`` (the packaged template: each
function's code named by bucket, key *and* version) and the code objects.

A key is not an identity: in a versioned bucket anyone who may write the key can put
other bytes under it, and a template naming code by key alone deploys whatever the key
holds when CloudFormation reads it. So the build is pinned by S3 version id (the bucket
must keep versions), and a version's bytes are proven three times: before approval
(:func:`verify_build`), right before the change set executes (:func:`prove_approved_build`)
and, for a rollback target, from the template put back (:func:`build_of_template`).

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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig

S3_URI = re.compile(r"^s3://(?P<bucket>[^/]+)/(?P<key>[^?]+)(\?versionId=(?P<version>.+))?$")
MISSING = ("NoSuchKey", "NoSuchVersion", "404", "NotFound")


class ArtifactError(RuntimeError):
    """The build cannot be trusted or found; the message names the object at fault."""


@dataclass(frozen=True)
class CodeRef:
    """A code object a template's resource names: bucket, key and S3 version (None: not pinned)."""

    logical_id: str
    bucket: str | None
    key: str | None
    version: str | None

    @property
    def uri(self) -> str:
        pinned = f"?versionId={self.version}" if self.version else ""
        return f"s3://{self.bucket}/{self.key}{pinned}"


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


def _read(s3: Any, bucket: str, key: str, version: str | None = None) -> tuple[bytes, str | None] | None:
    """The bytes of ``key`` (of its ``version`` when given) and their version id; None when absent."""
    from botocore.exceptions import ClientError

    pinned = {"VersionId": version} if version else {}
    try:
        found = s3.get_object(Bucket=bucket, Key=key, **pinned)
    except ClientError as err:
        if err.response["Error"].get("Code") in MISSING:
            return None
        raise
    return found["Body"].read(), found.get("VersionId")


def newest_version(s3: Any, bucket: str, key: str) -> str | None:
    """The version id a read of ``key`` without a version gets now (None: deleted or never versioned)."""
    from botocore.exceptions import ClientError

    try:
        return s3.head_object(Bucket=bucket, Key=key).get("VersionId")
    except ClientError as err:
        if err.response["Error"].get("Code") in MISSING:
            return None
        raise


def read_manifest(
    cfg: DeploymentConfig, commit_sha: str, s3: Any = None
) -> tuple[dict[str, Any], str, str | None]:
    """The manifest of ``commit_sha``'s build, its SHA-256 and S3 version; raises naming its key if absent."""
    s3 = s3 or s3_client(cfg)
    key = manifest_key(cfg, commit_sha)
    found = _read(s3, cfg.artifacts.bucket, key)
    if found is None:
        raise ArtifactError(
            f"no build manifest s3://{cfg.artifacts.bucket}/{key}: commit {commit_sha} was never "
            "built and published by staging (scripts/publish_build.py)"
        )
    raw, version = found
    try:
        manifest = json.loads(raw)
    except ValueError as err:
        raise ArtifactError(f"the manifest s3://{cfg.artifacts.bucket}/{key} is not JSON: {err}") from None
    return manifest, sha256_hex(raw), version


def template_code(body: str) -> list[CodeRef]:
    """Every code object a template names, per resource: a SAM function's ``CodeUri`` (an
    ``s3://`` URI, optionally ``?versionId=``, or ``{Bucket, Key, Version}``) or a Lambda
    function's ``Code`` (``{S3Bucket, S3Key, S3ObjectVersion}``), the form SAM transforms it into."""
    from deployment.aws.sam import parse_template

    found = []
    for logical_id, resource in (parse_template(body).get("Resources") or {}).items():
        properties = resource.get("Properties") or {}
        code_uri = properties.get("CodeUri")
        if isinstance(code_uri, str):
            match = S3_URI.match(code_uri)
            if not match:
                raise ArtifactError(f"CodeUri {code_uri!r} is not an S3 object: the template is not packaged")
            found.append(CodeRef(logical_id, match["bucket"], match["key"], match["version"]))
        elif isinstance(code_uri, dict):
            found.append(
                CodeRef(logical_id, code_uri.get("Bucket"), code_uri.get("Key"), code_uri.get("Version"))
            )
        code = properties.get("Code")
        if isinstance(code, dict) and "S3Key" in code:
            found.append(
                CodeRef(logical_id, code.get("S3Bucket"), code["S3Key"], code.get("S3ObjectVersion"))
            )
    return sorted(found, key=lambda ref: ref.logical_id)


def read_object(s3: Any, bucket: str, key: str, version: str | None) -> tuple[bytes, dict[str, Any]]:
    """The bytes of ``key`` at ``version`` (its newest when None) and ``{key, version_id, sha256, size}``."""
    found = _read(s3, bucket, key, version)
    if found is None:
        raise ArtifactError(f"build object {_where(bucket, key, version)} is missing")
    data, read_version = found
    return data, {"key": key, "version_id": read_version, "sha256": sha256_hex(data), "size": len(data)}


def prove_object(s3: Any, bucket: str, entry: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
    """Read ``entry``'s key at its ``version_id`` (its newest bytes when it names none) and prove
    its ``sha256``; the bytes and ``{key, version_id, sha256, size}``."""
    data, found = read_object(s3, bucket, entry.get("key"), entry.get("version_id"))
    if found["sha256"] != entry.get("sha256"):
        raise ArtifactError(
            f"build object {_where(bucket, found['key'], entry.get('version_id'))} was changed: "
            f"its SHA-256 is {found['sha256']}, the manifest says {entry.get('sha256')}"
        )
    return data, found


def _where(bucket: str, key: str, version: str | None) -> str:
    return f"s3://{bucket}/{key}" + (f" version {version}" if version else "")


def check_pins(refs: list[CodeRef], objects: list[dict[str, Any]], bucket: str, where: str) -> None:
    """Every code object the template names is one of ``objects`` at that very version, and the
    template names every one of them; raises naming the first object that is not."""
    pinned = {(o["key"], o.get("version_id")) for o in objects}
    listed = {o["key"]: o.get("version_id") for o in objects}
    for ref in refs:
        if ref.bucket != bucket or ref.key not in listed:
            raise ArtifactError(f"{ref.logical_id} runs {ref.uri}, which {where} does not list")
        if (ref.key, ref.version) not in pinned:
            named = f"version {ref.version}" if ref.version else "no version (the key's newest bytes)"
            raise ArtifactError(
                f"{ref.logical_id} runs s3://{bucket}/{ref.key} at {named}, "
                f"not the version {listed[ref.key]} {where} pins"
            )
    unused = sorted(set(listed) - {ref.key for ref in refs})
    if unused:
        raise ArtifactError(f"{where} lists s3://{bucket}/{unused[0]}, which the template does not run")


def replaced_objects(s3: Any, bucket: str, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries whose key no longer reads as their pinned version: someone wrote (or deleted) it since."""
    replaced = []
    for entry in entries:
        newest = newest_version(s3, bucket, entry["key"])
        if newest != entry.get("version_id"):
            replaced.append(
                {"key": entry["key"], "version_id": entry.get("version_id"), "newest_version_id": newest}
            )
    return replaced


def verify_build(cfg: DeploymentConfig, commit_sha: str, version: str, s3: Any = None) -> dict[str, Any]:
    """Prove ``commit_sha``'s build before anyone approves it.

    The manifest is present and names ``version``; it pins an S3 version of the template and of
    every code object under the commit's prefix; each version's SHA-256 is the manifest's; the
    template names exactly those objects at exactly those versions; and no key of the build was
    written since it was published (its newest version is the pinned one: the prefix is written
    once, by the publisher, so a later write is someone else's). Returns ``{commit_sha, version,
    bucket, manifest_key, manifest_sha256, manifest_version_id, template_key, template_version_id,
    template_sha256, objects, built_at, staging_run}``; raises :class:`ArtifactError` naming the
    object at fault.
    """
    s3 = s3 or s3_client(cfg)
    bucket = cfg.artifacts.bucket
    manifest, manifest_sha256, manifest_version = read_manifest(cfg, commit_sha, s3)
    where = f"the manifest s3://{bucket}/{manifest_key(cfg, commit_sha)}"
    if manifest.get("commit_sha") != commit_sha:
        raise ArtifactError(f"{where} is for commit {manifest.get('commit_sha')}, not {commit_sha}")
    if manifest.get("version") != version:
        raise ArtifactError(f"{where} names version {manifest.get('version')}, not {version}")
    prefix = build_prefix(cfg, commit_sha) + "/"
    entries = [manifest.get("template") or {}, *(manifest.get("objects") or [])]
    for entry in entries:
        if not str(entry.get("key", "")).startswith(prefix):
            raise ArtifactError(f"{where} lists {entry.get('key')!r}, outside s3://{bucket}/{prefix}")
        if not entry.get("version_id"):
            raise ArtifactError(
                f"{where} pins no S3 version of {entry['key']}: publish the build again with "
                "scripts/publish_build.py into a bucket that keeps versions"
            )
    template_bytes, template, objects = _prove(s3, bucket, entries[0], entries[1:], where)
    for changed in replaced_objects(s3, bucket, entries):
        raise ArtifactError(
            f"build object s3://{bucket}/{changed['key']} was changed after it was published: its newest "
            f"version is {changed['newest_version_id']}, {where} pins {changed['version_id']}"
        )
    return {
        "commit_sha": commit_sha,
        "version": version,
        "bucket": bucket,
        "manifest_key": manifest_key(cfg, commit_sha),
        "manifest_sha256": manifest_sha256,
        "manifest_version_id": manifest_version,
        "template_key": template["key"],
        "template_version_id": template["version_id"],
        "template_sha256": template["sha256"],
        "objects": objects,
        "built_at": manifest.get("built_at"),
        "staging_run": manifest.get("staging_run"),
    }


def _prove(
    s3: Any, bucket: str, template_entry: dict[str, Any], object_entries: list[dict[str, Any]], where: str
) -> tuple[bytes, dict[str, Any], list[dict[str, Any]]]:
    """Prove the template's and every object's pinned bytes, and that the template pins exactly them."""
    template_bytes, template = prove_object(s3, bucket, template_entry)
    objects = [prove_object(s3, bucket, entry)[1] for entry in object_entries]
    check_pins(template_code(template_bytes.decode()), objects, bucket, where)
    return template_bytes, template, objects


def prove_approved_build(cfg: DeploymentConfig, build: dict[str, Any], s3: Any = None) -> dict[str, Any]:
    """Prove, right before the change set executes, the build the approvers approved: ``build`` is
    the record's ``artifact`` section (what :func:`verify_build` proved before approval).

    The template's and every code object's pinned version must still hold the approved bytes,
    and the template pin exactly those versions; raises :class:`ArtifactError` naming the object
    otherwise. A key written since (a newer version) does not stop the deploy, since
    CloudFormation reads the pinned version, not the key; it is returned in ``replaced`` for the
    record.
    """
    s3 = s3 or s3_client(cfg)
    if not build.get("ok") or not build.get("template_version_id"):
        raise ArtifactError(
            "the record holds no verified build pinned by S3 version: verify_artifact has not passed"
        )
    bucket = build["bucket"]
    template_entry = {
        "key": build["template_key"],
        "version_id": build["template_version_id"],
        "sha256": build["template_sha256"],
    }
    where = f"the approved build of {build['commit_sha']} ({build['manifest_key']})"
    _, template, objects = _prove(s3, bucket, template_entry, build.get("objects") or [], where)
    return {
        "ok": True,
        "commit_sha": build["commit_sha"],
        "template": template,
        "objects": objects,
        "replaced": replaced_objects(s3, bucket, [template_entry, *build.get("objects", [])]),
    }


def packaged_template(
    cfg: DeploymentConfig,
    commit_sha: str,
    expected_sha256: str,
    s3: Any = None,
    version_id: str | None = None,
) -> str:
    """The packaged template of ``commit_sha``'s build (at ``version_id`` when given), only if its
    SHA-256 is ``expected_sha256``.

    The deploy calls this with the digest the approvers saw: a template published
    again since (same key, other bytes) stops the run before anything changes.
    """
    s3 = s3 or s3_client(cfg)
    key = f"{build_prefix(cfg, commit_sha)}/template.yaml"
    where = _where(cfg.artifacts.bucket, key, version_id)
    found = _read(s3, cfg.artifacts.bucket, key, version_id)
    if found is None:
        raise ArtifactError(f"the packaged template {where} is missing")
    actual = sha256_hex(found[0])
    if actual != expected_sha256:
        raise ArtifactError(
            f"the packaged template {where} has SHA-256 {actual}, "
            f"not the {expected_sha256} that was verified and approved"
        )
    return found[0].decode()


def build_of_template(
    cfg: DeploymentConfig, template_body: str, version: str, s3: Any = None
) -> dict[str, Any]:
    """Prove the build a deployed (or backed-up) template runs, before a rollback puts it back.

    The commit comes from the template's own code objects (``<builds_prefix>/<commit>/code/...``),
    so this works for any template a build produced, packaged or transformed. The manifest must
    name ``version``, and each code object the template names must be one of the manifest's at
    the version it pins, with the manifest's SHA-256. A key written since publishing does not
    matter here: the template pins the version. Raises :class:`ArtifactError` when the
    template's code is not one proven build's.
    """
    s3 = s3 or s3_client(cfg)
    bucket = cfg.artifacts.bucket
    refs = template_code(template_body)
    commit = commit_of(cfg, refs)
    manifest, manifest_sha256, _ = read_manifest(cfg, commit, s3)
    where = f"the manifest s3://{bucket}/{manifest_key(cfg, commit)}"
    if manifest.get("version") != version or manifest.get("commit_sha") != commit:
        raise ArtifactError(
            f"{where} is the build of {manifest.get('commit_sha')} {manifest.get('version')}, "
            f"not of {version}"
        )
    listed = {(o["key"], o.get("version_id")): o for o in manifest.get("objects") or []}
    running = [ref for ref in refs if (ref.key, ref.version) not in listed]
    if running:
        raise ArtifactError(f"{running[0].logical_id} runs {running[0].uri}, which {where} does not pin")
    objects = [prove_object(s3, bucket, listed[(ref.key, ref.version)])[1] for ref in refs]
    return {
        "commit_sha": commit,
        "version": version,
        "manifest_key": manifest_key(cfg, commit),
        "manifest_sha256": manifest_sha256,
        "template_sha256": (manifest.get("template") or {}).get("sha256"),
        "objects": objects,
    }


def commit_of(cfg: DeploymentConfig, refs: list[CodeRef]) -> str:
    """The one build commit whose prefix holds every code object of ``refs``; raises otherwise."""
    prefix = cfg.artifacts.builds_prefix.strip("/") + "/"
    commits = {
        str(ref.key).removeprefix(prefix).split("/", 1)[0]
        for ref in refs
        if ref.bucket == cfg.artifacts.bucket and str(ref.key).startswith(prefix)
    }
    if len(commits) != 1 or len(refs) == 0:
        raise ArtifactError(
            f"the template's code objects {[ref.uri for ref in refs]} are not one build's "
            f"(under s3://{cfg.artifacts.bucket}/{prefix}<commit>/)"
        )
    return commits.pop()


def code_objects(build: dict[str, Any]) -> dict[tuple[str, str | None], str]:
    """``{(key, version_id): sha256}`` of a proven build's code objects (to compare with what runs)."""
    return {(o["key"], o.get("version_id")): o["sha256"] for o in build.get("objects", [])}
