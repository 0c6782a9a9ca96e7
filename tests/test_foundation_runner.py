"""Registry, plugins, determinism and CLI errors."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark import registry
from benchmark.cli import main
from benchmark.runner import RunSpec, run_one

ROOT = Path(__file__).resolve().parent.parent


def test_builtins_are_registered():
    algos = registry.algorithms()
    assert registry.IMPORT_ERRORS == {}, registry.IMPORT_ERRORS
    assert {"bc", "td3bc"} <= set(algos)
    assert algos["td3bc"].kind == "offline"
    with pytest.raises(registry.RegistryError, match="unknown algorithm 'nope'; available: .*bc"):
        registry.get("nope")


def test_same_seed_same_record(tiny_data, tmp_path):
    run = RunSpec("td3bc", "local/hopper-random", 7, "smoke", {"eval_episodes": 2})
    a = run_one(run, tmp_path / "a", progress=False)
    b = run_one(run, tmp_path / "b", progress=False)
    for rec in (a, b):
        rec.pop("wall_time_s")
        rec.pop("cpu_time_s")
        rec["setup_info"] = {k: v for k, v in rec["setup_info"].items() if not k.endswith("time_s")}  # clocks
        rec.pop("commit")  # other commits may land between the two runs while developing
    assert a["status"] == "ok"
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    c = run_one(
        RunSpec("td3bc", "local/hopper-random", 8, "smoke", {"eval_episodes": 2}),
        tmp_path / "c",
        progress=False,
    )
    assert c["curve"][-1]["return_mean"] != a["curve"][-1]["return_mean"]


@pytest.mark.parametrize(
    "argv, pattern",
    [
        (
            ["run", "--algo", "nope", "--task", "local/hopper-random"],
            r"unknown algorithm 'nope'; available: .*td3bc",
        ),
        (["run", "--algo", "bc", "--task", "local/ant-medium"], r"unknown local dataset .*env in hopper"),
        (["run", "--algo", "bc", "--task", "hopper"], r"must look like FAMILY/NAME"),
        (
            ["run", "--algo", "bc", "--task", "mujoco/Hopper"],
            r"is offline but task 'mujoco/Hopper' is online",
        ),
        (
            ["run", "--algo", "bc", "--task", "local/hopper-random", "--set", "epochz=3"],
            r"unknown field 'epochz'",
        ),
        (["reproduce", "no-such-suite"], r"unknown suite 'no-such-suite'; available: .*mini"),
    ],
)
def test_cli_errors_are_one_line_and_nonzero(argv, pattern, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("admbench: error:")
    assert re.search(pattern, err), err


def test_cli_bad_budget_is_rejected_by_argparse(capsys):
    with pytest.raises(SystemExit) as e:
        main(["run", "--algo", "bc", "--task", "local/hopper-random", "--budget", "huge"])
    assert e.value.code == 2


def test_list_json(capsys):
    assert main(["list", "algorithms", "--json"]) == 0
    names = {row["name"] for row in json.loads(capsys.readouterr().out)}
    assert {"bc", "td3bc"} <= names
    assert main(["list", "suites", "--json"]) == 0
    assert "mini" in {row["name"] for row in json.loads(capsys.readouterr().out)}


def readme_plugin_example() -> tuple[str, list[str]]:
    """The README's plugin module and the shell commands printed right after it."""
    text = (ROOT / "README.md").read_text()
    m = re.search(r"<!-- plugin-example -->\s*```python\n(.*?)```\s*```bash\n(.*?)```", text, re.S)
    assert m, "README must contain the plugin example block followed by its commands"
    commands = [line for line in m.group(2).splitlines() if line.strip() and not line.startswith("#")]
    return m.group(1), commands


def test_readme_plugin_example_runs_as_printed(tiny_data, tmp_path):
    """The README's 'Add a baseline' example, saved as my_baseline.py in a folder outside the repository,
    run there with exactly the printed commands (a user's shell: `admbench` on PATH, no PYTHONPATH)."""
    module, commands = readme_plugin_example()
    folder = tmp_path / "my-plugin"
    folder.mkdir()
    (folder / "my_baseline.py").write_text(module)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    for command in commands:
        out = subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=env, cwd=folder,
                             timeout=300)
        assert out.returncode == 0, (command, out.stderr)
    summary = json.loads(out.stdout)
    assert summary["status"] == "ok" and summary["final_score"] is not None
    record = folder / "results" / "adhoc" / "mean-action" / "local__hopper-random" / "seed-0.json"
    assert f"record: {Path('results') / record.relative_to(folder / 'results')}" in out.stderr
    assert record.is_file()
    listed = subprocess.run(["bash", "-c", "ADMBENCH_PLUGINS=my_baseline admbench list algorithms"],
                            capture_output=True, text=True, env=env, cwd=folder, timeout=120)
    assert "mean-action" in listed.stdout


def test_plugin_import_error_is_clear(monkeypatch):
    monkeypatch.setenv("ADMBENCH_PLUGINS", "surely_not_a_module_xyz")
    with pytest.raises(
        registry.RegistryError, match="ADMBENCH_PLUGINS: cannot import 'surely_not_a_module_xyz'"
    ):
        registry.load_all(force=True)
    monkeypatch.delenv("ADMBENCH_PLUGINS")
    registry.load_all(force=True)


def test_a_run_from_a_tree_with_uncommitted_code_says_so_before_it_starts(tmp_path, tiny_data, capsys,
                                                                        monkeypatch):
    """Its record will name a '-dirty' commit that no checkout has: `run` and `reproduce` warn once, up
    front, and say how to keep sweeps clean; a clean tree gets no warning."""
    from benchmark import results

    args = ["run", "--algo", "bc", "--task", "local/hopper-random", "--results", str(tmp_path), "--quiet"]
    monkeypatch.setattr(results, "git_commit", lambda: "0123abc-dirty")
    assert main(args) == 0
    err = capsys.readouterr().err
    assert err.count("admbench: warning: uncommitted code changes: records written now name commit "
                     "0123abc-dirty") == 1 and "git worktree add" in err
    monkeypatch.setattr(results, "git_commit", lambda: "0123abc")
    assert main([*args, "--force"]) == 0
    assert "uncommitted" not in capsys.readouterr().err
