"""The two GitHub checks of pre-deployment validation.

``gh release view rc-X.Y.Z`` and ``gh run list --workflow=deploy-staging.yml``,
done with the provider's ``GithubHook`` (PyGithub). Each returns a result dict
``{check, ok, detail, ...}``; a GitHub error is a failed check that says so,
never an exception that hides which check could not be made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from github import GithubException

from deployment.hooks.github import repository

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig


def rc_tag(cfg: DeploymentConfig, version: str) -> str:
    """``v1.2.3`` → ``rc-1.2.3`` (with the configured prefix)."""
    return f"{cfg.github.rc_tag_prefix}{version.removeprefix('v')}"


def _github_error(err: GithubException) -> str:
    message = err.data.get("message") if isinstance(err.data, dict) else err.data
    return f"HTTP {err.status} {message or ''}".strip()


def check_rc_release(cfg: DeploymentConfig, version: str) -> dict[str, Any]:
    """The staging release ``rc-X.Y.Z`` for ``version`` exists on GitHub."""
    tag = rc_tag(cfg, version)
    result: dict[str, Any] = {"check": "rc_release", "tag": tag, "repository": cfg.github.repository}
    try:
        release = repository(cfg).get_release(tag)
    except GithubException as err:
        if err.status == 404:
            detail = (
                f"no GitHub release {tag!r} in {cfg.github.repository}: "
                f"{version} was never released to staging"
            )
        else:
            detail = f"could not read GitHub release {tag!r} of {cfg.github.repository}: {_github_error(err)}"
        return {**result, "ok": False, "detail": detail}
    return {
        **result,
        "ok": True,
        "release_id": release.id,
        "name": release.title,
        "prerelease": release.prerelease,
        "draft": release.draft,
        "html_url": release.html_url,
        "detail": f"GitHub release {tag!r} exists ({release.html_url})",
    }


def check_staging_workflow(cfg: DeploymentConfig, commit_sha: str) -> dict[str, Any]:
    """The latest run of the staging workflow for ``commit_sha`` completed with ``success``."""
    workflow = cfg.github.staging_workflow
    result: dict[str, Any] = {"check": "staging_workflow", "workflow": workflow, "commit_sha": commit_sha}
    try:
        runs = repository(cfg).get_workflow(workflow).get_runs(head_sha=commit_sha)
        latest = next(iter(runs), None)
    except GithubException as err:
        detail = f"could not list runs of {workflow} for commit {commit_sha}: {_github_error(err)}"
        return {**result, "ok": False, "detail": detail}
    if latest is None:
        return {**result, "ok": False, "detail": f"no run of {workflow} for commit {commit_sha}"}
    run = {
        "run_id": latest.id,
        "run_number": latest.run_number,
        "status": latest.status,
        "conclusion": latest.conclusion,
        "html_url": latest.html_url,
    }
    label = f"the latest run of {workflow} for commit {commit_sha} (#{latest.run_number}, {latest.html_url})"
    if latest.status != "completed":
        return {**result, **run, "ok": False, "detail": f"{label} has not completed: {latest.status!r}"}
    if latest.conclusion != "success":
        return {
            **result,
            **run,
            "ok": False,
            "detail": f"{label} concluded {latest.conclusion!r}, not success",
        }
    return {**result, **run, "ok": True, "detail": f"{label} concluded 'success'"}


def tag_commit(repository: Any, tag: str) -> str | None:
    """The commit ``tag`` resolves to through the git refs API (annotated tags peeled), None if absent."""
    try:
        target = repository.get_git_ref(f"tags/{tag}").object
        # An annotated tag's ref points at a tag object, which points at the commit.
        while target.type == "tag":
            target = repository.get_git_tag(target.sha).object
    except GithubException as err:
        if err.status == 404:
            return None
        raise
    return target.sha


def check_tags(cfg: DeploymentConfig, version: str, commit_sha: str) -> dict[str, Any]:
    """``rc-X.Y.Z`` exists and, like ``vX.Y.Z`` when it exists already, resolves to ``commit_sha``."""
    rc = rc_tag(cfg, version)
    result: dict[str, Any] = {"check": "tags", "commit_sha": commit_sha, "repository": cfg.github.repository}
    try:
        repo = repository(cfg)
        tags = {rc: tag_commit(repo, rc), version: tag_commit(repo, version)}
    except GithubException as err:
        detail = (
            f"could not read the tags {rc!r} and {version!r} of {cfg.github.repository}: {_github_error(err)}"
        )
        return {**result, "ok": False, "detail": detail}
    result["tags"] = tags
    if tags[rc] is None:
        return {**result, "ok": False, "detail": f"tag {rc!r} does not exist in {cfg.github.repository}"}
    wrong = [
        f"tag {tag!r} points at {sha}, not at commit_sha {commit_sha}"
        for tag, sha in tags.items()
        if sha is not None and sha != commit_sha
    ]
    if wrong:
        return {**result, "ok": False, "detail": "; ".join(wrong)}
    found = " and ".join(repr(tag) for tag, sha in tags.items() if sha)
    return {**result, "ok": True, "detail": f"{found} resolve to {commit_sha}"}


def check_staging_build(cfg: DeploymentConfig, commit_sha: str, build: dict[str, Any]) -> dict[str, Any]:
    """The staging run that published ``build`` is a successful staging workflow run on ``commit_sha``."""
    workflow = cfg.github.staging_workflow
    run_id = (build.get("staging_run") or {}).get("run_id")
    result: dict[str, Any] = {"check": "staging_build", "workflow": workflow, "run_id": run_id}
    if not isinstance(run_id, int):
        return {
            **result,
            "ok": False,
            "detail": f"the manifest {build['manifest_key']} names no staging run: "
            f"it was not published by {workflow}",
        }
    try:
        run = repository(cfg).get_workflow_run(run_id)
        facts = {"head_sha": run.head_sha, "path": run.path, "conclusion": run.conclusion}
    except GithubException as err:
        return {
            **result,
            "ok": False,
            "detail": f"could not read staging run {run_id} named by the manifest: {_github_error(err)}",
        }
    problems = []
    if facts["head_sha"] != commit_sha:
        problems.append(f"it ran on commit {facts['head_sha']}, not {commit_sha}")
    if not str(facts["path"]).endswith(f"/{workflow}"):
        problems.append(f"it is a run of {facts['path']}, not of {workflow}")
    if facts["conclusion"] != "success":
        problems.append(f"it concluded {facts['conclusion']!r}")
    label = f"staging run {run_id} that published the build {build['manifest_key']}"
    if problems:
        return {**result, **facts, "ok": False, "detail": f"{label}: " + "; ".join(problems)}
    return {**result, **facts, "ok": True, "detail": f"{label} ran {workflow} on {commit_sha} and succeeded"}
