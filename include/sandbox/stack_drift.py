"""Drift detection on the sandbox's stacks, for the Lambda aliases they own (moto has none).

DetectStackDrift, DescribeStackDriftDetectionStatus, DescribeStackResourceDrifts and
DetectStackResourceDrift, answered as CloudFormation answers them. A detection completes at once
(``DETECTION_COMPLETE``). Each ``AWS::Lambda::Alias`` of the stack is checked: the properties the
stack last applied (its template, resolved with its parameters) against the alias Lambda has now
(GetAlias). As CloudFormation does, only properties the template sets explicitly are checked, so
an alias whose template sets no ``RoutingConfig`` does not drift by weights; a difference is
``NOT_EQUAL`` at its path (``/FunctionVersion``, ``/RoutingConfig/AdditionalVersionWeights/0/
FunctionWeight``), ``ADD`` or ``REMOVE`` for an element a list gained or lost (or a property gone),
and an alias that no longer exists is ``DELETED``. The stack is ``DRIFTED`` when any checked
resource is, else ``IN_SYNC``. No other resource type is checked: DescribeStackResourceDrifts
leaves them out, as it leaves out every resource not checked, and DetectStackResourceDrift
answers ``NOT_CHECKED`` for them.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from moto.cloudformation.models import Stack

from sandbox import cfn_xml
from sandbox.cfn_xml import WsgiResult
from sandbox.lambda_stack import ALIAS_TYPE, StackAlias

ACTIONS = frozenset(
    {
        "DetectStackDrift",
        "DescribeStackDriftDetectionStatus",
        "DescribeStackResourceDrifts",
        "DetectStackResourceDrift",
    }
)


class DriftError(LookupError):
    """A request naming a detection (or a resource) that does not exist."""


@dataclass
class _Detection:
    stack_id: str
    drifts: list[dict[str, Any]]
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def drifted(self) -> int:
        return sum(1 for d in self.drifts if d["StackResourceDriftStatus"] in ("MODIFIED", "DELETED"))


class DriftDetector:
    """The detections made so far, and each stack's last checked state of each resource."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._detections: dict[str, _Detection] = {}
        self._checked: dict[str, dict[str, dict[str, Any]]] = {}

    def handle(
        self, action: str, params: dict[str, str], find_stack: Callable[[str | None], Stack]
    ) -> WsgiResult:
        if action == "DescribeStackDriftDetectionStatus":
            return cfn_xml.response(action, self._status(params.get("StackDriftDetectionId", "")))
        stack = find_stack(params.get("StackName"))
        if action == "DetectStackDrift":
            wanted = set(_listed(params, "LogicalResourceIds"))
            drifts = [d for d in _alias_drifts(stack) if not wanted or d["LogicalResourceId"] in wanted]
            detection_id = str(uuid.uuid4())
            with self._lock:
                self._detections[detection_id] = _Detection(stack.stack_id, drifts)
                self._remember(stack, drifts)
            return cfn_xml.response(action, {"StackDriftDetectionId": detection_id})
        if action == "DetectStackResourceDrift":
            drift = _resource_drift(stack, params.get("LogicalResourceId", ""))
            with self._lock:
                self._remember(stack, [drift])
            return cfn_xml.response(action, {"StackResourceDrift": drift})
        statuses = set(_listed(params, "StackResourceDriftStatusFilters"))
        with self._lock:
            drifts = list(self._checked.get(stack.stack_id, {}).values())
        drifts = [d for d in drifts if not statuses or d["StackResourceDriftStatus"] in statuses]
        return cfn_xml.response(action, {"StackResourceDrifts": drifts})

    def reset(self) -> None:
        with self._lock:
            self._detections.clear()
            self._checked.clear()

    def _status(self, detection_id: str) -> dict[str, Any]:
        with self._lock:
            detection = self._detections.get(detection_id)
        if detection is None:
            raise DriftError(f"Stack drift detection with id {detection_id} does not exist")
        return {
            "StackId": detection.stack_id,
            "StackDriftDetectionId": detection_id,
            "StackDriftStatus": "DRIFTED" if detection.drifted else "IN_SYNC",
            "DetectionStatus": "DETECTION_COMPLETE",
            "DriftedStackResourceCount": detection.drifted,
            "Timestamp": detection.at,
        }

    def _remember(self, stack: Stack, drifts: list[dict[str, Any]]) -> None:
        checked = self._checked.setdefault(stack.stack_id, {})
        for drift in drifts:
            if drift["StackResourceDriftStatus"] != "NOT_CHECKED":
                checked[drift["LogicalResourceId"]] = drift


