#!/usr/bin/env python3
"""Publish a release candidate's build to the artifacts bucket, keyed by its commit.

Run by the staging workflow after ``sam build`` and ``sam package`` (see
examples/github-actions/staging-build.yml); the sandbox seeds its builds with it too.
Standard library and boto3 only. What it writes (the artifact contract, README.md):

    s3://<bucket>/<prefix>/<commit>/template.yaml    the packaged template (CodeUri -> pinned S3 objects)
    s3://<bucket>/<prefix>/<commit>/code/...         the code objects the template points at
    s3://<bucket>/<prefix>/<commit>/manifest.json    commit, version, build time, the staging run,
                                                      every object's key, S3 version id, size, SHA-256

The bucket must keep versions (S3 versioning enabled; the script refuses one that does not):
a key is not an identity, anyone who may write it can put other bytes under it, so every
``CodeUri`` is rewritten to name its object's version (``{Bucket, Key, Version}``, which SAM
passes to the function's ``Code`` as ``S3ObjectVersion``) and the manifest records each
version id. CloudFormation then deploys those bytes whatever the key holds later.

Two ways in:

- ``--packaged-template packaged.yaml``: the output of ``sam package --s3-bucket <bucket>
  --s3-prefix <prefix>/<commit>/code``. Its ``CodeUri: s3://...`` objects are read back,
  hashed and pinned at the version read (they must be in the bucket, under the commit's
  prefix; ``sam package`` names keys only).
- ``--template template.yaml``: the script packages the template itself: every scalar
  ``CodeUri: <local dir>`` is zipped (files sorted, fixed timestamps, plus a ``build.json``
  naming commit and version, so each commit's package is its own), uploaded under
  ``code/`` and the ``CodeUri`` rewritten to the version uploaded.

Every object is uploaded with ``ChecksumAlgorithm=SHA256``: S3 checks the bytes on arrival.
The manifest is written last, so a build without a manifest is an incomplete build. The
summary printed on success names the template's version, for deploying staging from it.

Exit codes: 0 published, 1 failed (the reason on stderr), 2 usage.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import hashlib
import io
import json
import os
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

MANIFEST_SCHEMA = 2  # 2: every object's S3 version id; the template pins each CodeUri's version
CODE_URI = re.compile(r"^(?P<indent>\s*)CodeUri:\s*(?P<value>[^\s#]+)\s*$")
S3_URI = re.compile(r"^s3://(?P<bucket>[^/]+)/(?P<key>[^?]+)$")
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


class PublishError(RuntimeError):
    """The build cannot be published as the contract requires; the message says why."""


def build_prefix(prefix: str, commit: str) -> str:
    return f"{prefix.strip('/')}/{commit}"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def zip_directory(folder: Path, extra: dict[str, bytes]) -> bytes:
    """A reproducible zip of ``folder`` (sorted, fixed timestamps) plus ``extra`` files."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        files = sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        for path in files:
            info = zipfile.ZipInfo(path.relative_to(folder).as_posix(), ZIP_TIME)
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes(), zipfile.ZIP_DEFLATED)
        for name, data in sorted(extra.items()):
            info = zipfile.ZipInfo(name, ZIP_TIME)
            info.external_attr = 0o644 << 16
            archive.writestr(info, data, zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def require_versioning(s3: Any, bucket: str) -> None:
    """Refuse a bucket that does not keep versions: a build is pinned by S3 version id."""
    status = s3.get_bucket_versioning(Bucket=bucket).get("Status")
    if status != "Enabled":
        raise PublishError(
            f"bucket {bucket} does not keep object versions (versioning: {status or 'never enabled'}); "
            "a build is pinned by S3 version id, so that other bytes written to a key later are never "
            f"deployed. Enable it: aws s3api put-bucket-versioning --bucket {bucket} "
            "--versioning-configuration Status=Enabled"
        )


def version_of(response: dict[str, Any], bucket: str, key: str) -> str:
    """The S3 version id a put or get answered with; refuses an object stored without one."""
    version = response.get("VersionId")
    if not version or version == "null":
        raise PublishError(
            f"s3://{bucket}/{key} has no version id (stored before the bucket kept versions): "
            "upload it again (sam package --force-upload)"
        )
    return version


def put(s3: Any, bucket: str, key: str, data: bytes, content_type: str) -> str:
    """Upload with a SHA-256 checksum S3 verifies on arrival and keeps with the object; its version id."""
    response = s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=data,
        ContentType=content_type,
        ChecksumAlgorithm="SHA256",
        ChecksumSHA256=base64.b64encode(hashlib.sha256(data).digest()).decode(),
    )
    return version_of(response, bucket, key)


