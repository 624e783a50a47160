"""What production runs, read back: each Lambda function's code against the build that should run it.

Lambda reports the package a function runs as ``CodeSha256``, the base64 of the package's
SHA-256, so it compares directly with the manifest's hex digest. The functions are found
through the stack's own resources (a function's logical id in the packaged SAM template is
its logical id in the stack; its physical id is the function's name), and each is compared
with the code object the template pins for it.

Two readers: the deploy after its stack update (:func:`read_back_release`, the
``infrastructure.running_build`` record) and the rollback after it put the backup back
(:func:`verify_restored_build`).
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deployment.aws.artifacts import CodeRef
    from deployment.config import DeploymentConfig
    from deployment.ledger import Ledger


def code_sha256(sha256_hex: str) -> str:
    """Lambda's ``CodeSha256`` of a package whose SHA-256 is ``sha256_hex``."""
    return base64.b64encode(bytes.fromhex(sha256_hex)).decode()


def stack_functions(cfg: DeploymentConfig, stack: str) -> dict[str, str]:
    """``{logical id: function name}`` of the Lambda functions of ``stack`` (name or id)."""
    from deployment.aws.cloudformation import client

    pages = client(cfg).get_paginator("list_stack_resources").paginate(StackName=stack)
    return {
        r["LogicalResourceId"]: r["PhysicalResourceId"]
        for page in pages
        for r in page["StackResourceSummaries"]
        if r["ResourceType"] == "AWS::Lambda::Function" and r.get("PhysicalResourceId")
    }


def running_functions(
    cfg: DeploymentConfig, stack: str, expected: list[tuple[CodeRef, str]]
) -> tuple[list[dict[str, Any]], list[str]]:
    """Each function of ``expected`` (its template reference and the package's hex SHA-256) as Lambda
    runs it: ``({logical_id, function_name, object, code_sha256, expected_code_sha256, ok}, ...)``
    and a sentence per function that does not run its package."""
    from airflow.providers.amazon.aws.hooks.lambda_function import LambdaHook

    from deployment.hooks.aws import hook_for

    names = stack_functions(cfg, stack)
    lambda_client = hook_for(cfg, LambdaHook).conn
    functions, problems = [], []
    for ref, sha256 in expected:
        name = names.get(ref.logical_id)
        if name is None:
            problems.append(f"{ref.logical_id}: stack {stack} has no such Lambda function")
            continue
        running = lambda_client.get_function_configuration(FunctionName=name)["CodeSha256"]
        wanted = code_sha256(sha256)
        functions.append(
            {
                "logical_id": ref.logical_id,
                "function_name": name,
                "object": ref.uri,
                "code_sha256": running,
                "expected_code_sha256": wanted,
                "ok": running == wanted,
            }
        )
        if running != wanted:
            problems.append(f"{name} runs code {running}, not {ref.uri} ({wanted})")
    return functions, problems


def read_back_release(cfg: DeploymentConfig, ledger: Ledger, stack: str) -> dict[str, Any]:
    """After the stack update: does every function of the approved template run its approved package?

    The approved template is read at its pinned version and checked against the approved digest;
    the packages' digests are the approved build's (the record's ``artifact`` section). Returns
    ``{ok, commit_sha, functions, problems, read_at}`` for ``infrastructure.running_build``.
    """
    from deployment.aws.artifacts import code_objects, packaged_template, template_code
    from deployment.ledger import now_iso

    build = ledger.read("artifact") or {}
    body = packaged_template(
        cfg, build["commit_sha"], build["template_sha256"], version_id=build.get("template_version_id")
    )
    digests = code_objects(build)
    refs = template_code(body)
    unpinned = [
        f"{r.logical_id} runs {r.uri}, which the approved build does not pin"
        for r in refs
        if (r.key, r.version) not in digests
    ]
    expected = [(ref, digests[(ref.key, ref.version)]) for ref in refs if (ref.key, ref.version) in digests]
    functions, problems = running_functions(cfg, stack, expected)
    problems = unpinned + problems
    return {
        "ok": not problems,
        "commit_sha": build["commit_sha"],
        "functions": functions,
        "problems": problems,
        "read_at": now_iso(),
    }


def verify_restored_build(
    cfg: DeploymentConfig, backup_section: dict[str, Any], stack_after: dict[str, Any]
) -> dict[str, Any]:
    """After a rollback put the backup back: prove the build it restores and read back what runs.

    ``backup_section`` is the record's ``backup`` section; ``stack_after`` the live stack once
    restored (:func:`deployment.aws.cloudformation.live_stack`). The backed-up template's code
    objects are proven at the versions it pins: against the previous build's manifest (the one
    the backup names under ``build.commit_sha``, else the commit whose prefix holds them), or,
    when no manifest describes them, by the bytes of those versions alone. Then each function's
    ``CodeSha256`` must be its object's. Never raises for a failed proof: the result's ``ok`` and
    ``problems`` say what failed, for the rollback's verification to record.
    Returns ``{ok, commit_sha, manifest_key, objects, functions, problems, verified_at}``.
    """
    from deployment.aws.artifacts import (
        ArtifactError,
        commit_of,
        manifest_key,
        read_manifest,
        read_object,
        s3_client,
        template_code,
    )
    from deployment.backup.restore_point import load_backed_up_stack
    from deployment.ledger import now_iso

    s3 = s3_client(cfg)
    refs = template_code(load_backed_up_stack(cfg, backup_section)["template_body"])
    result: dict[str, Any] = {"commit_sha": None, "manifest_key": None, "objects": [], "notes": []}
    problems: list[str] = []
    listed: dict[tuple[str, str | None], dict[str, Any]] = {}
    try:
        commit = (backup_section.get("build") or {}).get("commit_sha") or commit_of(cfg, refs)
        manifest, _, _ = read_manifest(cfg, commit, s3)
        result.update(commit_sha=commit, manifest_key=manifest_key(cfg, commit))
        listed = {(o["key"], o.get("version_id")): o for o in manifest.get("objects") or []}
    except ArtifactError as err:
        result["notes"].append(f"no build manifest describes the restored code: {err}")
    expected = []
    for ref in refs:
        entry = listed.get((ref.key, ref.version))
        if listed and entry is None:
            problems.append(f"{ref.logical_id} runs {ref.uri}, which {result['manifest_key']} does not pin")
        try:
            _, found = read_object(s3, ref.bucket, ref.key, ref.version)
        except ArtifactError as err:
            problems.append(f"{ref.logical_id}: {err}")
            continue
        if entry is not None and found["sha256"] != entry["sha256"]:
            problems.append(
                f"{ref.logical_id}: {ref.uri} has SHA-256 {found['sha256']}, "
                f"the manifest says {entry['sha256']}"
            )
        if not ref.version:
            result["notes"].append(f"{ref.logical_id} runs {ref.uri}, not pinned to a version")
        result["objects"].append({"logical_id": ref.logical_id, **found, "pinned": bool(ref.version)})
        expected.append((ref, entry["sha256"] if entry is not None else found["sha256"]))
    stack = stack_after.get("stack_id") or stack_after.get("StackId") or cfg.stack.name
    functions, running_problems = running_functions(cfg, stack, expected)
    problems += running_problems
    return {
        **result,
        "functions": functions,
        "ok": not problems,
        "problems": problems,
        "verified_at": now_iso(),
    }
