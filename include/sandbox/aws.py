"""The sandbox's single AWS endpoint: moto, the Amplify emulator and a CloudFormation layer.

:class:`AwsFront` is a WSGI app. It reads the service name from each request's
SigV4 credential scope (``Credential=KEY/DATE/REGION/SERVICE/aws4_request``):
``amplify`` goes to the :class:`~sandbox.amplify.AmplifyEmulator`,
``cloudfront-keyvaluestore`` (signed with SigV4A, whose scope has no region) to
the :class:`~sandbox.kvs.KeyValueStoreEmulator`, the stack
lifecycle actions of ``cloudformation`` to :class:`CloudFormationLayer`, and
everything else to moto's own server app (``DomainDispatcherApplication``), in
this process. The path alone is no key: an S3 bucket named ``apps`` or ``tags``
has the same paths as Amplify. Every request is logged (service, action, time).

moto finishes a stack update at once and has no CancelUpdateStack or
ContinueUpdateRollback. The layer lets moto apply an UpdateStack or an executed
UPDATE change set, then reopens it by editing moto's in-process objects
(``moto.cloudformation.models.cloudformation_backends[account][region]``): the
stack's ``status`` goes back to ``UPDATE_IN_PROGRESS`` and moto's
``UPDATE_COMPLETE`` event is withdrawn; ``update_seconds`` later a timer ends the
update with ``UPDATE_COMPLETE``, or, when a ``stack_update_failure`` fault matches
the stack name or the new version parameter, with a failed resource event
carrying the fault's reason, ``UPDATE_ROLLBACK_IN_PROGRESS`` and, after as long
again, ``UPDATE_ROLLBACK_COMPLETE`` with the previous template and parameters
re-applied through moto's own ``ResourceMap.update``. A fault with
``"rollback_fails": true`` leaves the stack in ``UPDATE_ROLLBACK_FAILED`` until
ContinueUpdateRollback. CancelUpdateStack rolls an update in progress back the
same way.

The stack's ``AWS::Lambda::Version`` and ``AWS::Lambda::Alias`` resources are
``sandbox.lambda_stack``'s models (installed by the front), reconciled after every update
moto applies (the layer's rollbacks included): a Lambda refusal fails the update. The layer
also answers drift detection for them (``sandbox.stack_drift``). Lambda's Invoke is answered
by ``sandbox.lambda_invoke`` (moto would start a container).

moto's Lambda reads a function's code object at the key's newest version whatever
``S3ObjectVersion`` names; Lambda reads the version named. :func:`honour_code_versions`
makes moto read that version (the front installs it), so a release that pins its code
runs the pinned bytes here as in AWS.
"""

from __future__ import annotations

import collections
import contextlib
import io
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from moto.cloudformation.models import ChangeSet, Stack, cloudformation_backends
from moto.core import DEFAULT_ACCOUNT_ID
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

from sandbox import cfn_xml, lambda_stack, stack_drift
from sandbox.amplify import AmplifyEmulator
from sandbox.cfn_xml import WsgiResult
from sandbox.cloudwatch_faults import failure_response as cloudwatch_failure_response
from sandbox.cloudwatch_faults import honour_percentiles
from sandbox.faults import Faults
from sandbox.kvs import KeyValueStoreEmulator
from sandbox.lambda_invoke import LambdaInvoke, is_invoke
from sandbox.stack_drift import DriftDetector, DriftError

log = logging.getLogger(__name__)

LAYER_ACTIONS = {
    "UpdateStack",
    "ExecuteChangeSet",
    "CancelUpdateStack",
    "ContinueUpdateRollback",
    *stack_drift.ACTIONS,
}


