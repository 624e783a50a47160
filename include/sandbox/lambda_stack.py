"""Lambda versions and aliases that a stack owns, as CloudFormation keeps them.

moto 5.2.5 accepts ``AWS::Lambda::Alias`` in a stack and creates nothing, and publishes an
``AWS::Lambda::Version`` once, at creation, never on an update; ``!GetAtt X.Version`` does not
resolve. Here both are models moto's own ``ResourceMap`` creates, resolves (``Ref``, ``GetAtt``,
``If``, parameters) and lists (DescribeStackResources, ListStackResources) like any other:

- :class:`StackVersion` publishes a version of the function as it is when created. Physical id:
  the version's ARN (what ``Ref`` returns); ``!GetAtt X.Version``: its number; ``FunctionArn``:
  the ARN.
- :class:`StackAlias` creates the alias on ``FunctionVersion`` with the template's
  ``RoutingConfig`` (a list of ``{FunctionVersion, FunctionWeight}``). Physical id and ``Ref``:
  the alias's ARN.

moto updates the resources a template or parameter change touches, in template order, so a
version could be published before the function's new code is in. So their updates are left to
:func:`reconcile`, which runs once moto's ``ResourceMap.update`` has applied the whole template
(an UpdateStack, an executed change set, the CloudFormation layer's rollback to the previous
template): every version whose resolved properties changed is replaced, i.e. a new version of the
function as it now is (every property of ``AWS::Lambda::Version`` requires replacement), the old
one deleted unless its ``UpdateReplacePolicy`` is ``Retain``; then every alias whose resolved
properties changed is updated to them, ``RoutingConfig`` included (none in the template: no
weights). A resource whose resolved properties did not change is not touched, so an alias changed
outside the stack keeps that change until the template or its parameters change, as in
CloudFormation. When Lambda refuses a change (an alias on a version that does not exist), the
update keeps the rest and :func:`refused` says what (the layer fails the update on it).

:func:`install` makes moto use these models and reconcile after every update (idempotent); the
models register themselves with moto when this module is imported.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from moto.awslambda.exceptions import LambdaClientError, UnknownAliasException, UnknownFunctionException
from moto.awslambda.models import LambdaBackend, LambdaFunction, lambda_backends
from moto.cloudformation import parsing
from moto.cloudformation.parsing import ResourceMap
from moto.core.common_models import CloudFormationModel

VERSION_TYPE = "AWS::Lambda::Version"
ALIAS_TYPE = "AWS::Lambda::Alias"


class ReconcileError(Exception):
    """Lambda refused a resource's change (e.g. an alias on a version that does not exist)."""

    def __init__(self, logical_id: str, reason: str) -> None:
        super().__init__(f"{logical_id}: {reason}")
        self.logical_id, self.reason = logical_id, reason


def _backend(account_id: str, region: str) -> LambdaBackend:
    return lambda_backends[account_id][region]


def api_routing(template_routing: dict[str, Any] | None) -> dict[str, Any]:
    """The Lambda API's ``RoutingConfig`` (``{"AdditionalVersionWeights": {version: weight}}``) of a
    template's (``{"AdditionalVersionWeights": [{FunctionVersion, FunctionWeight}]}``); ``{}``
    for none."""
    weights = (template_routing or {}).get("AdditionalVersionWeights") or []
    if not weights:
        return {}
    return {
        "AdditionalVersionWeights": {str(w["FunctionVersion"]): float(w["FunctionWeight"]) for w in weights}
    }


def template_routing(api: dict[str, Any] | None) -> dict[str, Any]:
    """The inverse of :func:`api_routing`: the template's shape of an alias's routing."""
    weights = (api or {}).get("AdditionalVersionWeights") or {}
    return {
        "AdditionalVersionWeights": [
            {"FunctionVersion": version, "FunctionWeight": float(weight)}
            for version, weight in weights.items()
        ]
    }


