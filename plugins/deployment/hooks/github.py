"""The repository every GitHub call of a task goes to: the provider's ``GithubHook`` (its connection:
a token or a GitHub App, a GitHub Enterprise host), with reads sent back to back.

PyGithub waits 0.25 s after any request before the next, and 1 s after a write before the next
write. GitHub's REST best practices ask an integration to send its requests one at a time and to
pause at least a second between mutative ones (POST, PATCH, PUT, DELETE); they ask for no pause
between reads. A task's reads are already one at a time, so the 0.25 s was waiting nobody asked
for: 0.5 s in a three-read check, on four tasks of a release's critical path. The 1 s between
writes stays.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig


def github_client(conn_id: str) -> Any:
    """A PyGithub client built from the connection ``conn_id`` by the provider's hook, reads unpaced."""
    from airflow.providers.github.hooks.github import GithubHook
    from github import Github

    provider_client = GithubHook(github_conn_id=conn_id).get_conn()
    return Github(**{**provider_client.requester.kwargs, "seconds_between_requests": None})


def repository(cfg: DeploymentConfig) -> Any:
    """The configured repository (one GET), through :func:`github_client`."""
    return github_client(cfg.connections.github).get_repo(cfg.github.repository)
