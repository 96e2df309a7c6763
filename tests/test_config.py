"""Config schemas, YAML recipes and dotted overrides."""

from __future__ import annotations

import pytest
import yaml

from facelearn.config import Config, ConfigError, dump_config, load_config
from facelearn.train.build import check_config

REPO_CONFIGS = __import__("pathlib").Path(__file__).resolve().parents[1] / "configs"


def test_every_recipe_loads():
    recipes = sorted(REPO_CONFIGS.glob("*.yaml"))
    assert recipes, "configs/ should hold the recipes"
    for recipe in recipes:
        assert isinstance(load_config(recipe), Config)


def test_dotted_overrides_are_typed(tmp_path):
    config = load_config(REPO_CONFIGS / "demo.yaml", ["head.margin=0.4", "optim.lr=0.05", "model.blocks=[1,1,1,1]"])
    assert config.head.options["margin"] == 0.4
    assert config.optim.lr == 0.05
    assert config.model.options["blocks"] == [1, 1, 1, 1]
    config = load_config(None, ["eval.sets.1.num_pairs=300", "train.steps=7"])
    assert config.eval.sets[1].num_pairs == 300 and config.train.steps == 7


def test_misspelt_key_names_it_and_lists_valid_keys(tmp_path):
    with pytest.raises(ConfigError, match=r"'optim.lrr'.*valid keys here: name, lr, momentum"):
        load_config(None, ["optim.lrr=0.1"])
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("head:\n  marginn: 0.3\n")
    with pytest.raises(ConfigError, match=r"head.marginn is not an option of head 'arcface'; it takes: scale, margin"):
        check_config(load_config(recipe))
    with pytest.raises(ConfigError, match="unknown config key 'trian'"):
        load_config(None, ["trian.steps=3"])


def test_wrong_types_are_rejected():
    with pytest.raises(ConfigError, match="train.steps: expected int"):
        load_config(None, ["train.steps=many"])
    with pytest.raises(ConfigError, match="expected true or false"):
        load_config(None, ["data.flip=3"])
    with pytest.raises(ConfigError, match="must look like"):
        load_config(None, ["train.steps"])


def test_resolved_config_round_trips(tmp_path):
    config = load_config(None, ["head.name=cosface", "head.margin=0.35"])
    dump_config(config, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == config
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["head"]["name"] == "cosface"


def test_missing_shared_data_skips_for_a_user_and_fails_in_ci(tmp_path, monkeypatch):
    from conftest import shared_path

    monkeypatch.setenv("FACELEARN_SHARED", str(tmp_path / "absent"))
    monkeypatch.delenv("FACELEARN_NO_SKIP", raising=False)
    with pytest.raises(pytest.skip.Exception, match="set FACELEARN_SHARED"):
        shared_path("data", "lfw_a")
    monkeypatch.setenv("FACELEARN_NO_SKIP", "1")
    with pytest.raises(pytest.fail.Exception, match="FACELEARN_NO_SKIP=1: this test must run here"):
        shared_path("data", "lfw_a")
