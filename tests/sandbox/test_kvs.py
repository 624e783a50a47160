"""The sandbox's CloudFront KeyValueStore API through the single AWS endpoint, with boto3's own client."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.config import Config

from deployment.traffic.front_door import LIVE_KEY
from sandbox.seed import CREDENTIALS


@pytest.fixture
def kvs(sandbox):
    """The client as the pipeline's hook makes it: SigV4A-signed, sent through the endpoint as a proxy."""
    url = sandbox.endpoints["aws"]
    return boto3.client(
        "cloudfront-keyvaluestore",
        endpoint_url=url,
        region_name=sandbox.cfg.region,
        config=Config(proxies={"http": url}),
        **CREDENTIALS,
    )


def test_seeded_at_production_state(sandbox, kvs):
    described = kvs.describe_key_value_store(KvsARN=sandbox.kvs_arn)
    assert described["Status"] == "READY" and described["ItemCount"] == 2 and described["ETag"]
    assert kvs.get_key(KvsARN=sandbox.kvs_arn, Key=LIVE_KEY)["Value"] == "blue"
    routing = json.loads(kvs.get_key(KvsARN=sandbox.kvs_arn, Key="routing")["Value"])
    assert routing == {
        "stable": "blue",
        "new": "green",
        "weight": 0,
        "epoch": 1,
    }


def test_writes_need_the_current_etag_and_return_the_next(sandbox, kvs):
    etag = kvs.describe_key_value_store(KvsARN=sandbox.kvs_arn)["ETag"]
    put = kvs.put_key(KvsARN=sandbox.kvs_arn, Key="note", Value="one", IfMatch=etag)
    assert put["ETag"] != etag and put["ItemCount"] == 3
    with pytest.raises(kvs.exceptions.ConflictException):
        kvs.update_keys(KvsARN=sandbox.kvs_arn, IfMatch=etag, Puts=[{"Key": "note", "Value": "lost"}])
    updated = kvs.update_keys(KvsARN=sandbox.kvs_arn, IfMatch=put["ETag"], Deletes=[{"Key": "note"}])
    assert updated["ItemCount"] == 2
    assert [item["Key"] for item in kvs.list_keys(KvsARN=sandbox.kvs_arn)["Items"]] == [LIVE_KEY, "routing"]


def test_unknown_store_and_key_are_not_found(sandbox, kvs):
    with pytest.raises(kvs.exceptions.ResourceNotFoundException):
        kvs.get_key(KvsARN=sandbox.kvs_arn, Key="absent")
    with pytest.raises(kvs.exceptions.ResourceNotFoundException):
        kvs.describe_key_value_store(KvsARN=sandbox.kvs_arn.replace("0001", "0002"))


def test_reseed_puts_the_store_back(sandbox, kvs):
    etag = kvs.describe_key_value_store(KvsARN=sandbox.kvs_arn)["ETag"]
    kvs.put_key(KvsARN=sandbox.kvs_arn, Key="routing", Value="{}", IfMatch=etag)
    sandbox.reseed()
    assert json.loads(kvs.get_key(KvsARN=sandbox.kvs_arn, Key="routing")["Value"])["stable"] == "blue"


def test_the_request_log_names_the_service(sandbox, kvs):
    kvs.describe_key_value_store(KvsARN=sandbox.kvs_arn)
    assert sandbox.aws.requests.list()[-1]["service"] == "cloudfront-keyvaluestore"