def pinned_code_uri(indent: str, bucket: str, key: str, version: str) -> str:
    """A ``CodeUri`` naming one version of one object (SAM's FunctionCode: Bucket, Key, Version).

    Values are written as JSON strings, which YAML reads as double-quoted scalars: a version id
    may hold characters such as ``+`` or ``/``."""
    inner = indent + "  "
    return (
        f"{indent}CodeUri:\n{inner}Bucket: {json.dumps(bucket)}\n{inner}Key: {json.dumps(key)}\n"
        f"{inner}Version: {json.dumps(version)}\n"
    )


def package_template(
    s3: Any, template: Path, bucket: str, prefix: str, commit: str, version: str
) -> tuple[str, list[dict[str, Any]]]:
    """Zip and upload every local ``CodeUri`` of ``template``; the rewritten text and the objects."""
    build_info = json.dumps({"commit_sha": commit, "version": version}, sort_keys=True).encode()
    lines, objects = [], []
    for line in template.read_text().splitlines(keepends=True):
        match = CODE_URI.match(line.rstrip("\n"))
        if not match or match["value"].startswith("s3://"):
            lines.append(line)
            continue
        folder = (template.parent / match["value"]).resolve()
        if not folder.is_dir():
            raise PublishError(f"CodeUri {match['value']} in {template} is not a directory")
        data = zip_directory(folder, {"build.json": build_info})
        digest = sha256_hex(data)
        key = f"{build_prefix(prefix, commit)}/code/{folder.name}-{digest[:16]}.zip"
        version = put(s3, bucket, key, data, "application/zip")
        objects.append(
            {"key": key, "version_id": version, "sha256": digest, "size": len(data), "source": match["value"]}
        )
        lines.append(pinned_code_uri(match["indent"], bucket, key, version))
    return "".join(lines), objects


def packaged_objects(
    s3: Any, text: str, bucket: str, prefix: str, commit: str
) -> tuple[str, list[dict[str, Any]]]:
    """The code objects a ``sam package`` output points at, read back from S3 and hashed, and the
    template with each ``CodeUri`` pinned to the version read."""
    lines, objects = [], []
    for line in text.splitlines(keepends=True):
        match = CODE_URI.match(line.rstrip("\n"))
        if not match:
            lines.append(line)
            continue
        uri = S3_URI.match(match["value"])
        if not uri:
            raise PublishError(f"CodeUri {match['value']} is not packaged (run sam package first)")
        if uri["bucket"] != bucket or not uri["key"].startswith(build_prefix(prefix, commit) + "/"):
            raise PublishError(
                f"CodeUri {match['value']} is outside s3://{bucket}/{build_prefix(prefix, commit)}/: "
                f"run sam package with --s3-bucket {bucket} --s3-prefix {build_prefix(prefix, commit)}/code"
            )
        found = s3.get_object(Bucket=bucket, Key=uri["key"])
        data, version = found["Body"].read(), version_of(found, bucket, uri["key"])
        objects.append(
            {"key": uri["key"], "version_id": version, "sha256": sha256_hex(data), "size": len(data)}
        )
        lines.append(pinned_code_uri(match["indent"], bucket, uri["key"], version))
    return "".join(lines), objects


