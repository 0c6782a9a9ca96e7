"""``compile`` (torch.compile of the update steps, benchmark/rl/compile.py): allowed only where an algorithm
compiles its updates, hashed only when set, compiled updates stay close to eager ones, and a compiled run
checkpoints and resumes. The fast tests check the plumbing with the "aot_eager" backend (dynamo and AOT
autograd, no code generation); the inductor tests are slow (a cold compile takes a minute or more on 2 CPUs).
"""

import copy
import json
import pickle
from pathlib import Path

import pytest
import torch
from helpers import random_batch, resume_after_second_checkpoint

from baselines.cql import CQLConfig, CQLLearner
from baselines.td3bc import TD3BC, TD3BCConfig
from benchmark import registry
from benchmark.cli import main
from benchmark.config import field_choices
from benchmark.data.local import build_local_dataset
from benchmark.rl import compile as compile_module
from benchmark.rl.algorithm import Context
from benchmark.rl.compile import CompiledSteps
from benchmark.rl.configs import COMPILE_MODES
from benchmark.rl.sac import SAC, SACConfig
from benchmark.runner import RunSpec, prepare, run_one
from benchmark.tasks import TaskSpec

ROOT = Path(__file__).resolve().parent.parent
OBS, ACT = 11, 3
# the algorithms whose updates go through a compiled step: the SAC core's SAC.update (update_critic,
# update_actor) and TD3+BC's critic_step / actor_step; every other one allows only "off"
COMPILING = {"admpo-off", "admpo-off-ablation", "admpo-on", "bmpo", "cbop", "combo", "cql", "edac", "mbpo",
             "mobile", "mopo", "rambo", "sac", "td3bc"}


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("admbench: error: "), err
    return err[0]


@pytest.mark.parametrize("algo, task, setting, message", [
    ("bc", "local/hopper-medium-replay", "compile=default",
     "--set: field 'compile' = 'default' is not allowed for BCConfig; allowed: off"),
    ("ddppo", "mujoco/Hopper", "compile=reduce-overhead", "not allowed for DDPPOConfig; allowed: off"),
    ("td3bc", "local/hopper-medium-replay", "compile=fast",
     "field 'compile' = 'fast' is not allowed for TD3BCConfig; allowed: off, default, reduce-overhead, "
     "max-autotune"),
])
def test_compile_is_refused_where_it_does_nothing_or_is_unknown(algo, task, setting, message, tmp_path,
                                                                capsys):
    assert main(["run", "--algo", algo, "--task", task, "--set", setting, "--results", str(tmp_path)]) == 2
    assert message in _error(capsys)
    assert not list(tmp_path.rglob("*.json"))


def test_every_algorithm_states_whether_its_updates_compile():
    registry.load_all()
    allowed = {name: field_choices(spec.config_cls, "compile")
               for name, spec in registry.algorithms().items()}
    assert {name for name, modes in allowed.items() if modes == COMPILE_MODES} == COMPILING
    assert all(modes == ("off",) for name, modes in allowed.items() if name not in COMPILING)


def test_readme_quotes_the_committed_cpu_compile_timings():
    bench = json.loads((ROOT / "results" / "bench" / "compile-cpu.json").read_text())["compile"]
    readme = " ".join((ROOT / "README.md").read_text().split())
    for algo, name in (("sac", "SAC"), ("td3bc", "TD3+BC"), ("cql", "CQL")):
        off, on = bench[algo]["off"], bench[algo]["default"]
        assert (f"{name} {off['update_cpu_ms']:.1f} -> {on['update_cpu_ms']:.1f} ms "
                f"({on['speedup_cpu_vs_eager']:.2f}x)") in readme


