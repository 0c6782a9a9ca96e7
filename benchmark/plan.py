"""``admbench reproduce SUITE --plan``: what would run, what is done, what it costs, what data is missing.

Cost model of one run: ``setup + steps x seconds_per_step``. ``setup`` is the one-off work before the
first step (model training, online warm-up), ``steps`` the planned gradient steps (offline) or
environment steps (online), and ``seconds_per_step`` the rest of the wall time (updates, rollouts,
evaluations) per step. Both parts are measured from finished ``ok`` records (``wall_time_s`` and
``setup_info.setup_time_s``), because a smoke run's time is mostly setup and its per-step cost alone would
inflate every longer run. A record's CPU time (``cpu_time_s``, ``setup_info.setup_cpu_time_s``) is used where
it has one, wall time otherwise: the estimate is in CPU-hours, and a loaded host stretches wall time
by whatever else runs. Where the numbers come from, best first:

1. records of the same algorithm and budget;
2. records of the same algorithm at another budget: the same per-step cost, and the setup scaled by
   planned / measured model epochs where both are known (else the measured setup as is);
3. a measured *sibling*: another algorithm with the same config class family (model-based offline,
   model-free offline, online);
4. a stated default (:data:`DEFAULTS`, from the README's "Performance" table, one CPU core).

A `paper` run with no record of its own first takes the per-epoch benchmark of its algorithm
(``results/bench/epochs-cpu.json``, written by ``scripts/bench_epochs.py``): measured at paper sizes, it
beats scaling a shorter budget's records.

Records are read from the results folder and from the repository's committed records (``results/``), so a
fresh ``--results`` folder still gets measured estimates. A run with an ``ok`` record of the same config
hash in the results folder is *done*: listed as such and left out of the total.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from benchmark.results import REPO_ROOT, times_whole_run

# seconds per step and setup seconds when nothing is measured (ours: one CPU core of the README's
# "Performance" table: SAC update 20.8 ms, TD3+BC 17.5 ms, BC 4.0 ms, CQL ~0.4 s, ADMPO-OFF ~105 s per
# 1000-step epoch at paper size; online ~45 env steps/s at one update per step)
DEFAULTS: dict[str, tuple[float, float]] = {  # family -> (seconds per step, setup seconds)
    "offline": (0.02, 0.0),
    "model-based": (0.105, 600.0),
    "online": (0.03, 5.0),
}
DEFAULTS_SOURCE = "default (README 'Performance', one core)"
SETUP_SCALE_KEYS = (("model_max_epochs", "model_epochs"), ("dynamics_max_epochs", "dynamics/epochs"))


@dataclass
class Sample:
    algo: str
    budget: str
    family: str
    setup_s: float
    per_step_s: float  # per unit of work: one step, times updates_per_step for online algorithms
    model_epochs: float | None
    steps: int = 0  # the run's planned steps: a run of another length costs differently per step
    cpu: bool = False  # timed in CPU time (else wall time, stretched by whatever else ran)
    whole: bool = True  # False: a resumed run whose times cover only the segment since its resume
    path: str = ""  # the record it was read from (leave-one-out checks of the estimates)
    task: str = ""
    model_key: str | None = None  # the settings of the model its setup trains (:func:`model_key`)
    timed_s: float = 0.0  # the seconds its record timed: CPU if ``cpu`` else wall; the whole run if ``whole``


@dataclass
class Estimate:
    label: str
    done: bool
    seconds: float | None  # None only for done runs and analysis jobs
    source: str
    setup_s: float = 0.0
    steps: int = 0
    per_step_s: float = 0.0

    def text(self) -> str:
        if self.done:
            return f"{self.label}  done"
        if self.seconds is None:
            return f"{self.label}  est. ? ({self.source})"
        if not self.steps:  # an analysis job: measured as a whole
            return f"{self.label}  est. {self.seconds / 60:.1f} min ({self.source})"
        return (f"{self.label}  est. {self.seconds / 60:.1f} min = setup {self.setup_s:.0f} s + {self.steps} "
                f"steps x {self.per_step_s * 1000:.2g} ms ({self.source})")


def step_work(cfg_dict: dict) -> float:
    """Relative cost of one step: online algorithms do ``updates_per_step`` updates per env step (SAC 1,
    ADMPO-ON 20), so a sibling's per-step time is rescaled by it."""
    return float(cfg_dict.get("updates_per_step") or 1)


def planned_steps(cfg_dict: dict) -> int:
    """Gradient steps (offline) or environment steps (online) a config asks for."""
    if "env_steps" in cfg_dict:
        return int(cfg_dict["env_steps"])
    return int(cfg_dict.get("epochs", 0)) * int(cfg_dict.get("steps_per_epoch", 0))


def family(algo_id: str) -> str:
    from benchmark import registry
    from benchmark.rl.model_based import ModelBasedConfig

    spec = registry.get(algo_id)
    if spec.kind == "online":
        return "online"
    return "model-based" if issubclass(spec.config_cls, ModelBasedConfig) else "offline"


