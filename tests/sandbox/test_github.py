"""Contract tests: the GitHub emulator driven by PyGithub and the Airflow GithubHook over HTTP."""

from __future__ import annotations

import json

import pytest
import requests
from github import Auth, Github, GithubException, UnknownObjectException

from sandbox.faults import Faults
from sandbox.github import GitHubEmulator
from tests.sandbox._servers import serving

REPO = "bayon/coagent"
TOKEN = "sandbox-github-token"


@pytest.fixture
def faults() -> Faults:
    return Faults()


@pytest.fixture
def emulator(faults: Faults) -> GitHubEmulator:
    gh = GitHubEmulator(REPO, TOKEN, faults=faults)
    gh.add_commits(["feat: first release"], tag="v1.0.0")
    gh.add_release("v1.0.0", body="first")
    return gh


@pytest.fixture
def url(emulator: GitHubEmulator):
    with serving(emulator) as base:
        yield base


def client(url: str, token: str = TOKEN) -> Github:
    # no throttling or retries: the tests want each answer as it is
    return Github(
        base_url=url, auth=Auth.Token(token), retry=None, seconds_between_requests=0, seconds_between_writes=0
    )


def test_repository_and_release_by_tag(url: str, emulator: GitHubEmulator) -> None:
    repo = client(url).get_repo(REPO)
    assert (repo.full_name, repo.default_branch) == (REPO, "main")
    release = repo.get_release("v1.0.0")
    assert (release.tag_name, release.body, release.prerelease, release.draft) == (
        "v1.0.0",
        "first",
        False,
        False,
    )
    assert release.author.login == "sandbox-bot"
    assert release.published_at is not None
    assert repo.get_release(release.id).tag_name == "v1.0.0"
    recorded = emulator.recorder.list(method="GET")
    assert [e["path"] for e in recorded] == [
        f"/repos/{REPO}",
        f"/repos/{REPO}/releases/tags/v1.0.0",
        f"/repos/{REPO}/releases/{release.id}",
    ]
    assert all(e["status"] == 200 for e in recorded)


def test_create_update_and_list_releases(url: str, emulator: GitHubEmulator) -> None:
    repo = client(url).get_repo(REPO)
    created = repo.create_git_release("rc-1.1.0", "rc-1.1.0", "candidate", prerelease=True)
    assert (created.tag_name, created.prerelease) == ("rc-1.1.0", True)
    promoted = created.update_release(
        name="v1.1.0", message="final notes", prerelease=False, tag_name="v1.1.0"
    )
    assert (promoted.tag_name, promoted.name, promoted.body, promoted.prerelease) == (
        "v1.1.0",
        "v1.1.0",
        "final notes",
        False,
    )
    assert [r.tag_name for r in repo.get_releases()] == ["v1.1.0", "v1.0.0"]
    assert repo.get_latest_release().tag_name == "v1.1.0"
    post = emulator.recorder.list(method="POST")[0]
    assert post["json"]["tag_name"] == "rc-1.1.0" and post["status"] == 201
    patch = emulator.recorder.list(method="PATCH")[0]
    assert patch["json"]["prerelease"] is False and patch["status"] == 200


def test_duplicate_release_is_422(url: str) -> None:
    repo = client(url).get_repo(REPO)
    with pytest.raises(GithubException) as err:
        repo.create_git_release("v1.0.0", "again", "dup")
    assert err.value.status == 422
    assert err.value.data["message"] == "Validation Failed"
    assert err.value.data["errors"][0]["code"] == "already_exists"


def test_unknown_things_are_404(url: str) -> None:
    gh = client(url)
    repo = gh.get_repo(REPO)
    with pytest.raises(UnknownObjectException) as err:
        repo.get_release("rc-9.9.9")
    assert err.value.data["message"] == "Not Found"
    with pytest.raises(UnknownObjectException):
        repo.get_workflow("nope.yml")
    with pytest.raises(UnknownObjectException):
        gh.get_repo("someone/else")
    with pytest.raises(UnknownObjectException):
        repo.compare("v1.0.0", "v9.9.9")


def test_bad_or_missing_token_is_401(url: str, emulator: GitHubEmulator) -> None:
    with pytest.raises(GithubException) as err:
        client(url, token="wrong").get_repo(REPO)
    assert err.value.status == 401
    assert err.value.data["message"] == "Bad credentials"
    anonymous = requests.get(f"{url}/repos/{REPO}", timeout=5)
    assert anonymous.status_code == 401 and anonymous.json()["message"] == "Bad credentials"
    assert emulator.recorder.list()[-1]["status"] == 401


