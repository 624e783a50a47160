"""One AWS hook (so one boto3 client) per class, connection and region in a process."""

from __future__ import annotations

import pytest
from airflow.providers.amazon.aws.hooks.s3 import S3Hook

from deployment.hooks import aws
from deployment.hooks.aws import CloudWatchHook, aws_hook


def test_the_same_hook_is_returned_for_the_same_class_connection_and_region(monkeypatch):
    monkeypatch.setattr(aws, "_HOOKS", {})
    first = aws_hook(S3Hook, "aws_default", "us-east-1")
    assert aws_hook(S3Hook, "aws_default", "us-east-1") is first
    assert aws_hook(S3Hook, "aws_default", "eu-west-1") is not first
    assert aws_hook(S3Hook, "aws_other", "us-east-1") is not first
    assert aws_hook(CloudWatchHook, "aws_default", "us-east-1") is not first


def test_a_connection_changed_in_the_environment_gets_a_new_hook(monkeypatch):
    monkeypatch.setattr(aws, "_HOOKS", {})
    monkeypatch.setenv("AIRFLOW_CONN_AWS_ENV", "aws://?endpoint_url=http%3A%2F%2F127.0.0.1%3A1")
    first = aws_hook(S3Hook, "aws_env", "us-east-1")
    monkeypatch.setenv("AIRFLOW_CONN_AWS_ENV", "aws://?endpoint_url=http%3A%2F%2F127.0.0.1%3A2")
    assert aws_hook(S3Hook, "aws_env", "us-east-1") is not first


def test_a_hook_is_built_again_after_its_lifetime(monkeypatch):
    monkeypatch.setattr(aws, "_HOOKS", {})
    now = [1000.0]
    monkeypatch.setattr(aws.time, "monotonic", lambda: now[0])
    first = aws_hook(S3Hook, "aws_default", "us-east-1")
    now[0] += aws.HOOK_LIFETIME_SECONDS - 1
    assert aws_hook(S3Hook, "aws_default", "us-east-1") is first
    now[0] += 2
    assert aws_hook(S3Hook, "aws_default", "us-east-1") is not first


def test_the_user_agent_names_the_task_s_operator_without_walking_the_stack(monkeypatch):
    import inspect

    import airflow.sdk

    class DeployOperator:
        pass

    monkeypatch.setattr(aws, "_HOOKS", {})
    monkeypatch.setattr(inspect, "stack", lambda *a, **k: pytest.fail("the call stack was walked"))
    hook = aws_hook(S3Hook, "aws_default", "us-east-1")
    assert isinstance(hook, S3Hook) and type(hook).__name__ == "S3Hook"
    assert hook._get_caller() == "Unknown", "outside a task"
    monkeypatch.setattr(airflow.sdk, "get_current_context", lambda: {"task": DeployOperator()})
    assert "Caller/DeployOperator" in hook._get_config().user_agent_extra