def test_compile_joins_the_config_hash_only_when_set(monkeypatch):
    monkeypatch.setattr(TaskSpec, "data_fingerprint", lambda self: None)

    def chash(overrides):
        return prepare(RunSpec("td3bc", "local/hopper-medium", 0, "smoke", overrides))[-1]

    # main's hash before the field existed (scripts/check_config_hashes.py lists every algorithm's)
    assert chash({}) == chash({"compile": "off"}) == "3e9788939b78afaf"
    hashes = {chash({"compile": mode}) for mode in COMPILE_MODES[1:]}
    assert len(hashes) == 3 and chash({}) not in hashes  # a compiled run is not an eager run's record
    assert prepare(RunSpec("td3bc", "local/hopper-medium", 0, "smoke", {"compile": "default"}))[3][
        "compile"] == "default"  # the record's config says so


def test_compiled_steps_pickle_as_their_mode_and_rebuild():
    torch._dynamo.reset()
    steps = CompiledSteps("default")
    sac = SAC(OBS, ACT, SACConfig(hidden=(8,)))
    compile_module.BACKEND, before = "aot_eager", compile_module.BACKEND
    try:
        steps(sac.update_critic)
    finally:
        compile_module.BACKEND = before
    assert set(steps.built) == {"update_critic"}
    loaded = pickle.loads(pickle.dumps(steps))
    assert loaded.mode == "default" and loaded.built == {}
    assert CompiledSteps("off")(sac.update_critic) == sac.update_critic
    with pytest.raises(ValueError, match="compile must be one of off, default"):
        CompiledSteps("fast")


def _state_gap(a: torch.nn.Module | dict, b: torch.nn.Module | dict) -> float:
    """Largest relative difference ||a - b|| / ||a|| over the tensors of two state dicts."""
    sa = a if isinstance(a, dict) else a.state_dict()
    sb = b if isinstance(b, dict) else b.state_dict()
    return max(((sa[k].float() - sb[k].float()).norm() / sa[k].float().norm().clamp_min(1e-12)).item()
               for k in sa)


def _paired_updates(eager, compiled, update, batches):
    """The same batches and the same noise through an eager and a compiled copy; their diagnostics."""
    out = []
    for learner in (eager, compiled):
        torch.manual_seed(1)
        out.append([update(learner, b) for b in batches])
    return out


def _close(infos_a, infos_b, rel):
    for ia, ib in zip(infos_a, infos_b):
        assert ia.keys() == ib.keys()
        for k in ia:
            assert float(ib[k]) == pytest.approx(float(ia[k]), rel=rel, abs=rel), k


# ----- the plumbing, fast (aot_eager) -----------------------------------------------------------------
@pytest.fixture
def aot_eager(monkeypatch):
    torch._dynamo.reset()
    monkeypatch.setattr(compile_module, "BACKEND", "aot_eager")
    yield
    torch._dynamo.reset()


@pytest.mark.parametrize("mode", ["default", "reduce-overhead"])  # the latter: the CUDA-graph step wrapper
def test_sac_steps_compile_once_and_match_eager(mode, aot_eager):
    torch.manual_seed(0)
    eager = SAC(OBS, ACT, SACConfig(auto_alpha=True, hidden=(32, 32)))
    compiled = copy.deepcopy(eager)
    compiled.compiled_steps = CompiledSteps(mode)
    batches = [random_batch(OBS, ACT, 64, seed=i) for i in range(6)]
    torch.manual_seed(1)
    infos_eager = [eager.update(b) for b in batches]
    torch.manual_seed(1)
    infos = [compiled.update(b) for b in batches[:3]]  # first call compiles, the second sees Adam's state
    # no recompile afterwards: a host read of the changing temperature would recompile every step
    with torch._dynamo.config.patch(error_on_recompile=True):
        infos += [compiled.update(b) for b in batches[3:]]
    # the loops get scalar tensors, as from eager (read a window at once, benchmark.rl.trainers.StepMetrics)
    assert all(isinstance(v, torch.Tensor) and v.numel() == 1 for v in infos[-1].values())
    _close(infos_eager, infos, rel=1e-5)
    assert _state_gap(eager, compiled) < 1e-5