def test_compare_lists_commits_between_tags(url: str, emulator: GitHubEmulator) -> None:
    shas = emulator.add_commits(
        ["feat: new editor", {"message": "fix: payment rounding", "author": "alice", "author_name": "Alice"}],
        tag="rc-1.1.0",
    )
    repo = client(url).get_repo(REPO)
    comparison = repo.compare("v1.0.0", "rc-1.1.0")
    assert (comparison.status, comparison.ahead_by, comparison.total_commits) == ("ahead", 2, 2)
    commits = list(comparison.commits)
    assert [c.sha for c in commits] == shas
    assert [c.commit.message for c in commits] == ["feat: new editor", "fix: payment rounding"]
    assert commits[1].commit.author.name == "Alice"
    assert commits[1].author.login == "alice"
    backwards = repo.compare("rc-1.1.0", "v1.0.0")
    assert (backwards.status, backwards.behind_by, backwards.total_commits) == ("behind", 2, 0)
    assert [t.name for t in repo.get_tags()] == ["rc-1.1.0", "v1.0.0"]
    assert repo.get_git_ref("tags/rc-1.1.0").object.sha == shas[-1]
    assert repo.get_commit("rc-1.1.0").sha == shas[-1]


def test_compare_paginates(url: str, emulator: GitHubEmulator) -> None:
    emulator.add_commits([f"chore: {n}" for n in range(7)], tag="v1.0.1")
    gh = Github(base_url=url, auth=Auth.Token(TOKEN), retry=None, seconds_between_requests=0, per_page=3)
    commits = list(gh.get_repo(REPO).compare("v1.0.0", "v1.0.1").get_commits(comparison_commits_per_page=3))
    assert [c.commit.message for c in commits] == [f"chore: {n}" for n in range(7)]


def test_workflow_runs_filtered(url: str, emulator: GitHubEmulator) -> None:
    head = emulator.head()
    emulator.add_workflow_run("deploy-staging.yml", "0" * 40, conclusion="success")
    failed = emulator.add_workflow_run("deploy-staging.yml", head, conclusion="failure")
    passed = emulator.add_workflow_run("deploy-staging.yml", head, conclusion="success")
    running = emulator.add_workflow_run("deploy-staging.yml", head, status="in_progress")
    workflow = client(url).get_repo(REPO).get_workflow("deploy-staging.yml")
    assert workflow.path == ".github/workflows/deploy-staging.yml"
    runs = workflow.get_runs(head_sha=head, branch="main")
    assert [r.id for r in runs] == [running, passed, failed]
    assert [r.conclusion for r in workflow.get_runs(head_sha=head, status="completed")] == [
        "success",
        "failure",
    ]
    assert [r.id for r in workflow.get_runs(head_sha=head, status="success")] == [passed]
    assert [r.id for r in workflow.get_runs(head_sha=head, status="in_progress")] == [running]
    assert workflow.get_runs(branch="release").totalCount == 0
    assert emulator.recorder.list()[-1]["query"]["branch"] == "release"


def test_outage_answers_503(url: str, faults: Faults) -> None:
    faults.add("outage", service="github")
    with pytest.raises(GithubException) as err:
        client(url).get_repo(REPO)
    assert err.value.status == 503
    faults.clear()
    faults.add("outage", service="slack")
    assert client(url).get_repo(REPO).full_name == REPO


def test_outage_through_the_default_client_retries_then_fails(url: str, faults: Faults, emulator) -> None:
    faults.add("outage", service="github")
    gh = Github(base_url=url, auth=Auth.Token(TOKEN), seconds_between_requests=0)
    with pytest.raises(requests.exceptions.RetryError):
        gh.get_repo(REPO)
    assert {e["status"] for e in emulator.recorder.list()} == {503}


def test_bad_json_is_400(url: str) -> None:
    response = requests.post(
        f"{url}/repos/{REPO}/releases",
        data="{not json",
        headers={"Authorization": f"token {TOKEN}"},
        timeout=5,
    )
    assert response.status_code == 400
    assert response.json()["message"] == "Problems parsing JSON"


def test_github_hook_uses_the_emulator(url: str, emulator: GitHubEmulator, monkeypatch) -> None:
    from airflow.providers.github.hooks.github import GithubHook

    conn = {"conn_type": "github", "host": url, "password": TOKEN}
    monkeypatch.setenv("AIRFLOW_CONN_GITHUB_DEFAULT", json.dumps(conn))
    hook = GithubHook(github_conn_id="github_default")
    release = hook.get_conn().get_repo(REPO).get_release("v1.0.0")
    assert release.tag_name == "v1.0.0"
    assert emulator.recorder.list()[-1]["path"] == f"/repos/{REPO}/releases/tags/v1.0.0"