def credential_scope(environ: dict[str, Any]) -> tuple[str | None, str | None]:
    """(service, region) of a SigV4-signed request, (None, None) when unsigned."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    for part in auth.replace(",", " ").split():
        if part.startswith("Credential="):
            scope = part[len("Credential=") :].split("/")
            if len(scope) == 5:
                return scope[3].lower(), scope[2]
            if len(scope) == 4:  # SigV4A: KEY/DATE/SERVICE/aws4_request, regions in X-Amz-Region-Set
                return scope[2].lower(), None
    return None, None


class RequestLog:
    """The AWS requests the front served, for benchmarks and tests (bounded, oldest dropped)."""

    def __init__(self, size: int = 20000) -> None:
        self._lock = threading.Lock()
        self._entries: collections.deque[dict[str, Any]] = collections.deque(maxlen=size)

    def add(self, service: str, action: str, status: int) -> None:
        with self._lock:
            self._entries.append(
                {"service": service, "action": action, "status": status, "time": time.time()}
            )

    def list(self, since: float | None = None, service: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            entries = list(self._entries)
        return [
            e for e in entries if (since is None or e["time"] >= since) and service in (None, e["service"])
        ]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def call_wsgi(app: Callable, environ: dict[str, Any]) -> WsgiResult:
    """Run a WSGI app to completion and return its status line, headers and body."""
    captured: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        captured.update(status=status, headers=headers)

    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    return captured["status"], captured["headers"], body


def honour_code_versions() -> None:
    """Make moto's Lambda read ``Code.S3ObjectVersion`` (create, update and CloudFormation alike:
    all go through ``LambdaFunction._set_function_code``). Idempotent."""
    from moto.awslambda import models

    original = models.LambdaFunction._set_function_code
    if getattr(original, "honours_code_versions", False):
        return

    def set_function_code(function: Any, updated_spec: dict[str, Any]) -> None:
        original(function, updated_spec)
        version = updated_spec.get("S3ObjectVersion")
        if not version or "S3Key" not in updated_spec:
            return
        key = models.s3_backends[function.account_id][function.partition].get_object(
            updated_spec["S3Bucket"], updated_spec["S3Key"], version_id=version
        )
        if key is None:
            raise ValueError(
                "InvalidParameterValueException",
                "Error occurred while GetObject. S3 Error Code: NoSuchVersion. "
                "S3 Error Message: The specified version does not exist.",
            )
        function.code_bytes, function.code_size, function.code_sha_256, function.code_digest = (
            models._s3_content(key)
        )
        function.code["S3ObjectVersion"] = version

    set_function_code.honours_code_versions = True
    models.LambdaFunction._set_function_code = set_function_code


class AwsFront:
    """WSGI app of the AWS endpoint (port B+0)."""

    def __init__(
        self,
        amplify: AmplifyEmulator,
        faults: Faults,
        *,
        kvs: KeyValueStoreEmulator | None = None,
        invoke: LambdaInvoke | None = None,
        version_parameter: str = "AppVersion",
        update_seconds: float = 2.0,
    ) -> None:
        self.amplify = amplify
        self.kvs = kvs
        self.invoke = invoke
        self.faults = faults
        honour_code_versions()
        honour_percentiles()
        lambda_stack.install()
        self.moto = DomainDispatcherApplication(create_backend_app)
        self.cloudformation = CloudFormationLayer(
            faults, version_parameter=version_parameter, update_seconds=update_seconds
        )
        self.requests = RequestLog()

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        service, region = credential_scope(environ)
        action = _action(environ)
        if service == "amplify":
            app: Callable = self.amplify
        elif service == "cloudfront-keyvaluestore" and self.kvs is not None:
            app = self.kvs
        elif service == "cloudformation" and action in LAYER_ACTIONS:
            app = self.cloudformation.app(action, region or "us-east-1", self.moto)
        else:
            app = self.moto
        failing = self.faults.find("cloudwatch_failure", action=action) if service == "monitoring" else None
        if failing:
            status, headers, body = cloudwatch_failure_response(environ, failing)
        elif service == "lambda" and self.invoke is not None and is_invoke(environ):
            status, headers, body = self.invoke.invoke(environ, region or "us-east-1")
            action = "Invoke"
        else:
            status, headers, body = call_wsgi(app, environ)
        action = environ.get("sandbox.action") or action
        self.requests.add(service or "unsigned", action, int(status.split()[0]))
        start_response(status, headers)
        return [body]


def _action(environ: dict[str, Any]) -> str:
    """The API action of a request: query Action, X-Amz-Target, RPC v2 path, or method + path."""
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return target.rsplit(".", 1)[-1]
    path = environ.get("PATH_INFO", "")
    if "/operation/" in path:
        return path.rsplit("/", 1)[-1]
    if environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        action = _form(environ).get("Action")
        if action:
            return action
    return f"{environ['REQUEST_METHOD']} {path}"


def _form(environ: dict[str, Any]) -> dict[str, str]:
    """The URL-encoded form body, read once and put back for the next reader."""
    if "sandbox.form" not in environ:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(raw)
        environ["sandbox.form"] = {k: v[-1] for k, v in parse_qs(raw.decode()).items()}
    return environ["sandbox.form"]


@dataclass
class _Update:
    """A stack update the layer keeps in progress, and what to restore if it fails."""

    stack: Stack
    template: Any
    parameters: dict[str, Any]
    input_parameters: dict[str, Any]
    changed_resource: str
    versions: dict[str, lambda_stack.StackVersion] = field(default_factory=dict)
    version: str | None = None
    change_set: ChangeSet | None = None
    failure: dict[str, Any] | None = None
    # Lambda refused a version or alias of the update: it fails (and rolls back) when it ends
    refused: lambda_stack.ReconcileError | None = None
    timer: threading.Timer | None = field(default=None, repr=False)


class CloudFormationLayer:
    """Slow stack updates, injected update failures, CancelUpdateStack, ContinueUpdateRollback and
    drift detection."""

    def __init__(self, faults: Faults, *, version_parameter: str, update_seconds: float) -> None:
        self.faults = faults
        self.version_parameter = version_parameter
        self.update_seconds = update_seconds
        self._lock = threading.RLock()
        self._updates: dict[str, _Update] = {}
        self.drift = DriftDetector()

    def app(self, action: str, region: str, moto: Callable) -> Callable:
        def wsgi(environ: dict[str, Any], start_response: Callable) -> list[bytes]:
            params = _form(environ)
            try:
                with self._lock:
                    status, headers, body = self._handle(action, params, region, moto, environ)
            except _CfnError as err:
                status, headers, body = err.response()
            start_response(status, headers)
            return [body]

        return wsgi

    @contextlib.contextmanager
    def immediate(self) -> Iterator[None]:
        """Stack updates started meanwhile end at once: the seed's own update builds the state
        production is in before any test, and is not a pipeline's update to wait for."""
        with self._lock:
            slow, self.update_seconds = self.update_seconds, 0.0
        try:
            yield
        finally:
            with self._lock:
                self.update_seconds = slow

    def shutdown(self) -> None:
        with self._lock:
            for update in self._updates.values():
                if update.timer:
                    update.timer.cancel()
            self._updates.clear()
        self.drift.reset()

    def _handle(
        self, action: str, params: dict[str, str], region: str, moto: Callable, environ: dict[str, Any]
    ) -> WsgiResult:
        backend = cloudformation_backends[DEFAULT_ACCOUNT_ID][region]
        if action in stack_drift.ACTIONS:
            try:
                return self.drift.handle(action, params, lambda name: _stack(backend, name))
            except DriftError as err:
                raise _CfnError(str(err)) from None
        if action == "CancelUpdateStack":
            stack = _stack(backend, params.get("StackName"))
            if stack.status != "UPDATE_IN_PROGRESS" or stack.stack_id not in self._updates:
                raise _CfnError(
                    f"CancelUpdateStack cannot be called from current stack status {stack.status}"
                )
            update = self._updates[stack.stack_id]
            update.timer.cancel()
            self._start_rollback(update, "User Initiated", rollback_fails=False)
            return cfn_xml.response(action)
        if action == "ContinueUpdateRollback":
            stack = _stack(backend, params.get("StackName"))
            if stack.status != "UPDATE_ROLLBACK_FAILED" or stack.stack_id not in self._updates:
                raise _CfnError(
                    f"ContinueUpdateRollback cannot be called from current stack status {stack.status}"
                )
            self._start_rollback(self._updates[stack.stack_id], "User Initiated", rollback_fails=False)
            return cfn_xml.response(action, {})

        change_set = None
        if action == "ExecuteChangeSet":
            change_set = _change_set(backend, params.get("ChangeSetName"), params.get("StackName"))
            if change_set is None or change_set.change_set_type != "UPDATE":
                return call_wsgi(moto, environ)  # moto's own errors, or a CREATE change set
            if change_set.execution_status != "AVAILABLE":
                raise _CfnError(
                    f"ChangeSet [{change_set.change_set_id}] cannot be executed in its current "
                    f"execution status of [{change_set.execution_status}]",
                    code="InvalidChangeSetStatus",
                )
            stack = change_set.stack
        else:
            stack = _stack(backend, params.get("StackName"))
        if stack.status.endswith("_IN_PROGRESS") or stack.status == "UPDATE_ROLLBACK_FAILED":
            raise _CfnError(f"Stack:{stack.stack_id} is in {stack.status} state and can not be updated.")

        update = _Update(
            stack=stack,
            template=stack.template,
            parameters=dict(stack.parameters),
            input_parameters=dict(stack.resource_map.input_parameters),
            changed_resource=stack.name,
            change_set=change_set,
            versions=lambda_stack.versions(stack.resource_map),
        )
        old_resources = dict(stack.template_dict.get("Resources", {}))
        events_before = len(stack.events)
        status, headers, body = call_wsgi(moto, environ)
        if not status.startswith("200"):
            return status, headers, body

        # moto applied the update at once: reopen it.
        new_events = stack.events[events_before:]
        stack.events[events_before:] = [e for e in new_events if e.resource_status != "UPDATE_COMPLETE"]
        for event in stack.events[events_before:]:
            event.resource_status_reason = event.resource_status_reason or "User Initiated"
        stack.status = "UPDATE_IN_PROGRESS"
        stack._parse_template()
        if change_set is not None:
            stack.parameters = dict(change_set.parameters)  # moto's execute_change_set leaves them
            change_set.execution_status = "EXECUTE_IN_PROGRESS"
        update.version = stack.resource_map.resolved_parameters.get(self.version_parameter)
        new_resources = stack.template_dict.get("Resources", {})
        changed = [name for name, res in new_resources.items() if old_resources.get(name) != res]
        update.changed_resource = (changed or list(new_resources) or [stack.name])[0]
        update.refused = lambda_stack.refused(stack.resource_map)
        stack.output_map = stack._create_output_map()
        self._updates[stack.stack_id] = update
        self._schedule(update, self._finish_update)
        return status, headers, body

    def _schedule(self, update: _Update, step: Callable[[_Update], None]) -> None:
        def run() -> None:
            with self._lock:
                if self._updates.get(update.stack.stack_id) is not update:
                    return  # cancelled, or superseded by a reseed
                try:
                    step(update)
                except Exception:  # moto could not apply it: say so rather than hang in *_IN_PROGRESS
                    log.exception("stack %s: %s failed", update.stack.name, step.__name__)
                    update.stack.status = "UPDATE_ROLLBACK_FAILED"

        update.timer = threading.Timer(self.update_seconds, run)
        update.timer.daemon = True
        update.timer.start()

    def _finish_update(self, update: _Update) -> None:
        stack = update.stack
        fault = self.faults.find("stack_update_failure", stack=stack.name, version=update.version)
        if update.refused is not None:
            fault = {"reason": update.refused.reason, "resource": update.refused.logical_id}
        if fault is None:
            stack._add_stack_event("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS")
            stack._add_stack_event("UPDATE_COMPLETE")
            stack.status = "UPDATE_COMPLETE"
            if update.change_set is not None:
                update.change_set.execution_status = "EXECUTE_COMPLETE"
            del self._updates[stack.stack_id]
            return
        reason = fault.get("reason") or "Resource update failed (injected fault)"
        resource = fault.get("resource") or update.changed_resource
        _resource_event(stack, resource, "UPDATE_FAILED", reason)
        update.failure = fault
        self._start_rollback(
            update,
            f"The following resource(s) failed to update: [{resource}]. ",
            rollback_fails=bool(fault.get("rollback_fails")),
        )

    def _start_rollback(self, update: _Update, reason: str, *, rollback_fails: bool) -> None:
        update.stack._add_stack_event("UPDATE_ROLLBACK_IN_PROGRESS", resource_status_reason=reason)
        update.stack.status = "UPDATE_ROLLBACK_IN_PROGRESS"
        if update.change_set is not None:
            update.change_set.execution_status = "EXECUTE_FAILED"
        self._schedule(update, self._rollback_failed if rollback_fails else self._finish_rollback)

    def _rollback_failed(self, update: _Update) -> None:
        reason = (update.failure or {}).get("reason") or "Rollback failed (injected fault)"
        _resource_event(update.stack, update.changed_resource, "UPDATE_FAILED", reason)
        failed = f"The following resource(s) failed to update: [{update.changed_resource}]."
        update.stack._add_stack_event("UPDATE_ROLLBACK_FAILED", resource_status_reason=failed)
        update.stack.status = "UPDATE_ROLLBACK_FAILED"

    def _finish_rollback(self, update: _Update) -> None:
        stack = update.stack
        stack.template = update.template
        stack._parse_template()
        lambda_stack.restore(stack.resource_map, update.versions)
        stack.resource_map.update(stack.template_dict, update.input_parameters)
        refused = lambda_stack.refused(stack.resource_map)
        if refused is not None:
            raise refused  # the rollback fails (UPDATE_ROLLBACK_FAILED)
        stack.output_map = stack._create_output_map()
        stack.parameters = update.parameters
        stack._add_stack_event("UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS")
        stack._add_stack_event("UPDATE_ROLLBACK_COMPLETE")
        stack.status = "UPDATE_ROLLBACK_COMPLETE"
        del self._updates[stack.stack_id]