def publish(
    s3: Any,
    *,
    bucket: str,
    prefix: str,
    commit: str,
    version: str,
    template: Path | None = None,
    packaged_template: Path | None = None,
    staging_run: dict[str, Any] | None = None,
    now: datetime.datetime | None = None,
) -> dict[str, Any]:
    """Publish the build of ``commit`` (``version``); returns the manifest written."""
    if not re.fullmatch(r"[0-9a-f]{40}", commit):
        raise PublishError(f"commit must be 40 lowercase hex characters, got {commit!r}")
    if not re.fullmatch(r"v\d+\.\d+\.\d+", version):
        raise PublishError(f"version must be vX.Y.Z, got {version!r}")
    if (template is None) == (packaged_template is None):
        raise PublishError("give exactly one of --template and --packaged-template")
    require_versioning(s3, bucket)
    if packaged_template is not None:
        text, objects = packaged_objects(s3, packaged_template.read_text(), bucket, prefix, commit)
    else:
        text, objects = package_template(s3, template, bucket, prefix, commit, version)
    if not objects:
        raise PublishError("the template has no CodeUri: nothing was packaged")
    body = text.encode()
    template_key = f"{build_prefix(prefix, commit)}/template.yaml"
    template_version = put(s3, bucket, template_key, body, "application/x-yaml")
    manifest = {
        "schema": MANIFEST_SCHEMA,
        "commit_sha": commit,
        "version": version,
        "built_at": (now or datetime.datetime.now(datetime.UTC)).isoformat(timespec="seconds"),
        "staging_run": staging_run,
        "bucket": bucket,
        "template": {
            "key": template_key,
            "version_id": template_version,
            "sha256": sha256_hex(body),
            "size": len(body),
        },
        "objects": sorted(objects, key=lambda o: o["key"]),
    }
    manifest_key = f"{build_prefix(prefix, commit)}/manifest.json"
    put(s3, bucket, manifest_key, json.dumps(manifest, indent=2, sort_keys=True).encode(), "application/json")
    return manifest


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bucket", required=True, help="the artifacts bucket (artifacts.bucket)")
    parser.add_argument("--prefix", default="builds", help="artifacts.builds_prefix (default: builds)")
    parser.add_argument("--commit", default=os.environ.get("GITHUB_SHA"), help="default: $GITHUB_SHA")
    parser.add_argument("--version", required=True, help="the release version, vX.Y.Z")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--packaged-template", type=Path, help="sam package's --output-template-file")
    source.add_argument("--template", type=Path, help="a SAM template to package here")
    parser.add_argument("--run-id", default=os.environ.get("GITHUB_RUN_ID"), help="default: $GITHUB_RUN_ID")
    parser.add_argument("--workflow", help="the staging workflow's file name, e.g. deploy-staging.yml")
    parser.add_argument("--region", default=os.environ.get("AWS_REGION"))
    parser.add_argument("--endpoint-url", default=os.environ.get("AWS_ENDPOINT_URL"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not args.commit:
        print("publish_build: --commit is required (or $GITHUB_SHA)", file=sys.stderr)
        return 2
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    s3 = boto3.client("s3", region_name=args.region, endpoint_url=args.endpoint_url)
    staging_run = {"run_id": int(args.run_id), "workflow": args.workflow} if args.run_id else None
    try:
        manifest = publish(
            s3,
            bucket=args.bucket,
            prefix=args.prefix,
            commit=args.commit,
            version=args.version,
            template=args.template,
            packaged_template=args.packaged_template,
            staging_run=staging_run,
        )
    except (PublishError, OSError, BotoCoreError, ClientError) as err:
        print(f"publish_build: {err}", file=sys.stderr)
        return 1
    where = f"s3://{args.bucket}/{build_prefix(args.prefix, args.commit)}/manifest.json"
    summary = {"manifest": where, "objects": len(manifest["objects"]), "template": manifest["template"]}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