def read_samples(roots: list[Path]) -> list[Sample]:
    """One sample per finished record under ``roots`` (duplicates by path are read once)."""
    samples = []
    for real, rec in finished_records(roots):
        sample = sample_from_record(rec)
        if sample is not None:
            sample.path = str(real)
            samples.append(sample)
    return samples


def position_steps(cfg_dict: dict, position: int) -> int:
    """Steps behind a checkpoint position: online checkpoints count env steps, offline ones epochs."""
    if "env_steps" in cfg_dict:
        return int(position)
    return int(position) * int(cfg_dict.get("steps_per_epoch", 0))


def steps_since(cfg_dict: dict, resumed_from: int) -> int:
    """Steps a run resumed at position ``resumed_from`` still made."""
    return planned_steps(cfg_dict) - position_steps(cfg_dict, resumed_from)


def finished_records(roots: list[Path], pattern: str = "seed-*.json"):
    """``(resolved path, record)`` of every readable JSON record matching ``pattern`` under ``roots`` (a
    file reachable from two roots is read once)."""
    seen: set[Path] = set()
    for root in roots:
        if not Path(root).is_dir():
            continue
        for path in sorted(Path(root).rglob(pattern)):
            real = path.resolve()
            if real in seen:
                continue
            seen.add(real)
            try:
                yield real, json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                continue


def sample_from_record(rec: dict) -> Sample | None:
    cfg = rec.get("config") or {}
    steps = planned_steps(cfg)
    setup_info = rec.get("setup_info") or {}
    # CPU time where the record has it (a loaded host stretches wall time, not CPU time), else wall time
    cpu = rec.get("cpu_time_s") is not None and setup_info.get("setup_cpu_time_s") is not None
    wall = rec.get("cpu_time_s") if cpu else rec.get("wall_time_s")
    if rec.get("status") != "ok" or steps <= 0 or not wall or rec.get("schema") != "admbench.record/1":
        return None
    algo = rec.get("algo_id") or str(rec["algo"]).partition("@")[0]
    try:
        fam = family(algo)
    except Exception:  # an algorithm this install does not have (a plugin's record)
        return None
    # resumed before checkpoints kept their cost: the times cover the last segment only, which still
    # measures the per-step cost of that segment (its setup is the resume's, not the run's)
    whole = times_whole_run(rec)
    # (a run that resumed its setup only timed every step, but not the setup's earlier processes)
    resumed_at = rec.get("resumed_from")
    timed_steps = steps if whole or resumed_at is None else steps_since(cfg, resumed_at)
    if timed_steps <= 0:
        return None
    setup = float(setup_info.get("setup_cpu_time_s" if cpu else "setup_time_s") or 0.0)
    setup = min(setup, float(wall))
    model_epochs = next((setup_info[k] for _, k in SETUP_SCALE_KEYS if setup_info.get(k)), None)
    per_step = (float(wall) - setup) / timed_steps / step_work(cfg)
    epochs = float(model_epochs) if model_epochs else None
    return Sample(algo, rec.get("budget", ""), fam, setup, per_step, epochs, steps, cpu, whole,
                  task=str(rec.get("task", "")), model_key=model_key(cfg), timed_s=float(wall))


def closest_samples(samples: list[Sample], steps: int) -> list[Sample]:
    """The samples most like the planned run: of its length if any (an online run's per-step cost grows
    with its buffer and model-training set; a short run is mostly warm-up and evaluations), then timed in
    CPU time if any (wall time counts the host's other load)."""
    same_length = [s for s in samples if s.steps == steps] or samples
    return [s for s in same_length if s.cpu] or same_length


def _median(values) -> float:
    return float(statistics.median(values))


# the prefix of the config fields that set the model each setup cap belongs to
MODEL_FIELD_PREFIX = {"model_max_epochs": "model_", "dynamics_max_epochs": "dynamics_"}
# fields with those prefixes that do not change how the model trains (rollouts, the model buffer)
NOT_MODEL_TRAINING = frozenset({"dynamics_termination", "model_retain_epochs"})


def _same_kind_of_model(a: str | None, b: str | None) -> bool:
    """Both keys set the same fields (both ensembles, or both ADM-style models), whatever their values."""
    return a is not None and b is not None and set(json.loads(a)) == set(json.loads(b))


def model_key(cfg_dict: dict) -> str | None:
    """The settings of the model a run's setup trains (every ``model_*`` or ``dynamics_*`` field of the
    first cap in :data:`SETUP_SCALE_KEYS` it has), as a string: runs with equal keys on one task train the
    same model (MOPO, COMBO, RAMBO and MOBILE share the ensemble), so its measured epochs carry over."""
    for cap, _ in SETUP_SCALE_KEYS:
        if cap in cfg_dict:
            prefix = MODEL_FIELD_PREFIX[cap]
            return json.dumps({k: v for k, v in cfg_dict.items() if k.startswith(prefix)
                               and k not in NOT_MODEL_TRAINING}, sort_keys=True, default=str)
    return None


