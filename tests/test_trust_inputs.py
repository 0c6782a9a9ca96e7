"""Trust, inputs: bad input is refused before any work with one line naming the field, its source and the
allowed range (exit 2)."""

import json
import typing
from pathlib import Path

import pytest

from benchmark import registry
from benchmark.cli import main
from benchmark.config import field_range, field_types
from benchmark.suites import SuiteError, load_suite


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("admbench: error: "), err
    return err[0]


def _run(*extra):
    return ["run", "--algo", "bc", "--task", "local/hopper-medium-replay", "--budget", "smoke", *extra]


@pytest.mark.parametrize(
    "algo, setting, pattern",
    [
        ("bc", "epochs=0", r"--set: field 'epochs' = 0 is out of range; allowed: an integer >= 1"),
        ("bc", "epochs=-3", r"field 'epochs' = -3 .* >= 1"),
        ("bc", "steps_per_epoch=0", r"field 'steps_per_epoch' = 0"),
        ("bc", "eval_episodes=0", r"field 'eval_episodes' = 0"),
        ("bc", "batch_size=0", r"field 'batch_size' = 0"),
        ("bc", "final_k=0", r"field 'final_k' = 0 .* >= 1"),
        ("bc", "final_k=-1", r"field 'final_k' = -1"),
        ("bc", "lr=-1", r"field 'lr' = -1.0 is out of range; allowed: a finite number > 0"),
        ("bc", "lr=.inf", r"field 'lr' = inf"),
        ("bc", "lr=.nan", r"field 'lr' = nan"),
        ("td3bc", "gamma=1.5", r"field 'gamma' = 1.5 .* in \[0, 1\]"),
        ("td3bc", "alpha=.nan", r"field 'alpha' = nan"),
        ("td3bc", "tau=0", r"field 'tau' = 0.0 .* in \(0, 1\]"),
        ("td3bc", "policy_freq=0", r"field 'policy_freq' = 0"),
        ("td3bc", "hidden=[256,0]", r"field 'hidden' = \(256, 0\) \(0\)"),
        ("cql", "num_sampled_actions=0", r"field 'num_sampled_actions'"),
        ("mopo", "real_ratio=1.5", r"field 'real_ratio' = 1.5 .* \[0, 1\]"),
        ("mopo", "rollout_length=0", r"field 'rollout_length' = 0"),
        ("mopo", "dynamics_holdout_fraction=1.0", r"field 'dynamics_holdout_fraction' = 1.0 .* \[0, 1\)"),
        ("admpo-off", "max_arm_step=0", r"field 'max_arm_step' = 0"),
        ("admpo-off", "arm_dropout=2", r"field 'arm_dropout' = 2.0"),
        ("edac", "eta=-1", r"field 'eta' = -1.0 .* >= 0"),
    ],
)
def test_out_of_range_settings_are_refused_before_any_work(algo, setting, pattern, tmp_path, capsys):
    argv = ["run", "--algo", algo, "--task", "local/hopper-medium-replay", "--set", setting,
            "--results", str(tmp_path)]
    assert main(argv) == 2
    import re

    assert re.search(pattern, _error(capsys))
    assert not list(tmp_path.rglob("*.json"))  # nothing ran, nothing was written


def test_online_ranges_and_negative_seed(tmp_path, capsys):
    assert main(["run", "--algo", "sac", "--task", "mujoco/Hopper", "--set", "env_steps=0",
                 "--results", str(tmp_path)]) == 2
    assert "field 'env_steps' = 0" in _error(capsys)
    assert main(_run("--seed", "-1", "--results", str(tmp_path))) == 2
    assert "--seed must be an integer >= 0, got -1" in _error(capsys)


def test_the_error_names_the_yaml_file_or_budget_that_set_the_value(tmp_path):
    from baselines.bc import BCConfig
    from benchmark.config import resolve_config
    from benchmark.rl.configs import ConfigError

    (tmp_path / "default.yaml").write_text("_source: a test\nbatch_size: -2\n")
    with pytest.raises(ConfigError, match=rf"^{tmp_path / 'default.yaml'}: field 'batch_size' = -2 "):
        resolve_config(BCConfig, tmp_path, ("default",), "paper")

    class Tiny(BCConfig):
        BUDGETS = {"smoke": {"eval_episodes": 0}}

    with pytest.raises(ConfigError, match=r"^budget 'smoke': field 'eval_episodes' = 0 is out of range"):
        resolve_config(Tiny, None, (), "smoke")


def test_every_numeric_config_field_has_a_declared_range():
    """A new field must be classified (RANGE_RULES or the class's RANGES) so range checks cover it."""
    unclassified = []
    for name, spec in {**registry.algorithms(), **registry.analyses()}.items():
        for field_name, tp in field_types(spec.config_cls).items():
            args = typing.get_args(tp) or (tp,)
            numeric = any(a in (int, float) or set(typing.get_args(a)) & {int, float} for a in args)
            if numeric and field_range(spec.config_cls, field_name) is None:
                unclassified.append(f"{name}.{field_name}")
    assert unclassified == []


