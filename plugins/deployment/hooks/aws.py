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


class KeyValueStoreHook(AwsBaseHook):
    """CloudFront KeyValueStore's data plane; boto3 signs it with SigV4A, which needs ``awscrt``.

    Its endpoint rules put the store's account ID in front of the host
    (``<account>.<endpoint host>``), which a loopback endpoint cannot resolve: a
    connection whose ``service_config`` for this service has ``proxy_url`` (the
    sandbox) sends the requests through it instead.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["client_type"] = "cloudfront-keyvaluestore"
        super().__init__(*args, **kwargs)

    def _get_config(self, config: Any = None) -> Any:
        from botocore.config import Config

        merged = super()._get_config(config)
        proxy = self.service_config.get("proxy_url")
        return merged.merge(Config(proxies={"http": proxy, "https": proxy})) if proxy else merged


class CloudWatchHook(AwsBaseHook):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["client_type"] = "cloudwatch"
        super().__init__(*args, **kwargs)


def hook_for(config: DeploymentConfig, hook_class: type[AwsBaseHook], **kwargs: Any) -> AwsBaseHook:
    """A hook of ``hook_class`` on the configured AWS connection and region."""
    return hook_class(aws_conn_id=config.connections.aws, region_name=config.region, **kwargs)
