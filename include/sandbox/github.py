"""A GitHub REST API emulator for one repository, enough for PyGithub and ``GithubHook``.

Entry point::

    GitHubEmulator(repository="bayon/coagent", token="sandbox-token",
                   *, faults: Faults | None = None, recorder: Recorder | None = None)

The instance is a WSGI application; serve it at the root of a port and point
the ``github`` connection's host at ``http://127.0.0.1:<port>`` (``GithubHook``
passes the host to ``Github(base_url=...)``), password = ``token``.

Served (``{o}/{r}`` = ``repository``; anything else is 404 ``{"message": "Not Found"}``):
``GET /user``, ``GET /repos/{o}/{r}``; releases: list, ``POST`` create (422 for a
tag that already has a release), ``GET``/``PATCH`` by id, ``GET tags/{tag}``,
``GET latest``; ``GET tags``; ``GET commits/{ref}``; ``GET compare/{base}...{head}``;
``GET git/ref/{ref}``, ``POST git/refs``; ``GET actions/workflows/{file|id}`` and
``.../runs`` (filters ``head_sha``, ``branch``, ``status``, ``event``);
``GET actions/runs/{id}``. Lists paginate with ``page``/``per_page`` and a
``Link`` header. Every request needs ``Authorization: token|Bearer <token>``
(401 ``Bad credentials`` otherwise). An ``outage`` fault with ``service="github"``
answers 503 to everything. Every request is recorded (method, path, query,
json, status).

The repository has one linear history on ``main``. Seed it in Python:
``add_commits`` (optionally tagging the last commit), ``add_tag``,
``add_release`` and ``add_workflow_run``; ``move_tag`` re-points a tag (a fault);
``version_at`` is the version a build of a commit serves (the Amplify emulator's source).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import threading
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from sandbox.faults import Faults
from sandbox.recorder import Recorder

DOCS = "https://docs.github.com/rest"
BOT = "sandbox-bot"
RUN_STATUSES = {"queued", "in_progress", "completed", "waiting", "requested", "pending"}


class GitHubError(Exception):
    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"message": message, "documentation_url": DOCS, "status": str(status), **extra}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sha(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def _user(base: str, login: str) -> dict[str, Any]:
    return {
        "login": login,
        "id": int(_sha(login)[:7], 16),
        "node_id": f"U_{login}",
        "type": "User",
        "site_admin": False,
        "url": f"{base}/users/{login}",
        "html_url": f"https://github.com/{login}",
    }


class GitHubEmulator:
    """The WSGI app; seeding methods are thread-safe and may be called while serving."""

    def __init__(
        self,
        repository: str,
        token: str,
        *,
        faults: Faults | None = None,
        recorder: Recorder | None = None,
    ) -> None:
        if repository.count("/") != 1:
            raise ValueError(f"repository must be 'owner/name', got {repository!r}")
        if not token:
            raise ValueError("token must not be empty")
        self.repository = repository
        self.token = token
        self.faults = faults or Faults()
        self.recorder = recorder if recorder is not None else Recorder()
        self._lock = threading.RLock()
        self._ids = itertools.count(1001)
        self._commits: list[dict[str, Any]] = []  # linear history of main, oldest first
        self._tags: dict[str, str] = {}  # tag -> sha
        self._releases: dict[int, dict[str, Any]] = {}
        self._workflows: dict[str, dict[str, Any]] = {}  # file -> workflow
        self._runs: dict[int, dict[str, Any]] = {}
        self._run_numbers: dict[str, itertools.count] = {}
        self._created = _now()
        self.add_commits(["Initial commit"])
        repo = "/repos/<owner>/<name>"
        self._map = Map(
            [
                Rule("/user", endpoint="user", methods=["GET"]),
                Rule(repo, endpoint="repo", methods=["GET"]),
                Rule(f"{repo}/releases", endpoint="list_releases", methods=["GET"]),
                Rule(f"{repo}/releases", endpoint="create_release", methods=["POST"]),
                Rule(f"{repo}/releases/latest", endpoint="latest_release", methods=["GET"]),
                Rule(f"{repo}/releases/tags/<path:tag>", endpoint="release_by_tag", methods=["GET"]),
                Rule(f"{repo}/releases/<int:release_id>", endpoint="get_release", methods=["GET"]),
                Rule(f"{repo}/releases/<int:release_id>", endpoint="update_release", methods=["PATCH"]),
                Rule(f"{repo}/tags", endpoint="list_tags", methods=["GET"]),
                Rule(f"{repo}/commits/<path:ref>", endpoint="get_commit", methods=["GET"]),
                Rule(f"{repo}/compare/<path:spec>", endpoint="compare", methods=["GET"]),
                Rule(f"{repo}/git/ref/<path:ref>", endpoint="get_ref", methods=["GET"]),
                Rule(f"{repo}/git/refs", endpoint="create_ref", methods=["POST"]),
                Rule(f"{repo}/actions/workflows/<workflow>", endpoint="get_workflow", methods=["GET"]),
                Rule(f"{repo}/actions/workflows/<workflow>/runs", endpoint="list_runs", methods=["GET"]),
                Rule(f"{repo}/actions/runs/<int:run_id>", endpoint="get_run", methods=["GET"]),
            ]
        )

    # ----------------------------------------------------------------- seeding
    def add_commits(self, commits: list[str | dict[str, Any]], *, tag: str | None = None) -> list[str]:
        """Append commits to ``main`` and return their shas; ``tag`` tags the last one.

        Each commit is a message or a dict with ``message`` and optional
        ``author`` (login), ``author_name``, ``author_email``, ``sha``.
        """
        shas = []
        with self._lock:
            for item in commits:
                spec = {"message": item} if isinstance(item, str) else dict(item)
                if "message" not in spec:
                    raise ValueError(f"a commit needs a message, got {item!r}")
                parent = self._commits[-1]["sha"] if self._commits else None
                sha = spec.get("sha") or _sha(f"{parent}:{len(self._commits)}:{spec['message']}")
                login = spec.get("author", "dev")
                self._commits.append(
                    {
                        "sha": sha,
                        "parent": parent,
                        "message": spec["message"],
                        "login": login,
                        "name": spec.get("author_name", login),
                        "email": spec.get("author_email", f"{login}@users.noreply.github.com"),
                        "date": spec.get("date", _now()),
                    }
                )
                shas.append(sha)
            if tag is not None:
                self.add_tag(tag, shas[-1] if shas else None)
        return shas

    def add_tag(self, tag: str, sha: str | None = None) -> str:
        """Tag ``sha`` (default: the head of ``main``); return the sha."""
        with self._lock:
            sha = sha or self._commits[-1]["sha"]
            self._index_of(sha)
            self._tags[tag] = sha
            return sha

    def add_release(
        self,
        tag: str,
        *,
        name: str | None = None,
        body: str = "",
        prerelease: bool = False,
        draft: bool = False,
        target_commitish: str = "main",
        author: str = BOT,
    ) -> int:
        """Create a release (and its tag at the head of ``main`` if new); return its id."""
        with self._lock:
            if any(r["tag_name"] == tag for r in self._releases.values()):
                raise ValueError(f"a release for tag {tag!r} already exists")
            if tag not in self._tags:
                self.add_tag(tag)
            release_id = next(self._ids)
            now = _now()
            self._releases[release_id] = {
                "id": release_id,
                "tag_name": tag,
                "name": name if name is not None else tag,
                "body": body,
                "draft": draft,
                "prerelease": prerelease,
                "target_commitish": target_commitish,
                "author": author,
                "created_at": now,
                "published_at": None if draft else now,
            }
            return release_id

    def add_workflow_run(
        self,
        workflow: str,
        head_sha: str,
        *,
        conclusion: str | None = "success",
        status: str = "completed",
        branch: str = "main",
        event: str = "push",
    ) -> int:
        """Record a run of ``workflow`` (a file name such as ``deploy-staging.yml``); return its id."""
        if status not in RUN_STATUSES:
            raise ValueError(f"unknown run status {status!r}; known: {sorted(RUN_STATUSES)}")
        with self._lock:
            wf = self._workflow(workflow)
            run_id = next(self._ids)
            now = _now()
            self._runs[run_id] = {
                "id": run_id,
                "workflow": workflow,
                "workflow_id": wf["id"],
                "name": wf["name"],
                "head_sha": head_sha,
                "head_branch": branch,
                "event": event,
                "status": status,
                "conclusion": conclusion if status == "completed" else None,
                "run_number": next(self._run_numbers.setdefault(workflow, itertools.count(1))),
                "created_at": now,
                "updated_at": now,
            }
            return run_id

    def head(self) -> str:
        with self._lock:
            return self._commits[-1]["sha"]

    def move_tag(self, tag: str, sha: str) -> str:
        """Point an existing ``tag`` at ``sha`` (a force-pushed tag); return the sha it had."""
        with self._lock:
            if tag not in self._tags:
                raise ValueError(f"no tag {tag!r}")
            self._index_of(sha)
            before, self._tags[tag] = self._tags[tag], sha
            return before

    def version_at(self, commit: str | None = None) -> tuple[str, str]:
        """``(sha, version)`` of the code at ``commit`` (default: the head of ``main``).

        The version is that of a ``vX.Y.Z`` or ``<rc prefix>X.Y.Z`` tag on the commit
        itself; a commit without one is ``<nearest earlier version>-dev.<sha7>``: what a
        build of an untagged branch head would serve.
        """
        with self._lock:
            index = self._index_of(self._resolve(commit)) if commit else len(self._commits) - 1
            for position in range(index, -1, -1):
                sha = self._commits[position]["sha"]
                versions = sorted(
                    "v" + match.group(1)
                    for tag, tagged in self._tags.items()
                    if tagged == sha and (match := re.fullmatch(r"(?:v|[A-Za-z]+-)(\d+\.\d+\.\d+)", tag))
                )
                if versions:
                    head = self._commits[index]["sha"]
                    return head, versions[-1] if position == index else f"{versions[-1]}-dev.{head[:7]}"
            head = self._commits[index]["sha"]
            return head, f"v0.0.0-dev.{head[:7]}"

    def releases(self) -> list[dict[str, Any]]:
        """Copies of the stored releases (internal shape), oldest first."""
        with self._lock:
            return [dict(r) for r in self._releases.values()]

    # --------------------------------------------------------------------- WSGI
    def __call__(self, environ: dict, start_response: Any) -> Any:
        request = Request(environ)
        response = self._dispatch(request)
        self.recorder.record_request(request, response.status_code, query=request.args.to_dict())
        return response(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
        if self.faults.find("outage", service="github"):
            return _json({"message": "Service Unavailable", "documentation_url": DOCS}, 503)
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() not in {"token", "bearer"} or credential.strip() != self.token:
            return _json({"message": "Bad credentials", "documentation_url": DOCS, "status": "401"}, 401)
        try:
            endpoint, args = self._map.bind_to_environ(request.environ).match()
            owner, name = args.pop("owner", None), args.pop("name", None)
            if owner is not None and f"{owner}/{name}".lower() != self.repository.lower():
                raise GitHubError(404, "Not Found")
            base = request.host_url.rstrip("/")
            with self._lock:
                result = getattr(self, f"_{endpoint}")(request, base, **args)
        except GitHubError as err:
            return _json(err.body, err.status)
        except NotFound:
            return _json({"message": "Not Found", "documentation_url": DOCS, "status": "404"}, 404)
        except HTTPException as err:
            return _json({"message": err.name, "documentation_url": DOCS}, err.code or 400)
        return result if isinstance(result, Response) else _json(result)

    # ---------------------------------------------------------------- endpoints
    def _user(self, request: Request, base: str) -> dict[str, Any]:
        return _user(base, BOT)

    def _repo(self, request: Request, base: str) -> dict[str, Any]:
        owner, name = self.repository.split("/")
        url = f"{base}/repos/{self.repository}"
        return {
            "id": int(_sha(self.repository)[:7], 16),
            "node_id": f"R_{name}",
            "name": name,
            "full_name": self.repository,
            "private": True,
            "owner": _user(base, owner),
            "html_url": f"https://github.com/{self.repository}",
            "url": url,
            "releases_url": f"{url}/releases{{/id}}",
            "tags_url": f"{url}/tags",
            "compare_url": f"{url}/compare/{{base}}...{{head}}",
            "default_branch": "main",
            "created_at": self._created,
            "updated_at": _now(),
            "pushed_at": self._commits[-1]["date"],
        }

    def _list_releases(self, request: Request, base: str) -> Response:
        releases = sorted(self._releases.values(), key=lambda r: r["id"], reverse=True)
        return _paginate(request, [self._release_json(base, r) for r in releases])

    def _create_release(self, request: Request, base: str) -> Response:
        data = _body(request)
        tag = data.get("tag_name")
        if not isinstance(tag, str) or not tag:
            raise _validation("Release", "tag_name", "missing_field")
        if any(r["tag_name"] == tag for r in self._releases.values()):
            raise _validation("Release", "tag_name", "already_exists")
        target = data.get("target_commitish") or "main"
        if tag not in self._tags:
            self.add_tag(tag, self._resolve(target))
        release_id = self.add_release(
            tag,
            name=data.get("name"),
            body=data.get("body") or "",
            prerelease=bool(data.get("prerelease", False)),
            draft=bool(data.get("draft", False)),
            target_commitish=target,
            author=BOT,
        )
        return _json(self._release_json(base, self._releases[release_id]), 201)

    def _latest_release(self, request: Request, base: str) -> dict[str, Any]:
        published = [r for r in self._releases.values() if not r["draft"] and not r["prerelease"]]
        if not published:
            raise GitHubError(404, "Not Found")
        return self._release_json(base, max(published, key=lambda r: r["id"]))

    def _release_by_tag(self, request: Request, base: str, tag: str) -> dict[str, Any]:
        for release in self._releases.values():
            if release["tag_name"] == tag:
                return self._release_json(base, release)
        raise GitHubError(404, "Not Found")

    def _get_release(self, request: Request, base: str, release_id: int) -> dict[str, Any]:
        if release_id not in self._releases:
            raise GitHubError(404, "Not Found")
        return self._release_json(base, self._releases[release_id])

    def _update_release(self, request: Request, base: str, release_id: int) -> dict[str, Any]:
        if release_id not in self._releases:
            raise GitHubError(404, "Not Found")
        release = self._releases[release_id]
        data = _body(request)
        tag = data.get("tag_name")
        if tag is not None and tag != release["tag_name"]:
            if not isinstance(tag, str) or not tag:
                raise _validation("Release", "tag_name", "invalid")
            if any(r["tag_name"] == tag for r in self._releases.values()):
                raise _validation("Release", "tag_name", "already_exists")
            if tag not in self._tags:
                target = data.get("target_commitish") or release["target_commitish"]
                self.add_tag(tag, self._resolve(target))
            release["tag_name"] = tag
        for field in ("name", "body", "target_commitish"):
            if data.get(field) is not None:
                release[field] = data[field]
        for field in ("draft", "prerelease"):
            if field in data:
                release[field] = bool(data[field])
        if not release["draft"] and release["published_at"] is None:
            release["published_at"] = _now()
        return self._release_json(base, release)

    def _list_tags(self, request: Request, base: str) -> Response:
        url = f"{base}/repos/{self.repository}"
        tags = [
            {
                "name": tag,
                "commit": {"sha": sha, "url": f"{url}/commits/{sha}"},
                "zipball_url": f"{url}/zipball/refs/tags/{tag}",
                "tarball_url": f"{url}/tarball/refs/tags/{tag}",
                "node_id": f"REF_{tag}",
            }
            for tag, sha in reversed(self._tags.items())
        ]
        return _paginate(request, tags)

    def _get_commit(self, request: Request, base: str, ref: str) -> dict[str, Any]:
        return self._commit_json(base, self._commits[self._index_of(self._resolve(ref))])

    def _compare(self, request: Request, base: str, spec: str) -> Response:
        if "..." not in spec:
            raise GitHubError(404, "Not Found")
        base_ref, head_ref = spec.split("...", 1)
        base_index = self._index_of(self._resolve(base_ref))
        head_index = self._index_of(self._resolve(head_ref))
        ahead = max(head_index - base_index, 0)
        behind = max(base_index - head_index, 0)
        commits = [self._commit_json(base, c) for c in self._commits[base_index + 1 : head_index + 1]]
        url = f"{base}/repos/{self.repository}/compare/{quote(spec)}"
        html = f"https://github.com/{self.repository}/compare/{spec}"
        page, per_page = _page_args(request, default=250)
        summary = {
            "url": url,
            "html_url": html,
            "permalink_url": html,
            "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch",
            "base_commit": self._commit_json(base, self._commits[base_index]),
            "merge_base_commit": self._commit_json(base, self._commits[min(base_index, head_index)]),
            "status": "identical" if base_index == head_index else ("ahead" if ahead else "behind"),
            "ahead_by": ahead,
            "behind_by": behind,
            "total_commits": len(commits),
            "commits": commits[(page - 1) * per_page : page * per_page],
            "files": [],
        }
        response = _json(summary)
        _link(request, response, len(commits), page, per_page)
        return response

    def _get_ref(self, request: Request, base: str, ref: str) -> dict[str, Any]:
        kind, _, name = ref.partition("/")
        if kind == "tags" and name in self._tags:
            sha = self._tags[name]
        elif kind == "heads" and name == "main":
            sha = self._commits[-1]["sha"]
        else:
            raise GitHubError(404, "Not Found")
        return self._ref_json(base, f"refs/{ref}", sha)

    def _create_ref(self, request: Request, base: str) -> Response:
        data = _body(request)
        ref, sha = data.get("ref"), data.get("sha")
        if not isinstance(ref, str) or not ref.startswith("refs/tags/") or not isinstance(sha, str):
            raise GitHubError(422, "Reference name must start with 'refs/tags/' and give a sha")
        tag = ref.removeprefix("refs/tags/")
        if tag in self._tags:
            raise GitHubError(422, "Reference already exists")
        self.add_tag(tag, self._resolve(sha))
        return _json(self._ref_json(base, ref, self._tags[tag]), 201)

    def _get_workflow(self, request: Request, base: str, workflow: str) -> dict[str, Any]:
        return self._workflow_json(base, self._find_workflow(workflow))

    def _list_runs(self, request: Request, base: str, workflow: str) -> Response:
        wf = self._find_workflow(workflow)
        runs = [r for r in self._runs.values() if r["workflow_id"] == wf["id"]]
        filters = request.args
        if "head_sha" in filters:
            runs = [r for r in runs if r["head_sha"] == filters["head_sha"]]
        if "branch" in filters:
            runs = [r for r in runs if r["head_branch"] == filters["branch"]]
        if "event" in filters:
            runs = [r for r in runs if r["event"] == filters["event"]]
        if "status" in filters:
            wanted = filters["status"]
            key = "status" if wanted in RUN_STATUSES else "conclusion"
            runs = [r for r in runs if r[key] == wanted]
        runs.sort(key=lambda r: r["id"], reverse=True)
        return _paginate(request, [self._run_json(base, r) for r in runs], list_item="workflow_runs")

    def _get_run(self, request: Request, base: str, run_id: int) -> dict[str, Any]:
        if run_id not in self._runs:
            raise GitHubError(404, "Not Found")
        return self._run_json(base, self._runs[run_id])

    # ------------------------------------------------------------------ helpers
    def _workflow(self, file: str) -> dict[str, Any]:
        if file not in self._workflows:
            self._workflows[file] = {
                "id": next(self._ids),
                "file": file,
                "name": file.rsplit(".", 1)[0],
                "created_at": _now(),
            }
        return self._workflows[file]

    def _find_workflow(self, workflow: str) -> dict[str, Any]:
        for wf in self._workflows.values():
            if workflow in (wf["file"], str(wf["id"])):
                return wf
        raise GitHubError(404, "Not Found")

    def _resolve(self, ref: str) -> str:
        """The sha a branch, tag or (possibly abbreviated) sha names."""
        if ref in ("main", "refs/heads/main", "HEAD"):
            return self._commits[-1]["sha"]
        name = ref.removeprefix("refs/tags/")
        if name in self._tags:
            return self._tags[name]
        if len(ref) >= 7:
            for commit in self._commits:
                if commit["sha"].startswith(ref):
                    return commit["sha"]
        raise GitHubError(404, "Not Found")

    def _index_of(self, sha: str) -> int:
        for index, commit in enumerate(self._commits):
            if commit["sha"] == sha:
                return index
        raise GitHubError(404, "Not Found")

    def _commit_json(self, base: str, commit: dict[str, Any]) -> dict[str, Any]:
        url = f"{base}/repos/{self.repository}"
        person = {"name": commit["name"], "email": commit["email"], "date": commit["date"]}
        return {
            "sha": commit["sha"],
            "node_id": f"C_{commit['sha'][:10]}",
            "url": f"{url}/commits/{commit['sha']}",
            "html_url": f"https://github.com/{self.repository}/commit/{commit['sha']}",
            "commit": {
                "message": commit["message"],
                "author": person,
                "committer": person,
                "url": f"{url}/git/commits/{commit['sha']}",
                "tree": {"sha": _sha("tree" + commit["sha"]), "url": f"{url}/git/trees/{commit['sha']}"},
                "comment_count": 0,
            },
            "author": _user(base, commit["login"]),
            "committer": _user(base, commit["login"]),
            "parents": (
                [{"sha": commit["parent"], "url": f"{url}/commits/{commit['parent']}"}]
                if commit["parent"]
                else []
            ),
        }

    def _release_json(self, base: str, release: dict[str, Any]) -> dict[str, Any]:
        url = f"{base}/repos/{self.repository}/releases/{release['id']}"
        html = f"https://github.com/{self.repository}/releases"
        return {
            "url": url,
            "assets_url": f"{url}/assets",
            "upload_url": f"{base}/repos/{self.repository}/releases/{release['id']}/assets{{?name,label}}",
            "html_url": f"{html}/tag/{release['tag_name']}",
            "tarball_url": f"{base}/repos/{self.repository}/tarball/{release['tag_name']}",
            "zipball_url": f"{base}/repos/{self.repository}/zipball/{release['tag_name']}",
            "id": release["id"],
            "node_id": f"RE_{release['id']}",
            "tag_name": release["tag_name"],
            "target_commitish": release["target_commitish"],
            "name": release["name"],
            "body": release["body"],
            "draft": release["draft"],
            "prerelease": release["prerelease"],
            "immutable": False,
            "created_at": release["created_at"],
            "published_at": release["published_at"],
            "author": _user(base, release["author"]),
            "assets": [],
        }

    def _ref_json(self, base: str, ref: str, sha: str) -> dict[str, Any]:
        url = f"{base}/repos/{self.repository}"
        return {
            "ref": ref,
            "node_id": f"REF_{ref}",
            "url": f"{url}/git/{ref}",
            "object": {"type": "commit", "sha": sha, "url": f"{url}/git/commits/{sha}"},
        }

    def _workflow_json(self, base: str, wf: dict[str, Any]) -> dict[str, Any]:
        url = f"{base}/repos/{self.repository}/actions/workflows/{wf['id']}"
        html = f"https://github.com/{self.repository}"
        return {
            "id": wf["id"],
            "node_id": f"W_{wf['id']}",
            "name": wf["name"],
            "path": f".github/workflows/{wf['file']}",
            "state": "active",
            "created_at": wf["created_at"],
            "updated_at": wf["created_at"],
            "url": url,
            "html_url": f"{html}/blob/main/.github/workflows/{wf['file']}",
            "badge_url": f"{html}/workflows/{wf['name']}/badge.svg",
        }

    def _run_json(self, base: str, run: dict[str, Any]) -> dict[str, Any]:
        repo_url = f"{base}/repos/{self.repository}"
        url = f"{repo_url}/actions/runs/{run['id']}"
        return {
            "id": run["id"],
            "node_id": f"WFR_{run['id']}",
            "name": run["name"],
            "path": f".github/workflows/{run['workflow']}",
            "head_branch": run["head_branch"],
            "head_sha": run["head_sha"],
            "run_number": run["run_number"],
            "run_attempt": 1,
            "event": run["event"],
            "status": run["status"],
            "conclusion": run["conclusion"],
            "workflow_id": run["workflow_id"],
            "url": url,
            "html_url": f"https://github.com/{self.repository}/actions/runs/{run['id']}",
            "jobs_url": f"{url}/jobs",
            "logs_url": f"{url}/logs",
            "cancel_url": f"{url}/cancel",
            "rerun_url": f"{url}/rerun",
            "workflow_url": f"{repo_url}/actions/workflows/{run['workflow_id']}",
            "created_at": run["created_at"],
            "updated_at": run["updated_at"],
            "run_started_at": run["created_at"],
            "pull_requests": [],
        }


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json; charset=utf-8")


def _body(request: Request) -> dict[str, Any]:
    try:
        data = json.loads(request.get_data(as_text=True) or "{}")
    except ValueError:
        raise GitHubError(400, "Problems parsing JSON") from None
    if not isinstance(data, dict):
        raise GitHubError(400, "Problems parsing JSON")
    return data


def _validation(resource: str, field: str, code: str) -> GitHubError:
    return GitHubError(
        422, "Validation Failed", errors=[{"resource": resource, "code": code, "field": field}]
    )


def _page_args(request: Request, default: int = 30) -> tuple[int, int]:
    try:
        page = max(int(request.args.get("page", 1)), 1)
        per_page = min(max(int(request.args.get("per_page", default)), 1), max(default, 100))
    except ValueError:
        raise GitHubError(400, "page and per_page must be integers") from None
    return page, per_page


def _link(request: Request, response: Response, total: int, page: int, per_page: int) -> None:
    last = max((total + per_page - 1) // per_page, 1)
    if last <= 1:
        return
    base = request.base_url

    def url(n: int) -> str:
        return f"{base}?{urlencode({**request.args.to_dict(), 'page': n, 'per_page': per_page})}"

    links = []
    if page < last:
        links += [f'<{url(page + 1)}>; rel="next"', f'<{url(last)}>; rel="last"']
    if page > 1:
        links += [f'<{url(1)}>; rel="first"', f'<{url(page - 1)}>; rel="prev"']
    response.headers["Link"] = ", ".join(links)


def _paginate(request: Request, items: list[Any], list_item: str | None = None) -> Response:
    page, per_page = _page_args(request)
    chunk = items[(page - 1) * per_page : page * per_page]
    response = _json({"total_count": len(items), list_item: chunk} if list_item else chunk)
    _link(request, response, len(items), page, per_page)
    return response
