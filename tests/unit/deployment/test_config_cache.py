"""A configuration validated once on the machine, taken from the local cache by the next process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from deployment import config as config_module
from deployment.config import CONFIG_DIR, ConfigError, load_config

PRODUCTION = CONFIG_DIR / "production.yaml"


@pytest.fixture
def new_process(monkeypatch):
    """Forget what this process loaded and count validations, as the next task process starts."""
    validated = []
    real = config_module._validate
    monkeypatch.setattr(config_module, "_validate", lambda *args: validated.append(args[0]) or real(*args))

    def forget():
        config_module._load_cached.cache_clear()
        return validated

    forget()
    yield forget
    config_module._load_cached.cache_clear()


@pytest.fixture
def files(tmp_path):
    """``release.yaml`` extends ``team.yaml``, which extends production's file."""
    (tmp_path / "team.yaml").write_text(f"extends: {PRODUCTION}\nregion: eu-west-1\n")
    (tmp_path / "release.yaml").write_text("extends: team.yaml\napplication: shop\n")
    return tmp_path


def test_the_next_process_takes_the_configuration_without_validating_it(files, new_process):
    first = load_config(str(files / "release.yaml"))
    assert new_process() == [files / "release.yaml"]
    again = load_config(str(files / "release.yaml"))
    assert again == first and again is not first
    assert (again.region, again.application) == ("eu-west-1", "shop")
    assert new_process() == [files / "release.yaml"], "validated once, in the first process"


def test_a_process_that_takes_it_from_the_cache_builds_no_validator(files):
    probe = (
        "from deployment.config import DeploymentConfig, load_config; "
        f"cfg = load_config({str(files / 'release.yaml')!r}); "
        "print(cfg.application, DeploymentConfig.__pydantic_complete__)"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    runs = [
        subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
        for _ in range(2)
    ]
    assert [run.stdout.split() for run in runs] == [["shop", "True"], ["shop", "False"]], runs[1].stderr


def test_an_edit_of_a_file_it_extends_is_a_miss(files, new_process):
    assert load_config(str(files / "release.yaml")).region == "eu-west-1"
    (files / "team.yaml").write_text(f"extends: {PRODUCTION}\nregion: ap-south-1\n")
    new_process()
    assert load_config(str(files / "release.yaml")).region == "ap-south-1"
    assert len(new_process()) == 2


def test_a_configuration_kept_by_other_code_is_a_miss(files, new_process, monkeypatch):
    load_config(str(files / "release.yaml"))
    monkeypatch.setattr(config_module, "MODELS_DIGEST", "0" * 64)
    new_process()
    assert load_config(str(files / "release.yaml")).application == "shop"
    assert len(new_process()) == 2


def test_a_broken_configuration_is_refused_every_time(files, new_process):
    (files / "release.yaml").write_text("extends: team.yaml\ntraffic:\n  steps: []\n")
    for _ in range(2):
        new_process()
        with pytest.raises(ConfigError, match="traffic.steps"):
            load_config(str(files / "release.yaml"))
    assert len(new_process()) == 2