class StackVersion(CloudFormationModel):
    """A published version of a function, owned by a stack."""

    def __init__(self, function: LambdaFunction, properties: dict[str, Any], declared: dict[str, Any]):
        self.function = function
        self.properties = properties
        self.replace_policy = declared.get("UpdateReplacePolicy", "Delete")
        self.deletion_policy = declared.get("DeletionPolicy", "Delete")

    @staticmethod
    def cloudformation_name_type() -> str:
        return ""

    @staticmethod
    def cloudformation_type() -> str:
        return VERSION_TYPE

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> StackVersion:
        properties = cloudformation_json["Properties"]
        published = _backend(account_id, region_name).publish_version(
            properties["FunctionName"], properties.get("Description", "")
        )
        return cls(published, properties, cloudformation_json)

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[misc]
        cls,
        original_resource: StackVersion,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> StackVersion:
        return original_resource  # replaced by reconcile(), once the function is updated

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr in ("Version", "FunctionArn")

    def get_cfn_attribute(self, attribute_name: str) -> str:
        if attribute_name == "Version":
            return str(self.function.version)
        if attribute_name == "FunctionArn":
            return self.function.function_arn
        from moto.cloudformation.exceptions import UnformattedGetAttTemplateException

        raise UnformattedGetAttTemplateException()

    @property
    def physical_resource_id(self) -> str:
        return self.function.function_arn

    @property
    def version(self) -> str:
        return str(self.function.version)

    def delete(self, account_id: str, region: str) -> None:
        if self.deletion_policy != "Retain":
            with contextlib.suppress(UnknownFunctionException):
                _backend(account_id, region).delete_function(self.function.function_name, self.version)