@pytest.mark.parametrize(
    "argv, message",
    [
        (["reproduce", "mini", "--seeds", "0"], "--seeds must be a positive integer, got 0"),
        (["reproduce", "mini", "--seeds", "-2"], "--seeds must be a positive integer, got -2"),
        (["reproduce", "mini", "--workers", "0"], "--workers must be a positive integer, got 0"),
        (["reproduce", "mini", "--workers", "-1"], "--workers must be a positive integer, got -1"),
        (["reproduce", "mini", "--max-retries", "-1"], "--max-retries must be an integer >= 0, got -1"),
        (["regress", "ci", "--workers", "0"], "--workers must be a positive integer, got 0"),
        (["run", "--algo", "bc", "--task", "local/hopper-random", "--threads", "0"], "--threads must be"),
        (["report", "no-such-suite"], "unknown suite 'no-such-suite'"),
    ],
)
def test_cli_counts_and_names_are_checked(argv, message, tmp_path, capsys):
    results = [] if argv[0] == "regress" else ["--results", str(tmp_path)]
    assert main([*argv, *results]) == 2
    assert message in _error(capsys)
    assert not (tmp_path / "mini").exists()


def _suite(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "S.yaml"
    path.write_text(text)
    return path


BODY = "runs:\n  - algos: [bc]\n    tasks: [local/hopper-medium-replay]\n"


@pytest.mark.parametrize(
    "text, message",
    [
        ("budget: smoke\nseed: 3\n" + BODY, "unknown key(s) ['seed']"),
        ("budgte: short\n" + BODY, "unknown key(s) ['budgte']"),
        ("seeds: true\n" + BODY, "seeds must be a positive integer"),
        ("include: [mini]\nruns: []\n", "unknown key(s) ['runs']"),
        ("runs:\n  - algos: [bc]\n    tasks: [local/hopper-medium-replay]\n    sett: {epochs: 2}\n",
         "runs[0] has unknown keys ['sett']"),
        ("analyses:\n  - name: uncertainty\n    tasks: [local/hopper-medium-replay]\n    seeds: 2\n",
         "analyses[0] has unknown keys ['seeds']"),
        ("runs:\n  - algos: [bc]\n    tasks: [local/hopper-medium-replay]\n    set: [epochs]\n",
         "runs[0].set must be a mapping"),
    ],
)
def test_suite_files_refuse_unknown_keys_naming_file_and_key(tmp_path, text, message):
    path = _suite(tmp_path, text)
    with pytest.raises(SuiteError) as err:
        load_suite(str(path))
    assert str(path) in str(err.value) and message in str(err.value)


def test_a_suite_entry_value_error_names_the_suite_file(tmp_path, capsys):
    path = _suite(tmp_path, "runs:\n  - algos: [bc]\n    tasks: [local/hopper-medium-replay]\n"
                            "    set: {epochs: three}\n")
    assert main(["reproduce", str(path), "--results", str(tmp_path / "r")]) == 2
    assert f"{path} runs[0].set: field 'epochs'" in _error(capsys)
    path.write_text("runs:\n  - algos: [bc]\n    tasks: [local/hopper-medium-replay]\n    set: {epochs: 0}\n")
    assert main(["reproduce", str(path), "--results", str(tmp_path / "r")]) == 2
    assert f"{path} runs[0].set: field 'epochs' = 0 is out of range" in _error(capsys)


def test_regress_checks_every_reference_before_running_and_cleans_up(tmp_path, monkeypatch, capsys):
    import benchmark.regress as regress_mod

    suite = _suite(tmp_path, "seeds: 2\n" + BODY)
    ran = []
    monkeypatch.setattr(regress_mod, "run_many", lambda *a, **k: ran.append(1))
    ref = tmp_path / "ref" / "S" / "bc" / "local__hopper-medium-replay"
    ref.mkdir(parents=True)
    good = {"schema": "admbench.record/1", "algo": "bc", "task": "local/hopper-medium-replay", "seed": 0,
            "budget": "smoke", "config": {}, "versions": {}, "commit": "x", "wall_time_s": 1.0,
            "status": "ok", "curve": [], "final_score": 1.0, "final_return": 10.0}
    (ref / "seed-0.json").write_text(json.dumps(good))
    (ref / "seed-1.json").write_text(json.dumps({**good, "seed": 1, "status": "failed", "final_score": None}))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    argv = ["regress", str(suite), "--reference", str(tmp_path / "ref"), "--workers", "1", "--quiet"]
    assert main(argv) == 2
    assert "seed-1.json: a reference must be an 'ok' record with a finite final score" in _error(capsys)
    (ref / "seed-1.json").write_text(json.dumps(good)[:50])
    assert main(argv) == 2
    assert "seed-1.json: not valid JSON" in _error(capsys)
    assert ran == []  # nothing was rerun before the references were known to be good

    def crash(*a, **k):
        raise RuntimeError("boom")

    (ref / "seed-1.json").write_text(json.dumps({**good, "seed": 1}))
    monkeypatch.setattr(regress_mod, "run_many", crash)
    with pytest.raises(RuntimeError):
        main(argv)
    assert list((tmp_path / "tmp").iterdir()) == []  # the scratch folder is removed on every exit path