def same_model_samples(samples: list[Sample], task: str, cfg_dict: dict) -> list[Sample]:
    """The records (any algorithm) whose setup trained the model ``cfg_dict`` trains, on the same task."""
    key = model_key(cfg_dict)
    return [s for s in samples if key is not None and s.model_key == key and task and s.task == task
            and s.model_epochs]


def measured_model_epochs(samples: list[Sample], task: str, cfg_dict: dict) -> tuple[float, int] | None:
    """The median model epochs, and how many runs, of the records that trained the same model on the same
    task: where early stopping or a step cap ends training before the epoch cap."""
    seen = [s.model_epochs for s in same_model_samples(samples, task, cfg_dict)]
    return (_median(seen), len(seen)) if seen else None


def _planned_model_epochs(cfg_dict: dict) -> float | None:
    for key, _ in SETUP_SCALE_KEYS:
        if cfg_dict.get(key):
            return float(cfg_dict[key])
    return None


# config fields that set how long a run is, not what one of its steps computes
LOOP_FIELDS = frozenset({"epochs", "steps_per_epoch", "eval_episodes", "final_k", "checkpoint_every"})
# fields whose cost the benchmark's parts scale by: the model rollouts' size and frequency (a rollout costs
# in proportion to its starts) and the model-training cap (the setup is model epochs x one epoch's time)
SCALED_FIELDS = frozenset({"rollout_batch_size", "rollout_freq", "model_max_epochs", "dynamics_max_epochs",
                           "dynamics_max_steps"})


def scalable_from_bench(cfg_dict: dict, paper_cfg: dict | None) -> bool:
    """True when a config differs from its paper config only in :data:`LOOP_FIELDS` and
    :data:`SCALED_FIELDS`: its update is the benchmark's, its rollouts and model training scale from it."""
    if paper_cfg is None:
        return False
    differing = {k for k in set(cfg_dict) | set(paper_cfg) if cfg_dict.get(k) != paper_cfg.get(k)}
    return differing <= LOOP_FIELDS | SCALED_FIELDS


def scaled_bench_estimate(row: dict, cfg_dict: dict, measured_epochs: tuple[float, int] | None = None
                          ) -> tuple[float, float, str]:
    """``(setup_s, per_step_s, source)`` for another budget of a benchmarked config: the benchmark's update,
    plus its rollout scaled by this config's starts and rollouts per step, plus its evaluation scaled to this
    config's episodes per epoch; the setup is one model epoch times the epochs runs training the same model
    on the task took (``measured_epochs``: :func:`measured_model_epochs`), else times the config's epoch cap
    (an upper bound: early stopping may end sooner)."""
    steps_per_epoch = max(1, int(cfg_dict.get("steps_per_epoch") or row["steps_per_epoch"]))
    per_step = float(row["update_ms"]) / 1e3
    per_step += float(row.get("eval_s", 0.0)) * float(cfg_dict.get("eval_episodes") or 0) / max(
        1, int(row.get("eval_episodes") or 1)) / steps_per_epoch
    source = f"bench {EPOCH_BENCH.relative_to(REPO_ROOT)} scaled to this budget"
    if row.get("rollout_s") and cfg_dict.get("rollout_batch_size") and cfg_dict.get("rollout_freq"):
        size = float(cfg_dict["rollout_batch_size"]) / float(row["rollout_batch_size"])
        per_step += float(row["rollout_s"]) * size / float(cfg_dict["rollout_freq"])
    setup = float(row.get("setup_s", 0.0))
    if "model_epoch_s" in row and measured_epochs is not None:
        epochs, runs = measured_epochs
        setup = float(row["model_epoch_s"]) * epochs
        source += f"; setup = {epochs:g} model epochs, as {runs} run(s) training the same model here took"
    elif "model_epoch_s" in row:
        epochs = _planned_model_epochs(cfg_dict)
        if epochs is None:
            return setup, per_step, source + "; model epochs unknown (early stopping): setup not counted"
        setup = float(row["model_epoch_s"]) * epochs
        source += f"; setup = {epochs:g} model epochs, the cap (an upper bound)"
    return setup, per_step, source


# a run this many times shorter than the planned one is mostly warm-up, first model fit and evaluations: its
# per-step cost does not extrapolate (MBPO: 2.3 s per env step over a 1000-step run, 0.45 over 15000); ours
FAR_SHORTER = 4


