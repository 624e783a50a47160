"""The single AWS endpoint: dispatch by SigV4 service, and the request log."""

from __future__ import annotations

import time

import requests


def test_s3_buckets_named_like_amplify_paths_still_reach_s3(sandbox, aws):
    s3 = aws("s3")
    for bucket in ("apps", "tags"):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": sandbox.cfg.region})
        s3.put_object(Bucket=bucket, Key="branches/main/jobs", Body=b"s3 object")
        assert s3.get_object(Bucket=bucket, Key="branches/main/jobs")["Body"].read() == b"s3 object"
    assert aws("amplify").get_app(appId=sandbox.cfg.amplify.app_id)["app"]["appId"]


def test_request_log_names_service_and_action(sandbox, aws):
    since = time.time()
    aws("cloudformation").describe_stacks(StackName=sandbox.cfg.stack.name)
    aws("dynamodb").list_tables()
    aws("cloudwatch").describe_alarms()
    aws("amplify").get_app(appId=sandbox.cfg.amplify.app_id)
    aws("route53").list_hosted_zones()
    logged = requests.get(
        f"{sandbox.endpoints['control']}/requests", params={"since": since}, timeout=5
    ).json()
    pairs = [(e["service"], e["action"]) for e in logged]
    assert pairs[:4] == [
        ("cloudformation", "DescribeStacks"),
        ("dynamodb", "ListTables"),
        ("monitoring", "DescribeAlarms"),
        ("amplify", "GetApp"),
    ]
    assert pairs[4][0] == "route53" and pairs[4][1].startswith("GET /2013-04-01/hostedzone")
    assert all(e["status"] == 200 and e["time"] >= since for e in logged)

    only = requests.get(f"{sandbox.endpoints['control']}/requests", params={"service": "amplify"}, timeout=5)
    assert {e["service"] for e in only.json()} == {"amplify"}
