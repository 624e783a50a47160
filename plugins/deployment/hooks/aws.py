"""Thin hooks for the AWS services the Amazon provider has no hook for.

Like the provider's own hooks, each is an ``AwsBaseHook`` bound to one boto3
client type, so credentials, region and ``endpoint_url`` come from the
Airflow connection (the sandbox sets ``endpoint_url``; production does not).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig


class AmplifyHook(AwsBaseHook):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["client_type"] = "amplify"
        super().__init__(*args, **kwargs)


class Route53Hook(AwsBaseHook):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["client_type"] = "route53"
        super().__init__(*args, **kwargs)


class CloudWatchHook(AwsBaseHook):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["client_type"] = "cloudwatch"
        super().__init__(*args, **kwargs)


def hook_for(config: DeploymentConfig, hook_class: type[AwsBaseHook], **kwargs: Any) -> AwsBaseHook:
    """A hook of ``hook_class`` on the configured AWS connection and region."""
    return hook_class(aws_conn_id=config.connections.aws, region_name=config.region, **kwargs)
