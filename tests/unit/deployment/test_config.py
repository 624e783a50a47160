"""The configuration files load into the typed model; a broken one says file, key and problem."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from deployment.config import CONFIG_DIR, ConfigError, load_config, load_file


@pytest.mark.parametrize("name", ["production", "sandbox"])
def test_shipped_configs_load(name):
    config = load_config(name)
    assert config.approvals.required == 2
    assert config.traffic.steps[-1].weight == 100
    assert [c.name for c in config.smoke_tests.checks] == [
        "authentication_flow",
        "content_creation",
        "ai_service_integration",
        "payment_processing",
    ]


def test_sandbox_extends_production_and_compresses_time():
    production, sandbox = load_config("production"), load_config("sandbox")
    assert sandbox.stack.name == production.stack.name
    assert sandbox.environment == "sandbox"
    assert sandbox.timings.monitoring_seconds < production.timings.monitoring_seconds == 900
    assert production.timings.approval_timeout.total_seconds() == 48 * 3600
    assert sandbox.stack.transform_locally and not production.stack.transform_locally


def test_selected_by_environment_variable(monkeypatch):
    monkeypatch.setenv("DEPLOYMENT_CONFIG", "production")
    assert load_config().environment == "production"


def step(weight: int) -> dict:
    return {"weight": weight, "hold_seconds": 1}


def write(tmp_path: Path, data: dict, name: str = "broken.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def production_data() -> dict:
    return yaml.safe_load((CONFIG_DIR / "production.yaml").read_text())


@pytest.mark.parametrize(
    ("mutate", "key", "message"),
    [
        (
            lambda d: d["thresholds"].update(error_rate_percent=-1),
            "thresholds.error_rate_percent",
            "greater than 0",
        ),
        (lambda d: d["traffic"].update(steps=[{"weight": 50, "hold_seconds": 1}]), "traffic", "100 %"),
        (
            lambda d: d["traffic"].update(
                steps=[
                    {"weight": 50, "hold_seconds": 1},
                    {"weight": 10, "hold_seconds": 1},
                    {"weight": 100, "hold_seconds": 0},
                ]
            ),
            "traffic",
            "strictly increase",
        ),
        (
            lambda d: d["approvals"].update(approvers=[{"id": "a", "name": "A"}, {"id": "b", "name": "B"}]),
            "approvals",
            "at least 3 approvers",
        ),
        (lambda d: d["amplify"]["branches"].update(green="main-blue"), "amplify", "must differ"),
        (lambda d: d.pop("stack"), "stack", "Field required"),
        (lambda d: d["stack"].update(nmae="typo"), "stack.nmae", "Extra inputs are not permitted"),
        (
            lambda d: d["thresholds"].update(insufficient_data="ignore"),
            "thresholds.insufficient_data",
            "'extend'",
        ),
    ],
)
def test_broken_config_names_file_key_and_problem(tmp_path, mutate, key, message):
    data = production_data()
    mutate(data)
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        load_file(path)
    text = str(err.value)
    assert str(path) in text
    assert f"  {key}" in text
    assert message in text


def test_not_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("stack: [unclosed\n")
    with pytest.raises(ConfigError, match=f"{path}: not valid YAML"):
        load_file(path)


def test_missing_file_and_missing_parent(tmp_path):
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_config(str(tmp_path / "absent.yaml"))
    child = write(tmp_path, {"extends": "absent.yaml", "environment": "x"}, "child.yaml")
    with pytest.raises(ConfigError, match="absent.yaml: no such configuration file"):
        load_file(child)


def test_extends_cycle(tmp_path):
    write(tmp_path, {"extends": "b.yaml"}, "a.yaml")
    b = write(tmp_path, {"extends": "a.yaml"}, "b.yaml")
    with pytest.raises(ConfigError, match="cycle"):
        load_file(b)


def test_extends_merges_mappings_and_replaces_lists(tmp_path):
    (tmp_path / "production.yaml").write_text((CONFIG_DIR / "production.yaml").read_text())
    child = write(
        tmp_path,
        {
            "extends": "production.yaml",
            "thresholds": {"latency_ms": 500},
            "dynamodb": {"tables": ["only-one"]},
        },
        "child.yaml",
    )
    config = load_file(child)
    assert config.thresholds.latency_ms == 500
    assert config.thresholds.error_rate_percent == 1.0
    assert config.dynamodb.tables == ["only-one"]


def test_config_holds_no_secrets():
    for path in CONFIG_DIR.glob("*.yaml"):
        text = path.read_text().lower()
        for word in ("password:", "secret:", "token:", "hooks.slack.com", "aws_access_key", "ghp_"):
            assert word not in text, f"{path.name} mentions {word}"
