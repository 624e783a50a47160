"""Amplify branch variables never reach the record or XCom with their values.

The backup keeps each branch's variables as names and keyed hashes (HMAC-SHA256); the
values and the run's hash key go to one object outside the record, written with SSE-KMS,
whose key and version the record holds. The rollback reads that object, checks every
value against the record's hashes, and only then puts the idle branch back. A plain
SHA-256 would give a short secret away to anyone hashing guesses: the key stays with
the values.
"""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from _release import COMMIT, RUN_ID, VERSION

from deployment.aws.amplify import client, prepare_branch, start_release
from deployment.backup import take as backup
from deployment.rollback import steps as rollback_steps

SECRET = "amp-secret-7f3c9e21d4b8a6"


def _branch_env(cfg, colour):
    branch = client(cfg).get_branch(appId=cfg.amplify.app_id, branchName=cfg.amplify.branches[colour])
    return branch["branch"]["environmentVariables"]


def _set_env(cfg, colour, **values):
    env = {**_branch_env(cfg, colour), **values}
    client(cfg).update_branch(
        appId=cfg.amplify.app_id, branchName=cfg.amplify.branches[colour], environmentVariables=env
    )


def _take_backup(cfg, ledger):
    stack = backup.backup_stack(cfg, ledger)
    tables = backup.backup_tables(cfg, VERSION, RUN_ID, timeout=5)
    amplify = backup.tag_live_amplify(cfg, VERSION, RUN_ID, ledger)
    return amplify, backup.write_manifest(cfg, ledger, stack=stack, tables=tables, amplify=amplify)


def _record_objects(aws, cfg, ledger) -> dict[str, str]:
    import boto3

    s3 = boto3.client("s3", region_name=cfg.region)
    listed = s3.list_objects_v2(Bucket=cfg.artifacts.bucket, Prefix=ledger.prefix + "/").get("Contents", [])
    return {
        o["Key"]: s3.get_object(Bucket=cfg.artifacts.bucket, Key=o["Key"])["Body"].read().decode()
        for o in listed
    }


def _stored(cfg, manifest) -> dict:
    import boto3

    where = manifest["amplify"]["environment_object"]
    s3 = boto3.client("s3", region_name=cfg.region)
    return json.loads(s3.get_object(Bucket=where["bucket"], Key=where["key"])["Body"].read())


@pytest.fixture
def secret_on_both(cfg, aws):
    for colour in ("blue", "green"):
        _set_env(cfg, colour, API_SECRET=SECRET)


def test_the_backup_records_names_and_hashes_never_values(cfg, aws, ledger, secret_on_both):
    returned, manifest = _take_backup(cfg, ledger)
    # What the tasks return (XCom) and every object of the record.
    assert SECRET not in json.dumps(returned, default=str)
    assert SECRET not in json.dumps(manifest, default=str)
    objects = _record_objects(aws, cfg, ledger)
    assert objects and not [key for key, text in objects.items() if SECRET in text]
    green = manifest["amplify"]["branches"]["green"]
    assert "environment_variables" not in green
    assert set(green["variable_hmac_sha256"]) == set(_branch_env(cfg, "green"))
    # Keyed: the record holds no plain SHA-256 of any value, which a guess could be checked against.
    plain = hashlib.sha256(SECRET.encode()).hexdigest()
    assert not [key for key, text in objects.items() if plain in text]
    assert plain not in json.dumps(returned, default=str)
    key = _stored(cfg, manifest)["hmac_key"]
    expected = hmac.new(bytes.fromhex(key), SECRET.encode(), hashlib.sha256).hexdigest()
    assert green["variable_hmac_sha256"]["API_SECRET"] == expected


def test_the_values_sit_in_one_encrypted_object_outside_the_record(cfg, aws, ledger, secret_on_both):
    import boto3

    _, manifest = _take_backup(cfg, ledger)
    where = manifest["amplify"]["environment_object"]
    assert where["bucket"] == cfg.artifacts.bucket and not where["key"].startswith(ledger.prefix)
    s3 = boto3.client("s3", region_name=cfg.region)
    stored = s3.get_object(Bucket=where["bucket"], Key=where["key"])
    assert stored["ServerSideEncryption"] == "aws:kms" == where["server_side_encryption"]
    body = json.loads(stored["Body"].read())
    assert body["branches"]["green"]["environment_variables"]["API_SECRET"] == SECRET


def test_a_rerun_of_the_backup_keeps_the_first_values(cfg, aws, ledger, secret_on_both):
    first, _ = _take_backup(cfg, ledger)
    _set_env(cfg, "green", API_SECRET="changed-after-the-backup-0001")
    again = backup.tag_live_amplify(cfg, VERSION, RUN_ID, ledger)
    assert again["reused"] is True and again["branches"] == first["branches"]
    # Without the section (the first try died after writing the object), the object is kept too.
    fresh = backup.tag_live_amplify(cfg, VERSION, RUN_ID)
    assert fresh["branches"]["green"] == first["branches"]["green"]


def test_prepare_branch_returns_the_names_it_set(cfg, aws, secret_on_both):
    # The values it sets are the config's and the version; a variable set by hand is kept, never returned.
    prepared = prepare_branch(cfg, "green", VERSION)
    returned = json.dumps(prepared)
    assert SECRET not in returned and hashlib.sha256(SECRET.encode()).hexdigest() not in returned
    assert prepared["variables_set"] == sorted(
        {*cfg.amplify.environment_variables, cfg.amplify.version_variable}
    )


def test_the_rollback_restores_the_values_after_checking_their_hashes(cfg, aws, ledger, secret_on_both):
    _, manifest = _take_backup(cfg, ledger)
    before = _branch_env(cfg, "green")
    prepare_branch(cfg, "green", VERSION)
    _set_env(cfg, "green", API_SECRET="overwritten-by-the-release-99")
    start_release(cfg, "green", VERSION, "run", COMMIT)
    result = rollback_steps.restore_frontend(cfg, manifest, "green", "blue")
    assert _branch_env(cfg, "green") == before
    assert result["variables_changed"] is True and SECRET not in json.dumps(result)
    assert rollback_steps.restore_frontend(cfg, manifest, "green", "blue")["variables_changed"] is False


def test_a_values_object_that_does_not_match_the_hashes_is_not_restored(cfg, aws, ledger, secret_on_both):
    import boto3

    _, manifest = _take_backup(cfg, ledger)
    where = manifest["amplify"]["environment_object"]
    s3 = boto3.client("s3", region_name=cfg.region)
    body = json.loads(s3.get_object(Bucket=where["bucket"], Key=where["key"])["Body"].read())
    body["branches"]["green"]["environment_variables"]["API_SECRET"] = "planted-by-someone-else-42"
    s3.put_object(Bucket=where["bucket"], Key=where["key"], Body=json.dumps(body).encode())
    # A versioned bucket keeps the recorded version, which the restore reads; a record from a bucket
    # without versions names none, and the planted object is what the restore finds.
    where.pop("version_id", None)
    prepare_branch(cfg, "green", VERSION)
    result = rollback_steps.restore_frontend(cfg, manifest, "green", "blue")
    env = _branch_env(cfg, "green")
    assert env["API_SECRET"] == SECRET  # never the planted value
    assert env[cfg.amplify.version_variable] == _branch_env(cfg, "blue")[cfg.amplify.version_variable]
    assert any("API_SECRET" in action and "hash" in action for action in result["actions"]), result
