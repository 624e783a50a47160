"""The API canary: the function's alias, moved in the frontend's steps (README "The API canary").

Each release publishes a new version of ``backend.function_name`` through its stack update while
the alias ``backend.alias`` (what the API invokes) keeps naming the version live before it: the
change set passes that version as the stack parameter ``backend.version_parameter``. From there
the alias follows the colours: the version of each colour is known (:class:`ApiVersions`, from
the record), so a split of the colours is the same split of the alias. Below 100 % the alias
names the previous version and sends the new one its share through
``RoutingConfig.AdditionalVersionWeights`` (a fraction, 0-1); at 100 % it names the new version
alone; a restore names one version alone. Each is one ``UpdateAlias`` carrying the ``RevisionId``
it read, so a concurrent change is refused, read again and decided anew, never overwritten.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from deployment.aws.lambda_alias import ApiAliasError, alias_state, lambda_client, read_alias
from deployment.traffic.router import check_weights, now_iso, other

if TYPE_CHECKING:
    from deployment.config import Colour, DeploymentConfig
    from deployment.ledger import Ledger

# Where deploy_infrastructure records the versions (``infrastructure.api``).
RECORD_KEY = "api"


@dataclass(frozen=True)
class ApiVersions:
    """The function, its alias and the version each colour runs; JSON-safe for a trigger's kwargs."""

    function: str
    alias: str
    previous: str
    new: str
    target_colour: Colour

    @property
    def by_colour(self) -> dict[str, str]:
        return {self.target_colour: self.new, other(self.target_colour): self.previous}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ApiVersions:
        return cls(**data)


def versions_after_update(
    cfg: DeploymentConfig, parameters: dict[str, str], outputs: dict[str, str]
) -> dict[str, Any] | None:
    """``infrastructure.api`` once the stack update is done: the version the alias served before
    (the change set's ``version_parameter``) and the one the update published (``version_output``),
    with the alias as Lambda has it now, which must still serve the previous version alone."""
    if cfg.backend is None or cfg.backend.version_parameter not in parameters:
        return None  # the change set passed no version: its template has no alias to canary
    new = outputs.get(cfg.backend.version_output)
    if not new:
        raise ApiAliasError(
            f"the stack has no output {cfg.backend.version_output}: its template publishes no version "
            f"of {cfg.backend.function_name} for the alias to move to"
        )
    # Empty: the stack adopted the alias now, on the version it published (no canary this once).
    previous = parameters.get(cfg.backend.version_parameter) or new
    alias = read_alias(cfg)
    now = alias_state(alias) if alias is not None else None
    return {
        "function": cfg.backend.function_name,
        "alias": cfg.backend.alias,
        "previous": previous,
        "new": new,
        "alias_after_update": now,
        "ok": now == {"version": previous, "weights": {}},
    }


def api_versions(cfg: DeploymentConfig, ledger: Ledger) -> ApiVersions | None:
    """The versions this run's alias moves between, from its record; None before both are known
    (no ``backend``, the stack not yet updated, or no target colour chosen yet)."""
    if cfg.backend is None:
        return None
    api = (ledger.read("infrastructure") or {}).get(RECORD_KEY) or {}
    target = (ledger.read("frontend") or {}).get("target_colour")
    if not api.get("previous") or not api.get("new") or target not in ("blue", "green"):
        return None
    return ApiVersions(
        function=cfg.backend.function_name,
        alias=cfg.backend.alias,
        previous=api["previous"],
        new=api["new"],
        target_colour=target,
    )


def rollback_versions(
    cfg: DeploymentConfig, backup: dict[str, Any], stable: str | None, recorded: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """The alias a rollback restores, as :class:`ApiVersions` (``to_dict``): ``stable``'s version is
    the one the backup found the alias serving (its ``api_alias``, else the stack's
    ``version_parameter``); the other is this run's new version when ``recorded`` has it."""
    if cfg.backend is None or stable not in ("blue", "green"):
        return None
    stack = backup.get("stack") or {}
    previous = (stack.get("api_alias") or {}).get("version") or (stack.get("parameters") or {}).get(
        cfg.backend.version_parameter
    )
    if not previous:
        return None
    return ApiVersions(
        function=cfg.backend.function_name,
        alias=cfg.backend.alias,
        previous=previous,
        new=(recorded or {}).get("new") or previous,
        target_colour=other(stable),
    ).to_dict()


def backup_state(cfg: DeploymentConfig) -> dict[str, Any] | None:
    """The alias as the backup finds it (None without ``backend`` or without the alias)."""
    if cfg.backend is None:
        return None
    alias = read_alias(cfg)
    return alias_state(alias) if alias is not None else None


def serves_only(cfg: DeploymentConfig, versions: ApiVersions, colour: str) -> dict[str, Any]:
    """Whether the alias serves ``colour``'s version alone: ``{"ok", "version", "state"}``."""
    wanted = versions.by_colour[colour]
    state = ApiAlias(cfg, versions).state()
    return {"ok": state == {"version": wanted, "weights": {}}, "version": wanted, "state": state}


def alias_target(versions: ApiVersions, wanted: dict[Colour, int]) -> tuple[str, dict[str, float]]:
    """``(FunctionVersion, AdditionalVersionWeights)`` for the colours' split ``wanted``."""
    check_weights(wanted)
    share = wanted[versions.target_colour]
    if versions.new == versions.previous or share == 0:
        return versions.previous, {}
    if share == 100:
        return versions.new, {}
    return versions.previous, {versions.new: round(share / 100, 2)}


class ApiAlias:
    """Moves one alias between the two versions of :class:`ApiVersions`."""

    def __init__(self, cfg: DeploymentConfig, versions: ApiVersions, client: Any = None) -> None:
        self.cfg = cfg
        self.versions = versions
        self.client = client or lambda_client(cfg)

    def _read(self) -> dict[str, Any]:
        return self.client.get_alias(FunctionName=self.versions.function, Name=self.versions.alias)

    def state(self) -> dict[str, Any]:
        """``{"version": FunctionVersion, "weights": {version: fraction}}`` as Lambda has it now."""
        return alias_state(self._read())

    def set_weights(self, wanted: dict[Colour, int]) -> dict[str, Any] | None:
        """Point the alias at ``wanted``'s split; ``{"before", "after", "at"}``, or None when it is so."""
        version, weights = alias_target(self.versions, wanted)
        for _ in range(2):
            alias = self._read()
            before = alias_state(alias)
            if before == {"version": version, "weights": weights}:
                return None
            try:
                self.client.update_alias(
                    FunctionName=self.versions.function,
                    Name=self.versions.alias,
                    FunctionVersion=version,
                    RoutingConfig={"AdditionalVersionWeights": weights},
                    RevisionId=alias["RevisionId"],
                )
            except self.client.exceptions.PreconditionFailedException:
                continue  # changed since it was read: read it again and decide anew
            return {"before": before, "after": {"version": version, "weights": weights}, "at": now_iso()}
        raise ApiAliasError(
            f"alias {self.versions.alias} of {self.versions.function} changed under every write "
            f"of {wanted}: another writer is moving it"
        )

    def restore(self, colour: Colour) -> dict[str, Any] | None:
        """The whole alias on ``colour``'s version (one ``UpdateAlias``); None when it is so."""
        return self.set_weights({colour: 100, other(colour): 0})
