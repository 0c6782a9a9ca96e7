"""Typed configs: defaults <- YAML <- budget <- --set, with clear errors."""

from dataclasses import dataclass, field
from typing import ClassVar

import pytest

from benchmark.config import budget_overrides, config_hash, parse_overrides, resolve_config
from benchmark.rl.configs import ConfigError, OfflineConfig


@dataclass
class ToyConfig(OfflineConfig):
    lr: float = 1e-3
    hidden: tuple[int, ...] = field(default=(8, 8))
    use_thing: bool = False
    maybe: float | None = None

    BUDGETS: ClassVar = {"smoke": {"lr": 0.5}}


def test_budget_merges_along_hierarchy():
    smoke = budget_overrides(ToyConfig, "smoke")
    assert smoke["epochs"] == OfflineConfig.BUDGETS["smoke"]["epochs"]  # inherited
    assert smoke["lr"] == 0.5  # added by the subclass
    assert budget_overrides(ToyConfig, "paper") == {}
    with pytest.raises(ConfigError, match="unknown budget"):
        budget_overrides(ToyConfig, "huge")


def test_precedence_yaml_budget_cli(tmp_path):
    (tmp_path / "hopper-medium-v2.yaml").write_text("_source: test\nlr: 0.01\nepochs: 7\nhidden: [4, 4, 4]\n")
    (tmp_path / "default.yaml").write_text("lr: 0.02\n")
    cfg, prov = resolve_config(
        ToyConfig, tmp_path, ("local-hopper-medium", "hopper-medium-v2", "default"), "paper", {}, seed=3
    )
    assert (cfg.lr, cfg.epochs, cfg.hidden, cfg.seed) == (0.01, 7, (4, 4, 4), 3)
    assert prov["config_source"] == "test" and prov["config_file"].endswith("hopper-medium-v2.yaml")
    cfg, _ = resolve_config(ToyConfig, tmp_path, ("hopper-medium-v2",), "smoke", {}, seed=0)
    assert cfg.lr == 0.5 and cfg.epochs == 2  # budget beats YAML
    cfg, prov = resolve_config(
        ToyConfig,
        tmp_path,
        ("hopper-medium-v2",),
        "smoke",
        parse_overrides(["lr=0.25", "use_thing=true", "maybe=null", "hidden=[3]"]),
    )
    assert (cfg.lr, cfg.use_thing, cfg.maybe, cfg.hidden) == (0.25, True, None, (3,))  # CLI beats all
    assert prov["overrides"]["lr"] == 0.25
    cfg, _ = resolve_config(ToyConfig, tmp_path, ("nothing-here", "default"), "paper", {})
    assert cfg.lr == 0.02


def test_errors_name_the_field_and_file(tmp_path):
    bad = tmp_path / "default.yaml"
    bad.write_text("lrr: 0.1\n")
    with pytest.raises(ConfigError, match=r"default.yaml: unknown field 'lrr'.*valid fields: .*lr"):
        resolve_config(ToyConfig, tmp_path, ("default",), "paper", {})
    bad.write_text("epochs: many\n")
    with pytest.raises(ConfigError, match=r"default.yaml: field 'epochs': expected an integer"):
        resolve_config(ToyConfig, tmp_path, ("default",), "paper", {})
    bad.write_text("- not a mapping\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        resolve_config(ToyConfig, tmp_path, ("default",), "paper", {})
    with pytest.raises(ConfigError, match="--set: field 'use_thing': expected true/false"):
        resolve_config(ToyConfig, None, (), "paper", {"use_thing": "maybe"})
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_overrides(["lr0.1"])


def test_config_hash_is_stable_and_sensitive():
    a = config_hash({"x": 1, "y": [1, 2]})
    assert a == config_hash({"y": [1, 2], "x": 1})
    assert a != config_hash({"x": 2, "y": [1, 2]})