def _listed(params: dict[str, str], name: str) -> list[str]:
    """A query-protocol list (``Name.member.1``, ``Name.member.2`` ...)."""
    prefix = f"{name}.member."
    return [value for key, value in params.items() if key.startswith(prefix)]


def _alias_drifts(stack: Stack) -> list[dict[str, Any]]:
    return [
        _drift(stack, name, resource)
        for name, resource in stack.resource_map._parsed_resources.items()
        if isinstance(resource, StackAlias)
    ]


def _resource_drift(stack: Stack, logical_id: str) -> dict[str, Any]:
    declared = stack.resource_map._resource_json_map.get(logical_id)
    if declared is None:
        raise DriftError(f"Resource {logical_id} does not exist for stack {stack.name}")
    resource = stack.resource_map._parsed_resources.get(logical_id)
    if isinstance(resource, StackAlias):
        return _drift(stack, logical_id, resource)
    return {
        "StackId": stack.stack_id,
        "LogicalResourceId": logical_id,
        "PhysicalResourceId": getattr(resource, "physical_resource_id", None),
        "ResourceType": declared["Type"],
        "StackResourceDriftStatus": "NOT_CHECKED",
        "Timestamp": datetime.now(UTC),
    }


def _drift(stack: Stack, logical_id: str, alias: StackAlias) -> dict[str, Any]:
    expected, actual = alias.properties, alias.live()
    drift: dict[str, Any] = {
        "StackId": stack.stack_id,
        "LogicalResourceId": logical_id,
        "PhysicalResourceId": alias.physical_resource_id,
        "ResourceType": ALIAS_TYPE,
        "Timestamp": datetime.now(UTC),
    }
    if actual is None:
        return {**drift, "StackResourceDriftStatus": "DELETED"}
    differences = list(property_differences(expected, actual))
    return {
        **drift,
        "ExpectedProperties": json.dumps(expected, sort_keys=True),
        "ActualProperties": json.dumps(actual, sort_keys=True),
        "PropertyDifferences": differences,
        "StackResourceDriftStatus": "MODIFIED" if differences else "IN_SYNC",
    }


def property_differences(expected: Any, actual: Any, path: str = "") -> Iterator[dict[str, str]]:
    """How ``actual`` differs from ``expected``, at the properties ``expected`` sets."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key, value in expected.items():
            if key in actual:
                yield from property_differences(value, actual[key], f"{path}/{key}")
            else:
                yield _difference(f"{path}/{key}", value, None, "REMOVE")
    elif isinstance(expected, list) and isinstance(actual, list):
        for index in range(max(len(expected), len(actual))):
            at = f"{path}/{index}"
            if index >= len(actual):
                yield _difference(at, expected[index], None, "REMOVE")
            elif index >= len(expected):
                yield _difference(at, None, actual[index], "ADD")
            else:
                yield from property_differences(expected[index], actual[index], at)
    elif _text(expected) != _text(actual):
        yield _difference(path, expected, actual, "NOT_EQUAL")


def _difference(path: str, expected: Any, actual: Any, kind: str) -> dict[str, str]:
    return {
        "PropertyPath": path,
        "ExpectedValue": _text(expected),
        "ActualValue": _text(actual),
        "DifferenceType": kind,
    }


def _text(value: Any) -> str:
    """A property value as the PropertyDifference strings carry it."""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return json.dumps(value, sort_keys=True)
