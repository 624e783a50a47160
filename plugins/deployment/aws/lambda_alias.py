"""The API function's alias as Lambda has it: read it, and the version a release's change set keeps it on.

The adapter under ``deployment.traffic.api_alias`` (which moves the alias with the colours): a
change set must name the version the alias serves (``backend.version_parameter``), since
CloudFormation gives an omitted parameter its default, which would move the alias at the update.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig


class ApiAliasError(RuntimeError):
    """The alias is not as a release can start from, or a change to it was refused twice."""


def lambda_client(cfg: DeploymentConfig) -> Any:
    from airflow.providers.amazon.aws.hooks.lambda_function import LambdaHook

    from deployment.hooks.aws import hook_for

    return hook_for(cfg, LambdaHook).conn


def read_alias(cfg: DeploymentConfig, client: Any = None) -> dict[str, Any] | None:
    """The alias as Lambda has it (``GetAlias``), or None when the function has no such alias."""
    assert cfg.backend is not None
    client = client or lambda_client(cfg)
    try:
        return client.get_alias(FunctionName=cfg.backend.function_name, Name=cfg.backend.alias)
    except client.exceptions.ResourceNotFoundException:
        return None


def routing_of(alias: dict[str, Any]) -> dict[str, float]:
    return dict((alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {})


def live_version_parameter(cfg: DeploymentConfig, template: str) -> dict[str, str]:
    """The stack parameter a release's change set passes: the version the alias serves now.

    ``{}`` without ``backend``, or when ``template`` (the packaged template) declares no such
    parameter (a build from before the canary: CloudFormation refuses unknown parameters). An
    alias split between two versions is refused: another release is shifting it, or someone
    changed it by hand, and a stack update now would pin one of the two. No alias yet (a stack
    adopting the canary): the parameter stays empty, and the stack points the alias at the
    version it publishes.
    """
    from deployment.aws.sam import parse_template

    declared = parse_template(template).get("Parameters", {})
    if cfg.backend is None or cfg.backend.version_parameter not in declared:
        return {}
    alias = read_alias(cfg)
    if alias is None:
        return {cfg.backend.version_parameter: ""}
    if routing_of(alias):
        raise ApiAliasError(
            f"alias {cfg.backend.alias} of {cfg.backend.function_name} is split "
            f"({alias['FunctionVersion']} and {routing_of(alias)}): a release starts from one version"
        )
    return {cfg.backend.version_parameter: alias["FunctionVersion"]}


def alias_state(alias: dict[str, Any]) -> dict[str, Any]:
    return {"version": alias["FunctionVersion"], "weights": routing_of(alias)}