def sibling_scaled(short: list[Sample], samples: list[Sample], algo: str, budget: str, steps: int
                   ) -> tuple[float, float, str] | None:
    """``(setup_s, per_step_s, source)`` for an algorithm timed only on runs far shorter than planned: the
    per-step cost at about the planned length of the sibling (same family and budget) that cost most like it
    on runs of the short length, times this algorithm's per-step cost over that sibling's there. None when
    no sibling was timed at both lengths."""
    lengths = {s.steps for s in short}
    own = _median(s.per_step_s for s in short)
    candidates = []  # (|log ratio|, name, ratio, the sibling's per-step cost at about the planned length)
    fam = family(algo)
    for name in sorted({s.algo for s in samples if s.family == fam and s.algo != algo}):
        theirs = [s for s in samples if s.algo == name and s.budget == budget]
        at_short = [s for s in theirs if s.steps in lengths]
        at_length = closest_samples([s for s in theirs if s.steps * 2 >= steps], steps)
        if at_short and at_length:
            ratio = own / _median(s.per_step_s for s in at_short)
            candidates.append((abs(math.log(ratio)), name, ratio, _median(s.per_step_s for s in at_length)))
    if not candidates:
        return None
    _, name, ratio, theirs = min(candidates)
    lengths_text = "/".join(map(str, sorted(lengths)))
    return (_median(s.setup_s for s in short), theirs * ratio,
            f"{algo} timed only on {lengths_text}-step runs: {name}'s cost per update at this length x "
            f"{ratio:.2f}, {algo}'s over {name}'s per update on {lengths_text}-step runs (of the siblings, "
            "the one costing most alike there)")


def estimate(algo: str, budget: str, cfg_dict: dict, samples: list[Sample],
             paper_cfg: dict | None = None, task: str = "") -> tuple[float, float, str]:
    """``(setup_s, per_step_s, source)`` for one (algorithm, budget, config); never unknown. ``paper_cfg``
    (the same run's config at the `paper` budget) lets another budget that changes only loop lengths, rollout
    sizes and model caps scale the epoch benchmark; ``task`` lets it take the model epochs of runs that
    trained the same model on that task."""
    same = closest_samples([s for s in samples if s.algo == algo and s.budget == budget],
                           planned_steps(cfg_dict))
    if not same and budget != "paper" and scalable_from_bench(cfg_dict, paper_cfg):
        row = epoch_bench(algo, "paper")
        if row is not None and "update_ms" in row and "pretrain_step_ms" not in row:
            return scaled_bench_estimate(row, cfg_dict, measured_model_epochs(samples, task, cfg_dict))
    if same and max(s.steps for s in same) * FAR_SHORTER < planned_steps(cfg_dict):
        scaled = sibling_scaled(same, samples, algo, budget, planned_steps(cfg_dict))
        if scaled is not None:
            return scaled
    if same:
        whole = [s for s in same if s.whole]
        setup = _median(s.setup_s for s in whole) if whole else 0.0
        note = "" if whole else "; resumed: per-step cost of the last segment, setup unknown (0)"
        return (setup, _median(s.per_step_s for s in same),
                f"measured: {len(same)} {algo} {budget} record{'s' * (len(same) > 1)}"
                f"{'' if all(s.cpu for s in same) else ' (wall time)'}{note}")
    bench = epoch_bench(algo, budget)
    if bench is not None:
        return bench_estimate(bench, cfg_dict, [s for s in samples if s.algo == algo])
    other = [s for s in samples if s.algo == algo]
    source = None
    if not other:
        fam = family(algo)
        siblings = [s for s in samples if s.family == fam]
        near = [s for s in siblings if s.budget == budget] or siblings
        if near:
            names = sorted({s.algo for s in near})
            other, source = near, f"sibling {', '.join(names)} ({near[0].budget if len(near) else ''})"
    if not other:
        per_step, setup = DEFAULTS[family(algo)]
        return setup, per_step, DEFAULTS_SOURCE
    per_step = _median(s.per_step_s for s in other)
    budgets = ", ".join(sorted({s.budget for s in other}))
    source = source or f"{algo} at {budgets}"
    same_model = [s for s in same_model_samples(samples, task, cfg_dict) if s.whole]
    if same_model:  # the setup trains the model those runs trained on this task (MOPO's ensemble for RAMBO)
        return (_median(s.setup_s for s in same_model), per_step,
                source + f"; setup as {len(same_model)} run(s) training the same model here took")
    planned = _planned_model_epochs(cfg_dict)
    # a model epoch costs what one of the same kind of model cost (an ensemble's, not ADM's)
    kind = [s for s in other if _same_kind_of_model(s.model_key, model_key(cfg_dict))] or other
    scaled = [s.setup_s / s.model_epochs * planned for s in kind if s.model_epochs and planned]
    if scaled:
        return _median(scaled), per_step, source + f"; setup scaled to {planned:g} model epochs"
    setup = _median(s.setup_s for s in other)
    if any(s.model_epochs for s in other) and planned is None:
        setup = max(s.setup_s for s in other)
        source += "; model trains to early stopping: setup is the longest measured, a lower bound"
    return setup, per_step, source


EPOCH_BENCH = REPO_ROOT / "results" / "bench" / "epochs-cpu.json"  # scripts/bench_epochs.py


