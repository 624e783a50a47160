"""The per-environment release configuration: one YAML file, one typed model.

Files live in ``include/config/<name>.yaml``. A file may name another with
``extends:``; its keys are then merged over that file's (mappings merge
key by key, everything else replaces). ``DEPLOYMENT_CONFIG`` selects the file
by name or path; the default is ``production``.

Every task process parses the DAG file, which loads the configuration. The models build their
validators on first use (``defer_build``), and a configuration validated once on a machine is kept
in the local cache (:mod:`deployment.local_cache`) with the SHA-256 of every file it was read from
and of this module: while all of them are unchanged, the next process takes it from there and never
builds a validator, which was ~30 ms of each process's parse on the 2-core machine.
"""

from __future__ import annotations

import functools
import hashlib
import os
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import VERSION as PYDANTIC_VERSION
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = PROJECT_ROOT / "include" / "config"
CONFIG_ENV_VAR = "DEPLOYMENT_CONFIG"
DEFAULT_CONFIG = "production"

Colour = Literal["blue", "green"]
# A GitHub login: alphanumerics and inner hyphens, at most 39 characters.
GITHUB_LOGIN = r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,37}[A-Za-z0-9])?$"


class ConfigError(ValueError):
    """A configuration file that cannot be used, with the file and key at fault."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class Connections(_Model):
    aws: str
    github: str
    slack_team: str
    slack_company: str
    smtp: str
    statuspage: str
    app_blue: str
    app_green: str
    # PagerDuty Events API v2: the integration's routing key as password; host the API's base URL.
    pagerduty: str = "pagerduty_events"
    # the front door's base URL as an HTTP connection's host; unset: traffic.front_door.url
    front_door: str | None = None
    # Airflow's API server as an HTTP connection, with the pipeline's read-only user as login and
    # password: the proof at the point of change reads the approvals and the audit log through it.
    airflow_api: str = "airflow_api"

    def app(self, colour: Colour) -> str:
        return self.app_blue if colour == "blue" else self.app_green


class GitHub(_Model):
    repository: str = Field(pattern=r"^[\w.-]+/[\w.-]+$")
    staging_workflow: str
    rc_tag_prefix: str = "rc-"


class Artifacts(_Model):
    bucket: str = Field(min_length=3)
    prefix: str = "deployments"
    # Release-candidate builds (scripts/publish_build.py): <builds_prefix>/<commit_sha>/...
    builds_prefix: str = Field(default="builds", pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*[A-Za-z0-9]$")


class Stack(_Model):
    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9-]*$")
    template: str
    transform_locally: bool = False
    parameters: dict[str, str] = {}
    version_parameter: str
    capabilities: list[str] = []
    stateful_resource_types: list[str] = []

    @property
    def template_path(self) -> Path:
        path = Path(self.template)
        return path if path.is_absolute() else PROJECT_ROOT / path


class DynamoDB(_Model):
    tables: list[str] = Field(min_length=1)


class Amplify(_Model):
    app_id: str
    branches: dict[Colour, str]
    version_variable: str = "APP_VERSION"
    environment_variables: dict[str, str] = {}
    # The KMS key (ARN) that encrypts the backed-up branch variables' values (SSE-KMS);
    # None: S3's AWS managed key aws/s3 (deployment.backup.take.store_environments).
    variables_kms_key_id: str | None = None

    @model_validator(mode="after")
    def _both_colours(self) -> Amplify:
        if set(self.branches) != {"blue", "green"}:
            raise ValueError("branches must name exactly a blue and a green branch")
        if self.branches["blue"] == self.branches["green"]:
            raise ValueError("the blue and green branches must differ")
        return self


class TrafficStep(_Model):
    weight: int = Field(gt=0, le=100)
    hold_seconds: int = Field(ge=0)


class FrontDoor(_Model):
    """The CloudFront front door of the ``keyvaluestore`` router (see deployment.traffic.front_door)."""

    # the KeyValueStore's ARN, or else the application stack's output that holds it
    key_value_store_arn: str | None = None
    key_value_store_output: str = "FrontDoorKeyValueStoreArn"
    key: str = "routing"
    # the front door's base URL (or connections.front_door); wait_applied probes <url><probe_path>
    url: str | None = None
    probe_path: str = "/__frontdoor"
    probe_interval_seconds: float = Field(default=2, gt=0)
    cookie: str = "bg-route"


class Traffic(_Model):
    router: Literal["keyvaluestore", "route53"] = "keyvaluestore"
    front_door: FrontDoor | None = None
    apply_timeout_seconds: int = Field(default=120, gt=0)
    hosted_zone: str
    record_name: str
    record_type: Literal["A", "AAAA", "CNAME"] = "CNAME"
    ttl: int = Field(default=60, gt=0)
    steps: list[TrafficStep] = Field(min_length=1)

    @model_validator(mode="after")
    def _steps_rise_to_100(self) -> Traffic:
        weights = [step.weight for step in self.steps]
        if weights != sorted(set(weights)):
            raise ValueError(f"step weights must strictly increase, got {weights}")
        if weights[-1] != 100:
            raise ValueError(f"the last step must send 100 % of traffic, got {weights[-1]}")
        if self.router == "keyvaluestore" and self.front_door is None:
            raise ValueError("the keyvaluestore router needs traffic.front_door")
        return self


class Metrics(_Model):
    namespace: str
    dimensions: dict[str, str]
    staging_dimensions: dict[str, str]
    requests_metric: str
    errors_metric: str
    latency_metric: str
    period_seconds: int = Field(gt=0)
    # CloudWatch makes datapoints readable a little after their timestamp: each poll reads
    # the window ending this long ago, so that the newest period is not read half-filled.
    lag_seconds: int = Field(default=0, ge=0)
    deployment_namespace: str
    # The app also publishes each metric per serving colour: ``dimensions`` plus this one.
    colour_dimension: str = "Colour"


class Alarms(_Model):
    prefix: str


class Thresholds(_Model):
    error_rate_percent: float = Field(gt=0, le=100)
    latency_ms: float = Field(gt=0)
    traffic_band: tuple[float, float]
    min_requests_per_poll: int = Field(ge=0)
    insufficient_data: Literal["extend", "fail"]
    max_insufficient_polls: int = Field(ge=0)
    # The new colour against the stable one over the same window: a breach when its error rate is
    # worse by more than this margin (percentage points) and a one-sided test finds it significant,
    # or when its latency is worse by more than this many percent.
    error_rate_margin_percent: float = Field(default=0.5, ge=0)
    latency_margin_percent: float = Field(default=25.0, ge=0)
    significance: float = Field(default=0.05, gt=0, lt=1)
    # Latency is judged as a distribution: CloudWatch's p95 and p99 of the canary's requests
    # against these limits (``latency_ms`` stays the mean limit of staging and the alarms).
    latency_p95_ms: float = Field(default=1000, gt=0)
    latency_p99_ms: float = Field(default=2000, gt=0)
    # The rank test (Mann-Whitney U) of the canary's per-period median latency against the stable
    # colour's, Kayenta's way: a two-sided interval at this confidence whose lower end must clear
    # this fraction of the Hodges-Lehmann shift; with fewer periods than this on a side it abstains.
    rank_confidence: float = Field(default=0.98, gt=0.5, lt=1)
    rank_tolerance: float = Field(default=0.25, ge=0)
    rank_min_intervals: int = Field(default=5, ge=3)

    @model_validator(mode="after")
    def _band_ordered(self) -> Thresholds:
        low, high = self.traffic_band
        if not 0 <= low < 1 < high:
            raise ValueError(f"traffic_band must be [low < 1, high > 1], got {list(self.traffic_band)}")
        return self


class Timings(_Model):
    approval_timeout_seconds: int = Field(gt=0)
    wait_timer_seconds: int = Field(ge=0)
    poll_interval_seconds: int = Field(gt=0)
    # How often a wait for AWS work (a stack update or change set, the Amplify job, a table backup,
    # drift detection) asks for its status; the metric watches judge every poll_interval_seconds.
    status_poll_seconds: float = Field(default=5, gt=0)
    monitoring_seconds: int = Field(ge=0)
    staging_window_seconds: int = Field(gt=0)
    baseline_window_seconds: int = Field(gt=0)
    stack_timeout_seconds: int = Field(gt=0)
    amplify_timeout_seconds: int = Field(gt=0)

    @property
    def approval_timeout(self) -> timedelta:
        return timedelta(seconds=self.approval_timeout_seconds)


class Approver(_Model):
    id: str = Field(min_length=1)
    name: str


class Person(_Model):
    """One person: their GitHub login, Airflow user name and where to reach them."""

    github: str = Field(pattern=GITHUB_LOGIN)
    airflow: str = Field(min_length=1)
    slack: str | None = None
    email: str | None = None


class Approvals(_Model):
    required: int = Field(ge=1)
    approvers: list[Approver]
    # A release author whose GitHub login is not in ``people`` is refused at the gate unless this is set.
    allow_unmapped_author: bool = False
    # Airflow users that trigger runs on behalf of CI: robots, not people, so not excluded from approving.
    service_accounts: list[str] = []

    @model_validator(mode="after")
    def _enough_people(self) -> Approvals:
        ids = [a.id for a in self.approvers]
        if len(set(ids)) != len(ids):
            raise ValueError(f"approver ids must be unique, got {ids}")
        # The author cannot approve, so one more person than required must exist.
        if len(ids) < self.required + 1:
            raise ValueError(
                f"{self.required} approvals need at least {self.required + 1} approvers "
                f"(the release author cannot approve), got {len(ids)}"
            )
        return self

    def ids(self) -> list[str]:
        return [a.id for a in self.approvers]


class Notifications(_Model):
    slack_team_channel: str
    slack_company_channel: str
    oncall_users: list[str] = []
    stakeholder_emails: list[str] = Field(min_length=1)
    email_from: str
    incident_emails: list[str] = Field(min_length=1)
    statuspage_page_id: str
    statuspage_component_id: str
    ui_base_url: str


class SmokeCheck(_Model):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    method: Literal["GET", "POST", "PUT"] = "GET"
    path: str = Field(pattern=r"^/")
    json_body: dict[str, Any] | None = Field(default=None, alias="json")
    expect_status: int = 200
    expect_json_key: str | None = None
    # Adds the app connection's login/password to the JSON body as username/password,
    # so that a smoke-test account's credentials stay in the connection, not in YAML.
    credentials_from_connection: bool = False


class Backend(_Model):
    """The API function the release canaries beside the frontend (README "The API canary").

    Each release publishes a new version of ``function_name``; ``alias`` (what the API invokes)
    keeps naming the previous version and shifts weight to the new one in the frontend's steps.
    ``version_parameter`` is the stack parameter the template's alias reads its version from, so
    the stack and the alias agree once a release ends; ``version_output`` the stack output that
    names the version the stack published.
    """

    function_name: str = Field(min_length=1)
    alias: str = Field(default="live", pattern=r"^[a-zA-Z0-9_-]*[a-zA-Z_-][a-zA-Z0-9_-]*$")
    version_parameter: str = Field(default="LiveVersion", min_length=1)
    version_output: str = Field(default="ApiFunctionVersion", min_length=1)


class SmokeTests(_Model):
    timeout_seconds: float = Field(gt=0)
    checks: list[SmokeCheck] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> SmokeTests:
        names = [c.name for c in self.checks]
        if len(set(names)) != len(names):
            raise ValueError(f"smoke check names must be unique, got {names}")
        return self


class DeploymentConfig(_Model):
    environment: str
    application: str
    region: str
    connections: Connections
    github: GitHub
    artifacts: Artifacts
    stack: Stack
    dynamodb: DynamoDB
    amplify: Amplify
    traffic: Traffic
    metrics: Metrics
    alarms: Alarms
    thresholds: Thresholds
    timings: Timings
    approvals: Approvals
    notifications: Notifications
    smoke_tests: SmokeTests
    # None: the API function is not canaried (its stack update serves every request at once).
    backend: Backend | None = None
    people: list[Person] = []
    # Airflow users who may trigger a run with emergency flags set.
    emergency_users: list[str] = []
    # Airflow users who may run rollback_production (emergency_users may too).
    release_managers: list[str] = []

    @model_validator(mode="after")
    def _people_unique(self) -> DeploymentConfig:
        for key in ("github", "airflow"):
            names = [getattr(p, key).lower() for p in self.people]
            if len(set(names)) != len(names):
                raise ValueError(f"people: {key} names must be unique (case-insensitively), got {names}")
        return self

    def person_by_github(self, login: str | None) -> Person | None:
        """The person whose GitHub login is ``login``, compared case-insensitively."""
        return next((p for p in self.people if login and p.github.lower() == login.lower()), None)

    def person_by_airflow(self, user: str | None) -> Person | None:
        return next((p for p in self.people if user and p.airflow.lower() == user.lower()), None)


def _merge(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


# libyaml's safe loader when PyYAML was built with it (the wheels are): every task process reads the
# configuration while it parses the DAG file, and the pure-Python loader took a tenth of that parse.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read(path: Path, seen: tuple[Path, ...] = (), files: list[tuple[str, str]] | None = None) -> dict:
    """The settings of ``path`` merged over those it extends; each file read and its SHA-256 are
    appended to ``files``."""
    if path in seen:
        raise ConfigError(f"{path}: `extends` forms a cycle through {[str(p) for p in seen]}")
    try:
        text = path.read_text()
        data = yaml.load(text, Loader=_SAFE_LOADER)  # noqa: S506 - a safe loader
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if files is not None:
        files.append((str(path), hashlib.sha256(text.encode()).hexdigest()))
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(data).__name__}")
    parent = data.pop("extends", None)
    if parent is None:
        return data
    return _merge(_read(path.parent / parent, (*seen, path), files), data)


def _describe(path: Path, error: ValidationError) -> str:
    lines = [f"{path}: {error.error_count()} invalid setting(s)"]
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"  {key}: {item['msg']}")
    return "\n".join(lines)


def resolve_path(name: str | None = None) -> Path:
    name = name or os.environ.get(CONFIG_ENV_VAR) or DEFAULT_CONFIG
    if name.endswith((".yaml", ".yml")) or "/" in name:
        return Path(name).resolve()
    return CONFIG_DIR / f"{name}.yaml"


def _validate(path: Path, settings: dict) -> DeploymentConfig:
    try:
        return DeploymentConfig.model_validate(settings)
    except ValidationError as err:
        raise ConfigError(_describe(path, err)) from None


def load_file(path: Path) -> DeploymentConfig:
    return _validate(path, _read(path))


# This module's source and pydantic's version: a model pickled by other code is never used.
MODELS_DIGEST = hashlib.sha256(Path(__file__).read_bytes() + PYDANTIC_VERSION.encode()).hexdigest()
CONFIG_CACHE = "config"


def _file_digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_text().encode()).hexdigest()
    except OSError:
        return None


def _remembered(path: Path) -> DeploymentConfig | None:
    """The configuration validated from ``path`` on this machine by this code, while every file it
    was read from still has the SHA-256 it had; None otherwise."""
    from deployment.local_cache import read_pickle

    entry = read_pickle(CONFIG_CACHE, (str(path), MODELS_DIGEST))
    if not isinstance(entry, dict) or not isinstance(entry.get("config"), DeploymentConfig):
        return None
    files = entry.get("files")
    if not files or any(_file_digest(Path(file)) != digest for file, digest in files):
        return None
    return entry["config"]


@functools.cache
def _load_cached(path: Path, mtime: float) -> DeploymentConfig:
    from deployment.local_cache import write_pickle

    remembered = _remembered(path)
    if remembered is not None:
        return remembered
    files: list[tuple[str, str]] = []
    cfg = _validate(path, _read(path, files=files))
    write_pickle(CONFIG_CACHE, (str(path), MODELS_DIGEST), {"files": files, "config": cfg})
    return cfg


def load_config(name: str | None = None) -> DeploymentConfig:
    """Load the configuration selected by ``name`` or ``$DEPLOYMENT_CONFIG``."""
    path = resolve_path(name)
    try:
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    return _load_cached(path, mtime)
