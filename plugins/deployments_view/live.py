"""What production runs now: read from AWS.

Through the DAG's own connection and helpers (``deployment.aws.cloudformation``, the
traffic router the config names (``deployment.traffic.router``), the Amplify hook). A system
that does not answer is reported as such: the view still shows the records.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig


def live_now(config: DeploymentConfig) -> dict[str, Any]:
    """The stack's version and status, the router's weights, the API alias (``{"version", "weights"}``,
    with ``backend``), and each colour's branch version."""
    from deployment.aws import amplify, cloudformation
    from deployment.traffic import router_for

    found: dict[str, Any] = {"stack": None, "weights": None, "colours": {}, "errors": []}
    try:
        stack = cloudformation.describe_stack(config)
        if stack is not None:
            params = {p["ParameterKey"]: p.get("ParameterValue") for p in stack.get("Parameters", [])}
            found["stack"] = {
                "name": config.stack.name,
                "status": stack.get("StackStatus"),
                "version": params.get(config.stack.version_parameter),
                "stack_id": stack.get("StackId"),
            }
    except Exception as err:  # an unreachable AWS endpoint must not take the page down
        found["errors"].append(f"CloudFormation: {err}")
    try:
        found["weights"] = dict(router_for(config).weights())
    except Exception as err:
        found["errors"].append(f"traffic router ({config.traffic.router}): {err}")
    if config.backend is not None:
        from deployment.traffic.api_alias import backup_state

        try:
            found["api_alias"] = backup_state(config)
        except Exception as err:
            found["errors"].append(f"Lambda alias {config.backend.alias}: {err}")
    try:
        client = amplify.client(config)
        for colour, branch in config.amplify.branches.items():
            described = client.get_branch(appId=config.amplify.app_id, branchName=branch)["branch"]
            env = described.get("environmentVariables") or {}
            found["colours"][colour] = {
                "branch": branch,
                "version": env.get(config.amplify.version_variable),
                "weight": (found["weights"] or {}).get(colour),
            }
    except Exception as err:
        found["errors"].append(f"Amplify: {err}")
    weights = found["weights"] or {}
    serving = [colour for colour, weight in weights.items() if weight]
    found["live_colour"] = serving[0] if len(serving) == 1 else None
    found["in_flight"] = len(serving) > 1
    return found
