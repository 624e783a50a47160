"""The GitHub checks against the GitHub emulator, through the provider's GithubHook."""

from __future__ import annotations

from deployment.checks.github import check_rc_release, check_staging_workflow, rc_tag


def test_rc_tag_uses_configured_prefix(cfg):
    assert rc_tag(cfg, "v2.10.3") == "rc-2.10.3"


def test_rc_release_exists(cfg, github):
    result = check_rc_release(cfg, "v1.1.0")
    assert result["ok"] is True
    assert result["tag"] == "rc-1.1.0"
    assert result["prerelease"] is True
    assert "rc-1.1.0" in result["detail"]


def test_rc_release_missing_names_the_tag(cfg, github):
    result = check_rc_release(cfg, "v9.9.9")
    assert result["ok"] is False
    assert "'rc-9.9.9'" in result["detail"]
    assert "never released to staging" in result["detail"]


def test_rc_release_github_error_is_a_failed_check(cfg, github, monkeypatch):
    import json

    monkeypatch.setenv(
        "AIRFLOW_CONN_GITHUB_DEFAULT",
        json.dumps({"conn_type": "github", "password": "wrong", "host": github["url"]}),
    )
    result = check_rc_release(cfg, "v1.1.0")
    assert result["ok"] is False
    assert "HTTP 401" in result["detail"] and "Bad credentials" in result["detail"]


def test_staging_workflow_success(cfg, github):
    result = check_staging_workflow(cfg, github["sha"])
    assert result["ok"] is True
    assert result["conclusion"] == "success"
    assert result["commit_sha"] == github["sha"]


def test_staging_workflow_latest_run_counts(cfg, github):
    github["emulator"].add_workflow_run(cfg.github.staging_workflow, github["sha"], conclusion="failure")
    result = check_staging_workflow(cfg, github["sha"])
    assert result["ok"] is False
    assert result["conclusion"] == "failure"
    assert "concluded 'failure'" in result["detail"]
    assert github["sha"] in result["detail"]


def test_staging_workflow_in_progress(cfg, github):
    github["emulator"].add_workflow_run(cfg.github.staging_workflow, github["sha"], status="in_progress")
    result = check_staging_workflow(cfg, github["sha"])
    assert result["ok"] is False
    assert "has not completed: 'in_progress'" in result["detail"]


def test_staging_workflow_no_run_for_commit(cfg, github):
    result = check_staging_workflow(cfg, "0" * 40)
    assert result["ok"] is False
    assert result["detail"] == f"no run of {cfg.github.staging_workflow} for commit {'0' * 40}"


def test_staging_workflow_unknown_workflow(cfg, github):
    other = cfg.model_copy(
        update={"github": cfg.github.model_copy(update={"staging_workflow": "missing.yml"})}
    )
    result = check_staging_workflow(other, github["sha"])
    assert result["ok"] is False
    assert "missing.yml" in result["detail"] and "HTTP 404" in result["detail"]
