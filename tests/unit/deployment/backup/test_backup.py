"""Phase 3 against moto (stack, DynamoDB, S3, Route 53) and the Amplify emulator."""

from __future__ import annotations

import json

import pytest
from _release import PREVIOUS, RUN_ID, VERSION

from deployment.aws.cloudformation import deployed_version, release_parameters, template_body
from deployment.backup import take as backup
from deployment.ledger import run_key
from deployment.traffic.route53 import TrafficRecordError, live_colour, set_weights, weights


def test_backup_id_is_a_valid_backup_name():
    name = backup.backup_id(VERSION, RUN_ID)
    assert name == "release-v1.1.0-manual__2026-01-02T03_04_05_00_00"
    long = backup.backup_id(VERSION, "x" * 400)
    assert len(long) == backup.MAX_BACKUP_NAME and long != backup.backup_id(VERSION, "x" * 401)


def test_backup_stack_copies_template_parameters_outputs(cfg, aws, ledger):
    snapshot = backup.backup_stack(cfg, ledger)
    assert snapshot["reused"] is False
    assert snapshot["version"] == PREVIOUS
    assert snapshot["parameters"][cfg.stack.version_parameter] == PREVIOUS
    assert snapshot["outputs"]["ContentTableName"] == cfg.dynamodb.tables[0]
    template = json.loads(ledger.read_text("backup-template", "json"))
    assert "ContentTable" in template["Resources"]
    assert snapshot["template_uri"] == ledger.uri("backup-template", "json")


def test_backup_stack_rerun_keeps_the_first_snapshot(cfg, aws, ledger):
    first = backup.backup_stack(cfg, ledger)
    aws["cfn"].update_stack(
        StackName=cfg.stack.name,
        TemplateBody=template_body(cfg, VERSION, aws["builds"][VERSION]),
        Parameters=[
            {"ParameterKey": k, "ParameterValue": v} for k, v in release_parameters(cfg, VERSION).items()
        ],
    )
    assert deployed_version(cfg) == VERSION
    second = backup.backup_stack(cfg, ledger)
    assert second["reused"] is True
    assert second["version"] == PREVIOUS == first["version"]


def test_backup_stack_refuses_a_stack_in_flight(cfg, aws, ledger, monkeypatch):
    from deployment.aws import cloudformation

    real = cloudformation.live_stack
    monkeypatch.setattr(cloudformation, "live_stack", lambda c: {**real(c), "status": "UPDATE_IN_PROGRESS"})
    with pytest.raises(backup.BackupError, match="is UPDATE_IN_PROGRESS"):
        backup.backup_stack(cfg, ledger)
    assert ledger.read("backup-stack") is None


def test_backup_tables_once_per_run(cfg, aws):
    first = backup.backup_tables(cfg, VERSION, RUN_ID, timeout=5)
    assert [t["table"] for t in first] == cfg.dynamodb.tables
    assert all(t["status"] == "AVAILABLE" and t["reused"] is False for t in first)
    second = backup.backup_tables(cfg, VERSION, RUN_ID, timeout=5)
    assert [t["backup_arn"] for t in second] == [t["backup_arn"] for t in first]
    assert all(t["reused"] for t in second)
    for table in cfg.dynamodb.tables:
        summaries = aws["dynamodb"].list_backups(TableName=table)["BackupSummaries"]
        assert len(summaries) == 1


def test_backup_tables_missing_table(cfg, aws):
    aws["dynamodb"].delete_table(TableName=cfg.dynamodb.tables[1])
    with pytest.raises(backup.BackupError, match=f"'{cfg.dynamodb.tables[1]}'.*does not exist"):
        backup.backup_tables(cfg, VERSION, RUN_ID, timeout=5)


def test_backup_tables_wait_times_out(cfg, aws, monkeypatch):
    def creating(ddb, table, arn, timeout, poll):
        raise backup.BackupError(f"the backup {arn} of table {table} is still CREATING after {timeout:.0f} s")

    monkeypatch.setattr(backup, "_wait_available", creating)
    with pytest.raises(backup.BackupError, match="still CREATING"):
        backup.backup_tables(cfg, VERSION, RUN_ID, timeout=0)


def test_live_colour_from_weights(cfg, aws):
    assert weights(cfg) == {"blue": 100, "green": 0}
    assert live_colour(cfg) == "blue"
    assert set_weights(cfg, {"blue": 30, "green": 70}) is not None
    assert live_colour(cfg) == "green"
    assert set_weights(cfg, {"blue": 30, "green": 70}) is None


def test_live_colour_needs_both_records(cfg, aws):
    record = aws["route53"].list_resource_record_sets(HostedZoneId=aws["zone_id"])["ResourceRecordSets"]
    green = next(r for r in record if r.get("SetIdentifier") == "green")
    aws["route53"].change_resource_record_sets(
        HostedZoneId=aws["zone_id"],
        ChangeBatch={"Changes": [{"Action": "DELETE", "ResourceRecordSet": green}]},
    )
    with pytest.raises(TrafficRecordError, match=r"lack SetIdentifier\(s\) \['green'\]"):
        live_colour(cfg)


def test_tag_live_amplify(cfg, aws):
    result = backup.tag_live_amplify(cfg, VERSION, RUN_ID)
    assert result["colour"] == "blue" and result["branch"] == cfg.amplify.branches["blue"]
    assert result["job_id"] == "1" and result["served_version"] == PREVIOUS
    green = result["branches"]["green"]
    assert "environment_variables" not in green and "COLOUR" in green["variables"]
    assert set(green["variable_hmac_sha256"]) == set(green["variables"])
    branch = aws["amplify"].get_branch(cfg.amplify.app_id, cfg.amplify.branches["blue"])["branch"]
    assert branch["tags"] == {
        "release:backup-id": backup.backup_id(VERSION, run_key(RUN_ID)),
        "release:backup-for": VERSION,
        "release:live-job": "1",
        "release:live-version": PREVIOUS,
    }
    assert backup.tag_live_amplify(cfg, VERSION, RUN_ID)["tags"] == result["tags"]


def test_tag_live_amplify_without_a_good_job(cfg, aws):
    set_weights(cfg, {"blue": 0, "green": 100})
    with pytest.raises(backup.BackupError, match="green branch main-green .* has no SUCCEED job"):
        backup.tag_live_amplify(cfg, VERSION, RUN_ID)


def test_manifest(cfg, aws, ledger):
    stack = backup.backup_stack(cfg, ledger)
    tables = backup.backup_tables(cfg, VERSION, RUN_ID, timeout=5)
    amplify = backup.tag_live_amplify(cfg, VERSION, RUN_ID)
    manifest = backup.write_manifest(cfg, ledger, stack=stack, tables=tables, amplify=amplify)
    stored = ledger.read("backup")
    assert stored["backup_id"] == backup.backup_id(VERSION, ledger.run_key)  # the record's own key
    assert stored["previous_version"] == PREVIOUS
    assert stored["stack"]["template_uri"] == stack["template_uri"]
    assert [t["backup_arn"] for t in stored["dynamodb"]] == [t["backup_arn"] for t in tables]
    assert stored["amplify"]["colour"] == "blue"
    again = backup.write_manifest(cfg, ledger, stack=stack, tables=tables, amplify=amplify)
    assert again["created_at"] == manifest["created_at"]
