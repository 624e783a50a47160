"""The base of the operators that call AWS: the provider's ``AwsBaseOperator`` on the run's config."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator

from deployment.hooks.aws import aws_hook

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig

HookT = TypeVar("HookT", bound=AwsBaseHook)


class ConfiguredAwsOperator(AwsBaseOperator[HookT]):
    """An ``AwsBaseOperator`` whose connection and region default to the run-time config's.

    Its AWS calls go through this process's shared hook (:meth:`shared_hook`), the one the
    deployment record and the ``deployment.aws`` helpers use too, not through ``self.hook``,
    which would build a second client of the same service on the same connection.
    """

    def __init__(self, *, aws_conn_id: str | None = None, **kwargs: Any) -> None:
        """
        :param aws_conn_id: the Airflow connection to AWS; None: the config's ``connections.aws``,
            read when the task runs.
        :param region_name: the AWS region; None: the config's ``region``.
        """
        super().__init__(aws_conn_id=aws_conn_id, **kwargs)
        if self.verify is not None or self.botocore_config is not None:
            raise ValueError(
                f"{type(self).__name__} takes no verify or botocore_config: set them in the AWS "
                "connection's extras, which the triggers it defers to also build their clients from"
            )

    def aws_settings(self, cfg: DeploymentConfig) -> tuple[str, str]:
        """The connection id and region the task uses: its own, else the config's."""
        return self.aws_conn_id or cfg.connections.aws, self.region_name or cfg.region

    def shared_hook(self, cfg: DeploymentConfig) -> HookT:
        """This process's hook of ``aws_hook_class`` on :meth:`aws_settings`."""
        return aws_hook(self.aws_hook_class, *self.aws_settings(cfg))
