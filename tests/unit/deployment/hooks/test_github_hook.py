"""The GitHub client: the provider hook's connection, reads sent back to back, writes still spaced."""

from __future__ import annotations

from github import Requester as pygithub_requester

from deployment.checks.github import check_staging_workflow
from deployment.hooks.github import github_client


def test_a_check_sends_its_reads_without_waiting_between_them(cfg, github, monkeypatch):
    waits: list[float] = []
    monkeypatch.setattr(pygithub_requester.time, "sleep", waits.append)

    result = check_staging_workflow(cfg, github["sha"])

    assert result["ok"] is True and result["conclusion"] == "success"  # the repository, workflow, runs read
    assert waits == []


def test_writes_keep_a_second_between_them_and_the_connection_is_the_hooks(cfg, github):
    client = github_client(cfg.connections.github)
    settings = client.requester.kwargs

    assert settings["seconds_between_requests"] is None
    assert settings["seconds_between_writes"] == 1.0
    assert settings["base_url"] == github["url"]
    assert client.get_repo(cfg.github.repository).full_name == cfg.github.repository
