"""The AWS hooks a process uses (``aws_hook``), and thin hooks for the services the Amazon
provider has no hook for.

Like the provider's own hooks, each is an ``AwsBaseHook`` bound to one boto3
client type, so credentials, region and ``endpoint_url`` come from the
Airflow connection (the sandbox sets ``endpoint_url``; production does not).
"""

from __future__ import annotations

import functools
import os
import time
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


class TaskCaller:
    """Names the running task's operator class as the caller in the hook's user agent.

    The provider finds that name by walking the call stack with ``inspect.stack()``, which reads
    the source of every frame: on the 2-core machine, half of all the CPU a task process spent
    building boto3 clients. The task context names the same class at no cost.
    """

    def _get_caller(self, target_function_name: str = "execute") -> str:
        from airflow.sdk import get_current_context

        try:
            return type(get_current_context()["task"]).__name__
        except Exception:  # outside a task (a trigger, the API server): as the provider says then
            return "Unknown"


@functools.cache
def _with_task_caller(hook_class: type[AwsBaseHook]) -> type[AwsBaseHook]:
    if issubclass(hook_class, TaskCaller):
        return hook_class
    return type(hook_class.__name__, (TaskCaller, hook_class), {"__module__": hook_class.__module__})


# Hooks built in this process: key → (built at, hook). See ``aws_hook``.
_HOOKS: dict[tuple[Any, ...], tuple[float, AwsBaseHook]] = {}
HOOK_LIFETIME_SECONDS = 300.0


def aws_hook(hook_class: type[AwsBaseHook], aws_conn_id: str, region_name: str, **kwargs: Any) -> AwsBaseHook:
    """This process's hook of ``hook_class`` on ``aws_conn_id`` in ``region_name``, built once.

    Every hook builds its own boto3 session and client on first use: it fetches the connection
    (through the Execution API in a task), botocore parses the service's model, and the
    provider's user-agent field walks the call stack with ``inspect.stack()``. That was about a
    third of a task process's CPU, most of it in the deployment record's reads and writes.
    A hook is kept for ``HOOK_LIFETIME_SECONDS`` at most, so a long-lived process picks up an
    edited connection; a connection given in the environment is part of the key.
    """
    key = (hook_class, aws_conn_id, region_name, os.environ.get(f"AIRFLOW_CONN_{aws_conn_id.upper()}"))
    key += tuple(sorted(kwargs.items()))
    now = time.monotonic()
    found = _HOOKS.get(key)
    if found is None or now - found[0] > HOOK_LIFETIME_SECONDS:
        hook = _with_task_caller(hook_class)(aws_conn_id=aws_conn_id, region_name=region_name, **kwargs)
        found = _HOOKS[key] = (now, hook)
    return found[1]


def hook_for(config: DeploymentConfig, hook_class: type[AwsBaseHook], **kwargs: Any) -> AwsBaseHook:
    """This process's hook of ``hook_class`` on the configured AWS connection and region."""
    return aws_hook(hook_class, config.connections.aws, config.region, **kwargs)
