"""``admbench data ...``: build, fetch, inspect datasets; train and select behaviour policies.

``benchmark/cli.py`` creates the ``data`` command, calls :func:`add_data_commands` on its subparsers
(``dest="data_command"``) and dispatches to :func:`run_data_command`.
``python -m benchmark.data_cli data ...`` runs the same commands alone.
Every command returns 0 on success and 2 on a data error, whose message names the file and problem.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmark.data.fetch import FetchError
from benchmark.rl.dataset import DatasetError, OfflineDataset

LOCAL_ENVS = ("hopper", "halfcheetah", "walker2d")
LOCAL_LEVELS = ("random", "medium", "medium-replay", "medium-expert", "expert")

# numeric flags and the values they allow, per command: checked before any work (one-line error, exit 2)
POSITIVE_INT, NON_NEGATIVE_INT = "a positive integer", "a non-negative integer"
POSITIVE_NUMBER = "a positive number"
FLAG_RANGES = {
    "build": {"--size": POSITIVE_INT, "--seed": NON_NEGATIVE_INT},
    "train-behavior": {"--steps": POSITIVE_INT, "--seed": NON_NEGATIVE_INT, "--eval-every": POSITIVE_INT,
                       "--time-limit": POSITIVE_NUMBER},
    "select-behavior": {"--episodes": POSITIVE_INT, "--max-replay-rows": POSITIVE_INT,
                        "--seed": NON_NEGATIVE_INT, "--candidates": POSITIVE_INT},
}


def flag_range_error(args) -> str | None:
    """The first numeric flag of ``args`` outside its range (``FLAG_RANGES``), as an error message."""
    for flag, allowed in FLAG_RANGES.get(args.data_command, {}).items():
        value = getattr(args, flag.removeprefix("--").replace("-", "_"))
        if value is None:  # not given and no default: the command's own default applies
            continue
        if not (value >= 0 if allowed == NON_NEGATIVE_INT else value > 0):  # NaN fails both
            return f"{flag} must be {allowed}, got {value:g}" if isinstance(value, float) else (
                f"{flag} must be {allowed}, got {value}")
    return None


def add_data_commands(sub) -> None:
    """Add build/fetch/inspect/train-behavior/select-behavior to the ``data`` command's subparsers
    (created with ``dest="data_command"``)."""
    b = sub.add_parser("build", help="build and cache local/<env>-<level> datasets (idempotent)")
    b.add_argument("--env", nargs="*", default=list(LOCAL_ENVS), choices=LOCAL_ENVS,
                   help="envs (default: all)")
    b.add_argument("--level", nargs="*", default=list(LOCAL_LEVELS), choices=LOCAL_LEVELS,
                   help="levels (default: all)")
    b.add_argument("--size", type=int, default=None, help="transitions (default: per-level default size)")
    b.add_argument("--seed", type=int, default=0, help="build seed (default: 0)")
    b.add_argument("--rebuild", action="store_true", help="rebuild even if a verified cached copy exists")
    b.add_argument("--markdown", action="store_true", help="end with a markdown table of the summaries")

    f = sub.add_parser("fetch", help="download d4rl/<name>-v2 or neorl/<Task>-v3-<level> files")
    f.add_argument("ids", nargs="+", help="e.g. d4rl/hopper-medium-v2 neorl/Hopper-v3-low")
    f.add_argument("--dir", default=None, help="target dir (default $D4RL_DATASET_DIR or $NEORL_DATA_DIR)")

    i = sub.add_parser("inspect", help="print a JSON summary of a dataset file or task id")
    i.add_argument("target", help="a task id (local/hopper-medium, d4rl/..., neorl/...) or a file path")
    i.add_argument("--env", default=None, help="env key for a file (dims check, normalised score)")

    t = sub.add_parser("train-behavior", help="train (or resume) a SAC behaviour policy")
    t.add_argument("--env", required=True, choices=LOCAL_ENVS, help="environment to train SAC on")
    t.add_argument("--steps", type=int, default=1_000_000,
                   help="env steps in all (a larger value extends a run)")
    t.add_argument("--seed", type=int, default=0, help="SAC seed (default: 0)")
    t.add_argument("--out", required=True, help="output directory (checkpoint, snapshots.pt, replay.npz)")
    t.add_argument("--eval-every", type=int, default=5000, help="env steps between snapshots")
    t.add_argument("--time-limit", type=float, default=None, help="stop (checkpointed) after this many s")
    t.add_argument("--device", default="cpu", help="torch device (default: cpu)")

    s = sub.add_parser("select-behavior", help="turn a training run into the shipped medium/expert files")
    s.add_argument("train_dir", help="directory with snapshots.pt and replay.npz")
    s.add_argument("--env", required=True, choices=LOCAL_ENVS, help="environment of the run")
    s.add_argument("--out", default=None, help="default: benchmark/data/behavior_policies")
    s.add_argument("--episodes", type=int, default=20, help="episodes per measured return")
    s.add_argument("--max-replay-rows", type=int, default=50_000, help="thin medium-replay above this")
    s.add_argument("--source", default=None, help="provenance text for the cards")
    s.add_argument("--seed", type=int, default=None,
                   help="the run's training seed for the cards, when replay.npz does not record it")
    s.add_argument("--candidates", type=int, default=1,
                   help="expert: measure this many best-by-training-return snapshots (stochastic actions) "
                        "and keep the best")
    s.add_argument("--keep-medium", action="store_true",
                   help="write the expert only; keep the shipped medium policy and medium-replay files")


def guess_env_key(path: Path) -> str:
    """Env key from a file name: ``Hopper-v3-low-...npz`` -> neorl-hopper, ``hopper_medium-v2`` -> hopper."""
    name = path.name
    for env in LOCAL_ENVS:
        if name.lower().startswith(env):
            return f"neorl-{env}" if "-v3" in name else env
    return ""


def load_any(target: str, env_key: str | None = None) -> OfflineDataset:
    """A dataset from a task id or a file (.hdf5: D4RL layout; .npz: NeoRL or D4RL-array layout)."""
    path = Path(target)
    if not path.exists() and "/" in target and not target.startswith((".", "/")):
        from benchmark.tasks import TaskError, resolve_task

        try:
            return resolve_task(target).load_dataset()
        except TaskError as err:
            raise DatasetError(str(err)) from err
    if not path.exists():
        raise DatasetError(f"{path}: no such file and not a task id")
    env_key = guess_env_key(path) if env_key is None else env_key
    if path.suffix in (".hdf5", ".h5"):
        from benchmark.data.d4rl import load_hdf5_dataset

        return load_hdf5_dataset(path, env_key=env_key)
    if path.suffix == ".npz":
        import numpy as np

        try:
            with np.load(path) as z:
                files = set(z.files)
        except Exception as err:
            raise DatasetError(f"{path}: not a readable .npz file: {err}") from err
        if "index" in files:
            from benchmark.data.neorl import load_neorl_npz

            return load_neorl_npz(path, env_key=env_key, trajectories=None)
        from benchmark.data.d4rl import REQUIRED_KEYS, arrays_to_dataset, check_env_dims

        with np.load(path) as z:  # D4RL arrays in an .npz, e.g. a cached local/... dataset
            missing = [k for k in REQUIRED_KEYS if k not in z.files]
            if missing:
                raise DatasetError(f"{path}: missing keys {missing} (has {sorted(z.files)})")
            arrays = {k: z[k] for k in (*REQUIRED_KEYS, "next_observations") if k in z.files}
        ds = arrays_to_dataset(arrays, "next_observations" in arrays, str(path), env_key)
        check_env_dims(ds, env_key, str(path))
        return ds
    raise DatasetError(f"{path}: unknown file type {path.suffix!r} (expected .hdf5 or .npz)")


def summarize(ds: OfflineDataset) -> dict:
    from benchmark import scores

    out = ds.summary()
    out["env_key"] = ds.env_key
    out["timeouts"] = int(ds.timeouts.sum())
    if ds.env_key and scores.has_reference(ds.env_key):
        ref = scores.REFERENCE_RETURNS[ds.env_key]
        out["normalized_return_mean"] = round(scores.normalize_return(ds.env_key, out["return_mean"]), 2)
        out["normalized_return_std"] = round(scores.normalize_std(ds.env_key, out["return_std"]), 2)
        out["reference"] = {"random": ref.random, "expert": ref.expert, "verified": ref.verified}
    for key in ("return_mean", "return_std", "return_min", "return_max"):
        out[key] = round(out[key], 2)
    return out


def _build(args) -> int:
    from benchmark.data.local import load_local_dataset

    rows = []
    for env in args.env:
        for level in args.level:
            ds = load_local_dataset(env, level, size=args.size, seed=args.seed, rebuild=args.rebuild)
            rows.append(summarize(ds))
            print(json.dumps(rows[-1]), flush=True)
    if args.markdown:
        print(markdown_table(rows))
    return 0


def markdown_table(rows: list[dict]) -> str:
    lines = [
        "| dataset | transitions | episodes | return mean ± std | min / max | normalized mean ± std |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        norm = (f"{r['normalized_return_mean']:.1f} ± {r['normalized_return_std']:.1f}"
                if "normalized_return_mean" in r else "n/a")
        lines.append(
            f"| {r['name']} | {r['transitions']} | {r['episodes']} | {r['return_mean']:.1f} ± "
            f"{r['return_std']:.1f} | {r['return_min']:.1f} / {r['return_max']:.1f} | {norm} |"
        )
    return "\n".join(lines)


def _fetch(args) -> int:
    from benchmark.data import d4rl, neorl
    from benchmark.data.fetch import fetch_remote, mirrored

    for task_id in args.ids:
        if task_id.startswith("d4rl/"):
            env_key, _ = d4rl.parse_d4rl_name(task_id)
            remote = mirrored(d4rl.D4RL_FILES[task_id.removeprefix("d4rl/")], d4rl.D4RL_BASE_URL,
                              d4rl.D4RL_MIRROR_ENV)
            directory = args.dir or d4rl.d4rl_dir()
        elif task_id.startswith("neorl/"):
            stem, env_key, _ = neorl.parse_neorl_name(task_id)
            remote = mirrored(neorl.NEORL_FILES[stem], neorl.NEORL_BASE_URL, neorl.NEORL_MIRROR_ENV)
            directory = args.dir or neorl.neorl_dir()
        else:
            raise DatasetError(f"{task_id}: fetch knows d4rl/... and neorl/... ids (local/...: `data build`)")
        path = fetch_remote(remote, directory, progress=_progress_printer(remote.url))
        try:  # D4RL publishes no checksums: at least the file must read as the expected dataset
            if task_id.startswith("d4rl/"):
                ds = d4rl.load_hdf5_dataset(path, env_key=env_key, name=task_id)
            else:
                ds = neorl.load_neorl_npz(path, env_key=env_key, name=task_id)
        except DatasetError:
            path.unlink(missing_ok=True)  # never keep a file we cannot read
            raise
        print(json.dumps({"id": task_id, "path": str(path), "source": remote.source, **summarize(ds)}))
    return 0


def _progress_printer(url: str):
    state = {"last": -1}

    def show(done: int, total: int | None):
        step = done >> 24  # every 16 MiB
        if step != state["last"]:
            state["last"] = step
            size = f"/{total >> 20} MiB" if total else " MiB"
            print(f"{url}: {done >> 20}{size}", file=sys.stderr, flush=True)

    return show


def _train(args) -> int:
    from benchmark.data.behavior import BehaviorConfig, train_behavior

    cfg = BehaviorConfig(env=args.env, steps=args.steps, seed=args.seed, eval_every=args.eval_every,
                         device=args.device)
    path = train_behavior(cfg, args.out, time_limit_s=args.time_limit)
    print(json.dumps({"snapshots": str(path)}))
    return 0


def _select(args) -> int:
    from benchmark.data.behavior import select_behavior

    cards = select_behavior(args.train_dir, args.env, args.out, eval_episodes=args.episodes, seed=args.seed,
                            max_replay_rows=args.max_replay_rows, source=args.source,
                            progress=lambda m: print(m, file=sys.stderr, flush=True),
                            keep_medium=args.keep_medium, candidates=args.candidates)
    print(json.dumps(cards, indent=2))
    return 0


COMMANDS = {"build": _build, "fetch": _fetch, "train-behavior": _train, "select-behavior": _select}


def run_data_command(args) -> int:
    problem = flag_range_error(args)
    if problem is not None:
        print(f"admbench: error: {problem}", file=sys.stderr)
        return 2
    try:
        if args.data_command == "inspect":
            print(json.dumps(summarize(load_any(args.target, args.env)), indent=2))
            return 0
        return COMMANDS[args.data_command](args)
    except (DatasetError, FetchError) as err:
        print(f"admbench: error: {err}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="admbench")
    data = parser.add_subparsers(dest="command", required=True).add_parser("data", help="datasets")
    add_data_commands(data.add_subparsers(dest="data_command", required=True))
    return run_data_command(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