def epoch_bench(algo: str, budget: str, path: Path | None = None) -> dict | None:
    """The measured per-epoch parts of ``algo`` at `paper` sizes (``scripts/bench_epochs.py``), if any."""
    if budget != "paper":
        return None
    try:
        rows = json.loads(Path(path or EPOCH_BENCH).read_text())["algorithms"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return rows.get(algo)


# fixed-length policy pre-training inside setup() (CBOP), timed per step by scripts/bench_epochs.py
PRETRAIN_STEP_FIELDS = ("bc_steps", "pe_steps")


def bench_estimate(row: dict, cfg_dict: dict, records: list[Sample]) -> tuple[float, float, str]:
    """``(setup_s, per_step_s, source)`` from the epoch benchmark: a gradient step costs the epoch (updates,
    rollouts, evaluation) over its steps; the setup is the one-model-epoch time times the model epochs of
    the config's cap, else of this algorithm's finished records (early stopping: counted as measured), plus
    the config's pre-training steps times the benchmark's time per pre-training step."""
    per_step = float(row["epoch_s"]) / max(1, int(cfg_dict.get("steps_per_epoch") or row["steps_per_epoch"]))
    source = f"bench {EPOCH_BENCH.relative_to(REPO_ROOT)}"
    pretrain_s = 0.0
    if "pretrain_step_ms" in row:  # fixed-length policy pre-training inside setup (CBOP's BC + evaluation)
        steps = sum(int(cfg_dict[k]) for k in PRETRAIN_STEP_FIELDS if k in cfg_dict)
        pretrain_s = steps * float(row["pretrain_step_ms"]) / 1e3
        source += f"; setup includes {steps} pre-training steps"
    if "model_epoch_s" not in row:
        return float(row.get("setup_s", 0.0)) + pretrain_s, per_step, source
    epochs = _planned_model_epochs(cfg_dict)
    if epochs is None:
        seen = [s.model_epochs for s in records if s.model_epochs]
        if seen:
            epochs, how = max(seen), "the most model epochs of its records; early stopping decides"
        else:
            epochs, how = 1.0, "model epochs unknown until a run stops early: ONE epoch, a lower bound"
        source += f"; setup = {epochs:g} model epochs ({how})"
    return float(row["model_epoch_s"]) * epochs + pretrain_s, per_step, source


def missing_data(tasks) -> list[tuple[str, Path, str]]:
    """``(task, expected path, how to get it)`` for every d4rl/neorl task whose file is not on disk."""
    out = []
    for task in sorted(set(tasks)):
        family_name, _, name = task.partition("/")
        if family_name == "d4rl":
            from benchmark.data.d4rl import d4rl_dir, d4rl_filename

            path = d4rl_dir() / d4rl_filename(name)
            if not path.exists():
                out.append((task, path, f"admbench data fetch {task} (or set $D4RL_DATASET_DIR)"))
        elif family_name == "neorl":
            from benchmark.data.neorl import _train_filename, find_neorl_file, neorl_dir, parse_neorl_name

            stem = parse_neorl_name(name)[0]
            if find_neorl_file(stem, neorl_dir()) is None:
                out.append((task, neorl_dir() / _train_filename(stem),
                            f"admbench data fetch {task} (or set $NEORL_DATA_DIR)"))
    return out


def missing_data_message(missing: list[tuple[str, Path, str]], limit: int = 5) -> str:
    dirs = sorted({str(p.parent) for _, p, _ in missing})
    lines = [f"{len(missing)} dataset file(s) missing (put them in {' or '.join(dirs)}):"]
    lines += [f"  {task}: {path}  <- {how}" for task, path, how in missing[:limit]]
    if len(missing) > limit:
        lines.append(f"  ... and {len(missing) - limit} more")
    return "\n".join(lines)


def resumable_steps(record_path: Path, cfg_dict: dict) -> int:
    """Steps an interrupted run has behind it: the position of its newest checkpoint file (env steps online,
    epochs offline) in steps; 0 when it has none. Read from the file name only (the checkpoint itself is
    checked when the run resumes)."""
    from benchmark.rl.checkpoint import checkpoint_files, checkpoint_position
    from benchmark.runner import checkpoint_dir

    files = checkpoint_files(checkpoint_dir(Path(record_path)))
    return position_steps(cfg_dict, checkpoint_position(files[-1])) if files else 0


def checkpoint_costs(record_path: Path) -> list[tuple[int, float]] | None:
    """``(position, CPU seconds the run had cost by then)`` of an interrupted run's two newest checkpoints
    (oldest first); ``None`` when one is unreadable or carries no cost."""
    import torch

    from benchmark.rl.checkpoint import checkpoint_files, checkpoint_position
    from benchmark.runner import checkpoint_dir

    costs = []
    for path in checkpoint_files(checkpoint_dir(Path(record_path)))[-2:]:
        try:  # memory-mapped: only the small cost entry is read, not the buffers
            state = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
        except Exception:  # unreadable or partly written: no cost, the usual estimate stands
            return None
        cpu = (state.get("spent") or {}).get("cpu_s") if isinstance(state, dict) else None
        if not isinstance(cpu, int | float):
            return None
        costs.append((checkpoint_position(path), float(cpu)))
    return costs


def checkpoint_pace(costs: list[tuple[int, float]] | None, cfg_dict: dict) -> float | None:
    """CPU seconds per step between an interrupted run's two newest checkpoints (``costs``, from
    :func:`checkpoint_costs`): the run's own current pace. ``None`` without two readable checkpoints that
    carry their cost."""
    if not costs or len(costs) < 2:
        return None
    (first, spent0), (last, spent1) = costs
    steps = position_steps(cfg_dict, last) - position_steps(cfg_dict, first)
    return (spent1 - spent0) / steps if steps > 0 and spent1 > spent0 else None


def finished_twin_remainder(samples: list[Sample], algo: str, budget: str, task: str, cfg_dict: dict,
                            costs: list[tuple[int, float]] | None) -> tuple[float, str] | None:
    """What is left of an interrupted run, from finished runs of the same algorithm, budget, task and
    length, timed in CPU time over their whole run: their (median) total minus what this run had cost at its
    newest checkpoint (the last of ``costs``, from :func:`checkpoint_costs`). Unlike the run's own pace it
    follows a run whose steps grow dearer (an online model retrained from scratch on a growing buffer:
    ADMPO-ON, MBPO). ``None`` without such a run, a checkpoint that carries its cost, or a positive remainder
    (this seed is slower than those were)."""
    steps = planned_steps(cfg_dict)
    twins = [s for s in samples if (s.algo, s.budget, s.task, s.steps) == (algo, budget, task, steps)
             and s.whole and s.cpu]
    if not twins or not costs:
        return None
    total = _median(s.setup_s + s.per_step_s * step_work(cfg_dict) * s.steps for s in twins)
    left = total - costs[-1][1]
    if left <= 0:
        return None
    return left, (f"; what is left: {len(twins)} finished run(s) of this length cost {total:.0f} CPU-s in "
                  f"all, this one had spent {costs[-1][1]:.0f} by its newest checkpoint")


def paper_config(run) -> dict | None:
    """The run's config at the `paper` budget (same task, seed and overrides), or None if it cannot be
    built."""
    from dataclasses import replace as dc_replace

    from benchmark.runner import prepare

    if run.budget == "paper":
        return None
    try:
        return prepare(dc_replace(run, budget="paper"))[3]
    except Exception:
        return None


def plan_estimates(runs, results_dir: Path, extra_roots: list[Path] | None = None) -> list[Estimate]:
    """An :class:`Estimate` per planned run or analysis job (done ones marked)."""
    from benchmark.rl.checkpoint import StageCheckpoints
    from benchmark.runner import RunSpec, checkpoint_dir, existing_record, prepare, prepare_analysis

    roots = [Path(results_dir), *(extra_roots if extra_roots is not None else [REPO_ROOT / "results"])]
    samples = read_samples(roots)
    analyses = read_analysis_times(roots)
    out = []
    # models an earlier analysis job of this plan will fit, per (task, seed, budget): a later job with the
    # same share key loads them (run after it, or waiting on its lock when run beside it)
    planned_fits: dict[tuple, set[str]] = {}
    for run in runs:
        if not isinstance(run, RunSpec):  # analysis jobs: no steps to scale by
            done = run.path(results_dir).exists()
            key = (run.task, run.seed, run.budget)
            seconds, source = (analysis_estimate(run, analyses, planned_fits.get(key, set())) if not done
                               else (None, "done"))
            if not done:
                planned_fits.setdefault(key, set()).update(fitted_stages(run, analyses))
            spent = 0.0 if done else StageCheckpoints.spent_in(checkpoint_dir(run.path(results_dir)),
                                                               prepare_analysis(run)[-1])
            if spent and seconds is not None:  # an interrupted job resumes past its saved stages
                seconds = max(0.0, seconds - spent)
                source += f"; resumes with {spent / 60:.0f} CPU-min of saved stages"
            out.append(Estimate(run.label(), done, seconds, source))
            continue
        _, _, _, cfg_dict, _, chash = prepare(run)
        if existing_record(run.path(results_dir), chash) is not None:
            out.append(Estimate(run.label(), True, None, "done"))
            continue
        steps = planned_steps(cfg_dict)
        setup, per_step, source = estimate(run.algo, run.budget, cfg_dict, samples, paper_config(run),
                                           run.task)
        per_step *= step_work(cfg_dict)
        done_steps = resumable_steps(run.path(results_dir), cfg_dict)
        if done_steps:  # an interrupted run resumes past its setup at its newest checkpoint
            setup, steps = 0.0, max(0, steps - done_steps)
            source += f"; resumes from a checkpoint with {steps} steps left"
            costs = checkpoint_costs(run.path(results_dir))  # read once: both estimates below use it
            twin = finished_twin_remainder(samples, run.algo, run.budget, run.task, cfg_dict, costs)
            pace = checkpoint_pace(costs, cfg_dict)
            if twin is not None and steps:
                per_step = twin[0] / steps
                source += twin[1]
            elif pace is not None:
                per_step = pace
                source += f" at its own pace between its last two checkpoints ({pace:.3g} CPU-s per step)"
        out.append(Estimate(run.label(), False, setup + per_step * steps, source, setup, steps, per_step))
    return out


class AnalysisTime(NamedTuple):
    """What one finished analysis job cost: its own CPU time, and per stage (a fitted model) the CPU
    seconds it cost, including stages it loaded from another job's fit (``shared``), whose cost that job's
    record carries, not this one's."""

    analysis: str
    budget: str
    task: str
    cpu_s: float
    path: str
    seed: int = 0
    stages: dict[str, float] = {}
    shared: frozenset[str] = frozenset()

    @property
    def standalone_s(self) -> float:
        """What the job costs fitting every model itself."""
        return self.cpu_s + sum(self.stages.get(name, 0.0) for name in self.shared)


def read_analysis_times(roots: list[Path]) -> list[AnalysisTime]:
    """An :class:`AnalysisTime` per finished analysis record that has its CPU time."""
    out = []
    for real, rec in finished_records(roots, "analysis-*/*/seed-*.json"):
        if rec.get("status") != "ok" or not rec.get("cpu_time_s") or not rec.get("analysis"):
            continue
        stages = {name: float(cost["cpu_s"]) for name, cost in (rec.get("stage_costs") or {}).items()
                  if isinstance(cost, dict) and isinstance(cost.get("cpu_s"), int | float)}
        out.append(AnalysisTime(rec["analysis"], rec.get("budget", ""), rec.get("task", ""),
                                float(rec["cpu_time_s"]), str(real), int(rec.get("seed", 0)), stages,
                                frozenset(rec.get("shared_stages") or ())))
    return out


def task_transitions(task: str) -> int | None:
    """The size of a task's dataset where it is known without building or loading it (see
    :meth:`benchmark.tasks.TaskSpec.cached_transitions`)."""
    from benchmark.tasks import TaskError, resolve_task

    try:
        return resolve_task(task).cached_transitions()
    except TaskError:
        return None


def _fit_costs(t: AnalysisTime, scale: float) -> tuple[float, dict[str, float]]:
    """A finished job's cost split into what its model fits cost, each times ``scale``, and the rest (BC,
    rollouts, scoring: sizes that do not grow with the dataset)."""
    own_fits = sum(c for name, c in t.stages.items() if name not in t.shared)
    return t.cpu_s - own_fits, {name: c * scale for name, c in t.stages.items()}


def fitted_stages(job, times: list[AnalysisTime]) -> set[str]:
    """The models (stage names) finished jobs of ``job``'s analysis and budget fitted: what it will fit."""
    return {name for t in times if t.analysis == job.analysis and t.budget == job.budget for name in t.stages}


def analysis_estimate(job, times: list[AnalysisTime], fitted_first: set[str] = frozenset()
                      ) -> tuple[float | None, str]:
    """An analysis job costs what finished ones of the same analysis and budget cost fitting their own
    models (on the same task where measured: sizes do not scale by a step count), less the models another
    analysis's finished job on the same task, seed and budget already fitted (it loads them: the share key
    is the same, :func:`adm.analysis.model_share_key`) or that an earlier job of the same plan will fit
    (``fitted_first``). Measured on other tasks only, each model fit is
    scaled by the ratio of the datasets' transitions where both are known (an epoch walks the data; the
    number of epochs to early stopping is taken as measured). Unmeasured ones stay unknown rather than
    guessed."""
    same = [t for t in times if t.analysis == job.analysis and t.budget == job.budget]
    on_task = [t for t in same if t.task == job.task]
    pick = on_task or same
    if not pick:
        return None, "analysis job, not measured yet"
    where = job.task if on_task else "other tasks"
    source = f"measured: {len(pick)} {job.analysis} {job.budget} record(s) on {where}"
    scales = [1.0] * len(pick)
    if not on_task:
        mine = task_transitions(job.task)
        theirs = {task: task_transitions(task) for task in {t.task for t in pick}}
        if mine and all(theirs.values()):
            scales = [mine / theirs[t.task] for t in pick]
            source += (f"; model fits scaled by transitions ({mine} here vs "
                       f"{', '.join(f'{n} on {task}' for task, n in sorted(theirs.items()))})")
        elif any(t.stages for t in pick):
            source += "; model fits not scaled (a dataset size is not known without building it)"
    fitted_elsewhere = {name for t in times
                        if t.analysis != job.analysis and (t.task, t.seed, t.budget) == (job.task, job.seed,
                                                                                        job.budget)
                        for name in t.stages if name not in t.shared}
    loads = sorted((fitted_elsewhere | set(fitted_first)) & fitted_stages(job, times))
    if loads:
        by = ("another analysis job" if not set(loads) & (set(fitted_first) - fitted_elsewhere)
              else "another analysis job (planned before it)")
        source += f"; loads {', '.join(loads)} fitted by {by}"
    alone = [rest + sum(fits.values()) - sum(fits.get(name, 0.0) for name in loads)
             for rest, fits in (_fit_costs(t, scale) for t, scale in zip(pick, scales))]
    return max(0.0, _median(alone)), source


@dataclass
class Check:
    label: str
    estimate_s: float
    measured_s: float
    source: str
    # measured in CPU time; a wall-time record (the host's other load in it) is shown, not compared
    cpu: bool = True
    # timed over its whole run; a record timing its last resumed segment only is shown, not compared
    whole: bool = True

    @property
    def ratio(self) -> float:
        return self.estimate_s / self.measured_s


def check_estimates(runs, results_dir: Path, extra_roots: list[Path] | None = None) -> list[Check]:
    """How far ``--plan`` is from what finished runs cost: for each run of ``runs`` with a finished record
    timed over its whole run, the estimate made from every *other* record (leave-one-out: as if this run
    had not happened yet) against its measured CPU time (setup + steps); a record timed in wall time only
    is marked (``cpu=False``) and :func:`format_checks` leaves it out of the comparison."""
    from benchmark.runner import RunSpec, existing_record, prepare

    roots = [Path(results_dir), *(extra_roots if extra_roots is not None else [REPO_ROOT / "results"])]
    samples, analyses = read_samples(roots), read_analysis_times(roots)
    out = []
    for run in runs:
        if not isinstance(run, RunSpec):  # an analysis job: its CPU time against the others' median
            path = str(run.path(results_dir).resolve())
            own = [t for t in analyses if t.path == path]
            seconds, source = analysis_estimate(run, [t for t in analyses if t.path != path])
            if own and seconds is not None:
                out.append(Check(run.label(), seconds, own[0].cpu_s, source))
            continue
        _, _, _, cfg_dict, _, chash = prepare(run)
        path = run.path(results_dir)
        rec = existing_record(path, chash)
        own = sample_from_record(rec) if rec is not None else None
        if own is None:
            continue
        if not own.whole:
            out.append(Check(run.label(), float("nan"), own.timed_s, "", own.cpu, whole=False))
            continue
        steps, work = planned_steps(cfg_dict), step_work(cfg_dict)
        others = [s for s in samples if s.path != str(path.resolve())]
        setup, per_step, source = estimate(run.algo, run.budget, cfg_dict, others, paper_config(run),
                                           run.task)
        out.append(Check(run.label(), setup + per_step * work * steps, own.timed_s, source, own.cpu))
    return out


# under this much CPU time (both estimated and measured) a ratio compares timer and scheduling noise, not a
# cost (the no-model compounding-references jobs take 0.01-0.1 s); ours
TIMING_FLOOR_S = 1.0


def format_checks(checks: list[Check], tolerance: float = 0.3) -> str:
    is_tiny = [c.cpu and c.whole and max(c.estimate_s, c.measured_s) < TIMING_FLOOR_S for c in checks]
    tiny = [c for c, small in zip(checks, is_tiny) if small]
    checks = [c for c, small in zip(checks, is_tiny) if not small]
    lines = [f"{c.label}  estimate {c.estimate_s / 60:.1f} min, measured {c.measured_s / 60:.1f} min, "
             f"ratio {c.ratio:.2f}{'' if abs(c.ratio - 1) <= tolerance else '  OUTSIDE ±30%'} ({c.source})"
             for c in checks if c.cpu and c.whole]
    lines += [f"{c.label}  not compared: under {TIMING_FLOOR_S:g} CPU-second (estimate {c.estimate_s:.2f} s, "
              f"measured {c.measured_s:.2f} s; a ratio of these is timer noise)" for c in tiny]
    lines += [f"{c.label}  not compared: timed in wall time only ({c.measured_s / 60:.1f} min, counting the "
              "host's other load)" for c in checks if not c.cpu and c.whole]
    lines += [f"{c.label}  not compared: its record times its last resumed segment only "
              f"({c.measured_s / 60:.1f} min, a lower bound: its checkpoint predates kept costs)"
              for c in checks if not c.whole]
    checks = [c for c in checks if c.cpu and c.whole]
    if checks:
        total_est, total = sum(c.estimate_s for c in checks), sum(c.measured_s for c in checks)
        inside = sum(abs(c.ratio - 1) <= tolerance for c in checks)
        lines.append(f"{len(checks)} finished runs: {inside} estimated within ±{tolerance:.0%}; in all "
                     f"{total_est / 3600:.2f} estimated vs {total / 3600:.2f} measured CPU-hours "
                     f"(ratio {total_est / total:.2f})")
    else:
        lines.append("no finished run timed in CPU time over its whole run: nothing to check yet")
    return "\n".join(lines)


def format_plan(estimates: list[Estimate], workers: int, results_dir: Path) -> str:
    lines = [e.text() for e in estimates]
    todo = [e for e in estimates if not e.done]
    total = sum(e.seconds or 0.0 for e in todo)
    unknown = sum(e.seconds is None for e in todo)
    lines.append(
        f"{len(estimates)} runs: {len(estimates) - len(todo)} done (under {results_dir}/), "
        f"{len(todo)} to run; "
        f"estimated {total / 3600:.2f} CPU-hours (~{total / 3600 / max(1, workers):.2f} h on {workers} "
        f"workers)" + (f", {unknown} analysis jobs not measured yet" if unknown else "")
    )
    lines.append("estimate = setup + steps x seconds per step, from finished records of the same algorithm "
                 "and budget where there are some (see each line's source); this host's load moves them")
    return "\n".join(lines)