class StackAlias(CloudFormationModel):
    """An alias of a function, owned by a stack; ``properties`` as the stack last applied them."""

    def __init__(self, account_id: str, region: str, properties: dict[str, Any]):
        self.account_id, self.region = account_id, region
        self.properties = properties
        self.function_name = properties["FunctionName"]
        self.name = properties["Name"]
        self.arn = _backend(account_id, region).get_alias(self.name, self.function_name).arn

    @staticmethod
    def cloudformation_name_type() -> str:
        return "Name"

    @staticmethod
    def cloudformation_type() -> str:
        return ALIAS_TYPE

    @classmethod
    def create_from_cloudformation_json(  # type: ignore[misc]
        cls,
        resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
        **kwargs: Any,
    ) -> StackAlias:
        properties = cloudformation_json["Properties"]
        _backend(account_id, region_name).create_alias(
            name=properties["Name"],
            function_name=properties["FunctionName"],
            function_version=str(properties["FunctionVersion"]),
            description=properties.get("Description", ""),
            routing_config=api_routing(properties.get("RoutingConfig")),
        )
        return cls(account_id, region_name, properties)

    @classmethod
    def update_from_cloudformation_json(  # type: ignore[misc]
        cls,
        original_resource: StackAlias,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> StackAlias:
        return original_resource  # updated by reconcile(), once the versions are

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return attr == "AliasArn"

    def get_cfn_attribute(self, attribute_name: str) -> str:
        if attribute_name == "AliasArn":
            return self.arn
        from moto.cloudformation.exceptions import UnformattedGetAttTemplateException

        raise UnformattedGetAttTemplateException()

    @property
    def physical_resource_id(self) -> str:
        return self.arn

    def apply(self, properties: dict[str, Any]) -> None:
        """Update the alias to ``properties`` (the template's, resolved), as an update of the stack does."""
        alias = _backend(self.account_id, self.region).update_alias(
            self.name,
            self.function_name,
            str(properties["FunctionVersion"]),
            properties.get("Description", ""),
            None,
        )
        alias.routing_config = api_routing(properties.get("RoutingConfig"))  # moto's update keeps it
        self.properties = properties

    def live(self) -> dict[str, Any] | None:
        """The alias as Lambda has it now (GetAlias), in the template's shape; None when deleted."""
        try:
            alias = _backend(self.account_id, self.region).get_alias(self.name, self.function_name)
        except (UnknownAliasException, UnknownFunctionException):
            return None
        actual = {
            "Name": alias.name,
            "FunctionName": self.function_name,
            "FunctionVersion": alias.function_version,
        }
        if alias.description:
            actual["Description"] = alias.description
        if alias.routing_config or "RoutingConfig" in self.properties:
            actual["RoutingConfig"] = template_routing(alias.routing_config)
        return actual

    def delete(self, account_id: str, region: str) -> None:
        # A stack deleted whole may have deleted its function first, and the alias with it.
        with contextlib.suppress(UnknownFunctionException):
            _backend(account_id, region).delete_alias(self.name, self.function_name)


def install() -> None:
    """Make moto's CloudFormation use this module's models and reconcile after each update."""
    for cached in (parsing.get_model_list, parsing.get_model_map, parsing.get_name_type_map):
        cached.cache_clear()
    if parsing.get_model_map()[VERSION_TYPE] is not StackVersion:
        raise RuntimeError("moto's AWS::Lambda::Version model is still the one in use")
    original = ResourceMap.update
    if getattr(original, "reconciles_lambda", False):
        return

    def update(
        resources: ResourceMap, template: dict[str, Any], parameters: dict[str, Any] | None = None
    ) -> None:
        original(resources, template, parameters)
        try:
            reconcile(resources)
        except ReconcileError as err:
            resources.lambda_refused = err

    update.reconciles_lambda = True  # type: ignore[attr-defined]
    ResourceMap.update = update  # type: ignore[method-assign]


def refused(resources: ResourceMap) -> ReconcileError | None:
    """The change Lambda refused in the last update of ``resources`` (then forgotten), if any."""
    return resources.__dict__.pop("lambda_refused", None)


def versions(resources: ResourceMap) -> dict[str, StackVersion]:
    """The stack's versions now, by logical id (what a rollback puts back)."""
    return {name: r for name, r in resources._parsed_resources.items() if isinstance(r, StackVersion)}


def restore(resources: ResourceMap, previous: dict[str, StackVersion]) -> None:
    """Put ``previous`` versions back as the stack's (a rollback returns to the old physical ones)."""
    resources._parsed_resources.update(previous)


def reconcile(resources: ResourceMap) -> None:
    """Replace the versions and update the aliases whose resolved properties changed (module doc);
    :class:`ReconcileError` when Lambda refuses one."""
    declared = resources._resource_json_map
    for kind in (VERSION_TYPE, ALIAS_TYPE):
        for name, resource_json in declared.items():
            if resource_json.get("Type") != kind or not _wanted(resources, resource_json):
                continue
            try:
                _reconcile_one(resources, name, resource_json)
            except LambdaClientError as err:
                raise ReconcileError(name, err.message) from None


def _reconcile_one(resources: ResourceMap, name: str, resource_json: dict[str, Any]) -> None:
    current = resources._parsed_resources.get(name)
    if current is None:
        resources[name]  # noqa: B018 - moto creates a resource on first access
        return
    properties = parsing.clean_json(resource_json.get("Properties", {}), resources)
    if _same(current.properties, properties):
        return
    if isinstance(current, StackVersion):
        _replace_version(resources, name, current, resource_json, properties)
    else:
        current.apply(properties)


def _wanted(resources: ResourceMap, resource_json: dict[str, Any]) -> bool:
    condition = resource_json.get("Condition")
    return not condition or bool(resources.lazy_condition_map[condition])


def _same(old: dict[str, Any], new: dict[str, Any]) -> bool:
    return json.dumps(old, sort_keys=True, default=str) == json.dumps(new, sort_keys=True, default=str)


def _replace_version(
    resources: ResourceMap,
    name: str,
    old: StackVersion,
    resource_json: dict[str, Any],
    properties: dict[str, Any],
) -> None:
    account_id, region = resources._account_id, resources._region_name
    replacement = StackVersion.create_from_cloudformation_json(
        name, {**resource_json, "Properties": properties}, account_id, region
    )
    replacement.cf_resource_type = VERSION_TYPE
    replacement.logical_resource_id = name
    resources._parsed_resources[name] = replacement
    if old.replace_policy != "Retain" and old.version != replacement.version:
        _backend(account_id, region).delete_function(old.function.function_name, old.version)