class _CfnError(Exception):
    def __init__(self, message: str, code: str = "ValidationError") -> None:
        super().__init__(message)
        self.message, self.code = message, code

    def response(self) -> WsgiResult:
        return cfn_xml.error(self.message, self.code)


def _stack(backend: Any, name: str | None) -> Stack:
    if not name:
        raise _CfnError("1 validation error detected: Value null at 'stackName' failed to satisfy constraint")
    for stack in backend.stacks.values():
        if name in (stack.name, stack.stack_id):
            return stack
    raise _CfnError(f"Stack with id {name} does not exist")


def _change_set(backend: Any, name: str | None, stack_name: str | None) -> ChangeSet | None:
    if name in backend.change_sets:
        return backend.change_sets[name]
    for change_set in backend.change_sets.values():
        if change_set.change_set_name == name and stack_name in (None, change_set.stack_name):
            return change_set
    return None


def _resource_event(stack: Stack, logical_id: str, status: str, reason: str) -> None:
    """A resource-level stack event, the way moto's ``Stack._add_stack_event`` records the stack's own."""
    stack._add_stack_event(status, resource_status_reason=reason)
    event = stack.events[-1]
    if logical_id != stack.name:
        resource = stack.resource_map._resource_json_map.get(logical_id, {})
        event.logical_resource_id = logical_id
        event.resource_type = resource.get("Type", "AWS::CloudFormation::Stack")
        event.physical_resource_id = _physical_id(stack, logical_id)
        event.resource_properties = json.dumps(resource.get("Properties", {}), default=str)


def _physical_id(stack: Stack, logical_id: str) -> str:
    parsed = stack.resource_map._parsed_resources.get(logical_id)
    return str(getattr(parsed, "physical_resource_id", "") or logical_id)
