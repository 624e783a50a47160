"""Extra links from tasks to the AWS console: the stack, the change set, the Amplify job.

Airflow 3 stores each link's URL in XCom when the task finishes, so no plugin
registration is needed for them to show in the UI.
"""

from __future__ import annotations

from urllib.parse import quote

from airflow.providers.amazon.aws.links.base_aws import BASE_AWS_CONSOLE_LINK, BaseAwsLink


def quoted(value: str) -> str:
    return quote(value, safe="")


class CloudFormationStackLink(BaseAwsLink):
    name = "CloudFormation stack"
    key = "cloudformation_stack"
    format_str = (
        BASE_AWS_CONSOLE_LINK
        + "/cloudformation/home?region={region_name}#/stacks/stackinfo?stackId={stack_id}"
    )


class CloudFormationChangeSetLink(BaseAwsLink):
    name = "CloudFormation change set"
    key = "cloudformation_change_set"
    format_str = (
        BASE_AWS_CONSOLE_LINK
        + "/cloudformation/home?region={region_name}#/stacks/changesets/changes?stackId={stack_id}"
        + "&changeSetId={change_set_id}"
    )


class AmplifyJobLink(BaseAwsLink):
    name = "Amplify job"
    key = "amplify_job"
    format_str = "https://{region_name}.console.{aws_domain}/amplify/apps/{app_id}/branches/{branch}/deployments/{job_id}"
