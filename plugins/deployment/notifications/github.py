"""GitHub: the release notes from the comparison with the previous production tag, and the release
(looked up by its tag before it is created, so a rerun does not make a second one)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deployment.config import DeploymentConfig
from deployment.hooks.github import repository
from deployment.notifications.base import render
from deployment.notifications.messages import active_flags, approver_names

VERSION_TAG = re.compile(r"^v\d+\.\d+\.\d+$")


# --------------------------------------------------------------------- GitHub
def previous_production_tag(cfg: DeploymentConfig, version: str, backup: dict | None = None) -> str | None:
    """The version production ran before ``version``.

    In order: the version the backup of this run saw live (what production really
    ran), the last successful release in the ledger, the latest published non-rc
    GitHub release. ``None`` for a first release.
    """
    from deployment.ledger import find_releases

    live = (backup or {}).get("previous_version")
    if isinstance(live, str) and VERSION_TAG.match(live) and live != version:
        return live
    for release in find_releases(cfg, "succeeded"):
        if release.get("version") != version and VERSION_TAG.match(str(release.get("version", ""))):
            return release["version"]
    for release in repository(cfg).get_releases():
        tag = release.tag_name
        if not release.draft and not release.prerelease and tag != version and VERSION_TAG.match(tag):
            return tag
    return None


def _ref_exists(repo, tag: str) -> bool:
    from github import UnknownObjectException

    try:
        repo.get_git_ref(f"tags/{tag}")
    except UnknownObjectException:
        return False
    return True


def release_notes(
    cfg: DeploymentConfig, conf: dict[str, Any], previous: str | None, approvals: Any = None
) -> dict[str, Any]:
    """Markdown release notes from GitHub's compare of ``previous``...this release, and when the
    release's first commit was made (``first_commit_at``: DORA's lead time starts there)."""
    from datetime import UTC

    repo = repository(cfg)
    version = conf["version"]
    head = version if _ref_exists(repo, version) else conf["commit_sha"]
    commits: list[dict[str, str]] = []
    compare_url = None
    dates = []  # each commit's author date: the first is where the release's lead time starts
    if previous:
        comparison = repo.compare(previous, head)
        compare_url = comparison.html_url
        for commit in comparison.commits:
            login = commit.author.login if commit.author else commit.commit.author.name
            commits.append(
                {"sha": commit.sha[:7], "title": commit.commit.message.splitlines()[0], "author": login}
            )
            if commit.commit.author and commit.commit.author.date:
                date = commit.commit.author.date
                dates.append(date if date.tzinfo else date.replace(tzinfo=UTC))
    markdown = render(
        "release_notes.md.j2",
        version=version,
        previous=previous,
        conf=conf,
        commits=commits,
        compare_url=compare_url,
        approvers=approver_names(approvals),
        emergency=active_flags(conf.get("emergency") or {}),
    )
    return {
        "previous_version": previous,
        "head": head,
        "commits": len(commits),
        "compare_url": compare_url,
        "first_commit_at": min(dates).isoformat() if dates else None,
        "markdown": markdown,
    }


def publish_github_release(
    cfg: DeploymentConfig, version: str, commit_sha: str, notes: str
) -> dict[str, Any]:
    """Create, or update in place, the published GitHub release ``version`` with ``notes``."""
    from github import UnknownObjectException

    repo = repository(cfg)
    try:
        release = repo.get_release(version)
    except UnknownObjectException:
        release = repo.create_git_release(
            version,
            name=version,
            message=notes,
            draft=False,
            prerelease=False,
            target_commitish=commit_sha,
        )
        action = "created"
    else:
        release = release.update_release(name=version, message=notes, draft=False, prerelease=False)
        action = "updated"
    return {"action": action, "release_id": release.id, "tag": release.tag_name, "url": release.html_url}