@pytest.mark.parametrize("backend", ["aot_eager", pytest.param("inductor", marks=pytest.mark.slow)])
def test_compiled_td3bc_run_checkpoints_and_resumes_to_the_same_record(backend, tiny_data, tmp_path,
                                                                       monkeypatch):
    torch._dynamo.reset()
    monkeypatch.setattr(compile_module, "BACKEND", backend)
    sizes = {"compile": "default", "epochs": 3, "steps_per_epoch": 10, "eval_episodes": 1,
             "checkpoint_every": 1}
    run = RunSpec("td3bc", "local/hopper-medium-replay", 0, "smoke", sizes)
    reference = run_one(run, tmp_path / "a", progress=False)
    assert reference["status"] == "ok", reference.get("traceback")
    assert reference["config"]["compile"] == "default"

    resumed, last_save = resume_after_second_checkpoint(run, tmp_path / "b", monkeypatch)
    assert resumed["status"] == "ok" and resumed["resumed_from"] == last_save  # the algorithm pickled whole
    assert resumed["curve"] == reference["curve"] and resumed["final_score"] == reference["final_score"]
    torch._dynamo.reset()


# ----- inductor against eager at paper sizes, slow ------------------------------------------------------
N_UPDATES = 10
# after 10 Adam steps the compiled and eager weights differ by float rounding amplified by Adam's
# normalised steps (a gradient near 0 may change sign). Measured (relative norm of the difference, largest
# tensor; diagnostics relative): SAC 7.3e-6 / 5.7e-6, CQL 2.1e-5 / 2.4e-6, TD3+BC 3.1e-5 / 7.9e-6; the
# bounds leave ~10x. One missed Adam step moves a 2x256 layer by ~5e-3 relative, well outside them.
STATE_TOL = 3e-4
INFO_TOL = 1e-4


@pytest.fixture(scope="module")
def hopper_ctx():
    ds = build_local_dataset("hopper", "random", size=1500, seed=0)
    return Context(ds, "hopper", ds.obs_dim, ds.act_dim, 1.0, torch.device("cpu"), seed=0)


@pytest.mark.slow
@pytest.mark.parametrize("learner", ["sac", "cql"])
def test_inductor_sac_and_cql_updates_stay_close_to_eager(learner):
    torch._dynamo.reset()
    torch.manual_seed(0)
    if learner == "sac":
        eager = SAC(OBS, ACT, SACConfig(auto_alpha=True))
    else:
        eager = CQLLearner(OBS, ACT, CQLConfig(hidden=(256, 256)))
    compiled = copy.deepcopy(eager)
    compiled.compiled_steps = CompiledSteps("default")
    batches = [random_batch(OBS, ACT, 256, seed=i) for i in range(N_UPDATES)]
    for copy_ in (eager, compiled):
        if hasattr(copy_, "generator"):
            copy_.generator = torch.Generator().manual_seed(2)
    infos_eager, infos = _paired_updates(eager, compiled, lambda a, b: a.update(b), batches)
    _close(infos_eager, infos, INFO_TOL)
    assert _state_gap(eager, compiled) < STATE_TOL


@pytest.mark.slow
def test_inductor_td3bc_updates_stay_close_to_eager(hopper_ctx):
    torch._dynamo.reset()
    torch.manual_seed(0)
    eager = TD3BC(TD3BCConfig(), hopper_ctx)
    compiled = TD3BC(TD3BCConfig(compile="default"), hopper_ctx)
    for name in ("actor", "actor_target", "critic", "critic_target"):
        getattr(compiled, name).load_state_dict(getattr(eager, name).state_dict())
    g = torch.Generator().manual_seed(0)
    batches = [eager.real.sample(256, g) for _ in range(N_UPDATES)]
    infos_eager, infos = _paired_updates(eager, compiled, lambda a, b: a.learn(b), batches)
    _close(infos_eager, infos, INFO_TOL)
    for name in ("actor", "critic", "actor_target", "critic_target"):
        assert _state_gap(getattr(eager, name), getattr(compiled, name)) < STATE_TOL, name
