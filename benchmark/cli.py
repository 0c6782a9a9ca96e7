"""``admbench`` command line (``python -m benchmark`` works too)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
from pathlib import Path

from benchmark.config import BUDGET_NAMES, parse_overrides
from benchmark.registry import RegistryError
from benchmark.results import RunBusy
from benchmark.rl.configs import ConfigError
from benchmark.rl.dataset import DatasetError
from benchmark.tasks import (
    D4RL_ENVS,
    D4RL_LEVELS,
    LOCAL_ENVS,
    LOCAL_LEVELS,
    NEORL_LEVELS,
    NEORL_TASKS,
    ONLINE_ENVS,
    TaskError,
)

USER_ERRORS = (ConfigError, RegistryError, TaskError, DatasetError, FileNotFoundError, ValueError, KeyError,
               RunBusy)


def _check_count(flag: str, value: int | None, minimum: int) -> None:
    """Refuse a numeric flag below ``minimum`` before any work (one-line error, exit 2)."""
    if value is not None and value < minimum:
        allowed = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{flag} must be {allowed}, got {value}")


def _table(rows: list[dict], columns: list[str], width: int | None = None) -> str:
    """Columns padded to their widest cell; the last column is cut with '…' to fit ``width`` (the
    terminal's; ``--json`` gives every text whole)."""
    width = width or shutil.get_terminal_size((120, 24)).columns
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) if rows else len(c) for c in columns}
    last = columns[-1]
    room = width - sum(widths[c] + 2 for c in columns[:-1])
    if widths[last] > room >= max(len(last), 12):
        widths[last] = room
        rows = [{**r, last: _cut(str(r.get(last, "")), room)} for r in rows]
    lines = ["  ".join(c.ljust(widths[c]) for c in columns), "  ".join("-" * widths[c] for c in columns)]
    lines += ["  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(_cut(line.rstrip(), width) for line in lines)  # still too wide: cut the lines


def _cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def cmd_list(args) -> int:
    from benchmark import registry
    from benchmark.suites import available_suites, load_suite

    if args.what == "algorithms":
        rows = [
            {
                "name": s.name,
                "kind": s.kind,
                "config": s.config_cls.__name__,
                "module": s.module,
                "paper": s.paper,
            }
            for s in registry.algorithms().values()
        ]
        for module, err in registry.IMPORT_ERRORS.items():
            print(f"admbench: warning: {module} failed to import: {err}", file=sys.stderr)
        cols = ["name", "kind", "config", "module", "paper"]
    elif args.what == "datasets":
        rows = [
            {"task": f"local/{e}-{lv}", "family": "local", "kind": "offline"}
            for e in LOCAL_ENVS
            for lv in LOCAL_LEVELS
        ]
        rows += [
            {"task": f"d4rl/{e}-{lv}-v2", "family": "d4rl", "kind": "offline"}
            for e in D4RL_ENVS
            for lv in D4RL_LEVELS
        ]
        rows += [
            {"task": f"neorl/{t}-v3-{lv}", "family": "neorl", "kind": "offline"}
            for t in NEORL_TASKS
            for lv in NEORL_LEVELS
        ]
        rows += [{"task": "minari/<dataset_id>", "family": "minari", "kind": "offline"}]
        rows += [{"task": f"mujoco/{e}", "family": "mujoco", "kind": "online"} for e in ONLINE_ENVS]
        cols = ["task", "family", "kind"]
    else:
        rows = []
        for name in available_suites():
            s = load_suite(name)
            rows.append(
                {
                    "name": name,
                    "budget": s.budget,
                    "seeds": s.seeds,
                    "runs": len(s.plan()),
                    "description": s.description,
                }
            )
        cols = ["name", "budget", "seeds", "runs", "description"]
    print(json.dumps(rows, indent=1) if args.json else _table(rows, cols))
    return 0


def warn_if_dirty() -> None:
    """A run records the commit of the code it ran; from a tree with uncommitted code changes that is
    ``<sha>-dirty``, which names no code anyone can check out. Said once, before anything runs."""
    from benchmark.results import git_commit
    from benchmark.runner import warn

    commit = git_commit()
    if commit.endswith("-dirty"):
        warn(f"uncommitted code changes: records written now name commit {commit} (no checkout has that "
             "code); run long sweeps from a clean checkout, e.g. `git worktree add`, while editing")


def cmd_run(args) -> int:
    from benchmark.runner import RunSpec, run_one

    _check_count("--seed", args.seed, 0)
    _check_count("--threads", args.threads, 1)
    run = RunSpec(args.algo, args.task, args.seed, args.budget, parse_overrides(args.set), suite=args.suite)
    warn_if_dirty()
    rec = run_one(run, Path(args.results), progress=not args.quiet, force=args.force, threads=args.threads,
                  keep_policy=args.keep_policy)
    if rec.get("_skipped"):
        print(f"skipped: a finished record with the same config exists ({run.label()}); use --force to rerun")
    summary = {
        k: rec.get(k)
        for k in (
            "algo",
            "task",
            "seed",
            "budget",
            "status",
            "reason",
            "final_score",
            "final_return",
            "wall_time_s",
        )
    }
    summary["config"] = rec["config"]
    summary["overrides"] = rec.get("config_provenance", {}).get("overrides")
    print(json.dumps(summary, indent=1))
    # stdout stays one JSON document (scripts parse it); the human summary goes to stderr
    print(run_footer(rec, run.path(Path(args.results))), file=sys.stderr)
    return 0 if rec["status"] == "ok" else 1


def run_footer(rec: dict, path: Path) -> str:
    """The last lines of ``admbench run``: where the record is and the final score with its budget."""
    curve = rec.get("curve") or []
    steps = f", {curve[-1]['step']} training steps" if curve else ""
    score = rec.get("final_score")
    if rec.get("status") != "ok":
        result = f"FAILED: {rec.get('reason')}"
    elif score is not None:
        result = f"final score {score:.2f} (normalized; {rec.get('final_rule')})"
    else:
        result = f"final return {rec.get('final_return')} (no normalized score for this task)"
    note = "; smoke runs are untrained plumbing checks, not results" if rec.get("budget") == "smoke" else ""
    return f"record: {path}\n{result}, budget {rec.get('budget')}{steps}{note}"


def cmd_reproduce(args) -> int:
    from benchmark.executor import run_many
    from benchmark.suites import load_suite

    _check_count("--seeds", args.seeds, 1)
    _check_count("--workers", args.workers, 1)
    _check_count("--max-retries", args.max_retries, 0)
    suite = load_suite(args.suite)
    runs = suite.plan(args.budget, args.seeds)
    if args.set:
        extra = parse_overrides(args.set)
        for r in runs:
            r.overrides.update(extra)
    from benchmark import plan

    missing = plan.missing_data(r.task for r in runs)
    if args.check_plan:
        print(plan.format_checks(plan.check_estimates(runs, Path(args.results))))
        return 0
    if args.plan:
        if missing:
            print(plan.missing_data_message(missing, limit=len(missing)))
        workers = 1 if args.executor == "ray" else max(1, args.workers)
        print(plan.format_plan(plan.plan_estimates(runs, Path(args.results)), workers, Path(args.results)))
        return 0
    if missing:  # before anything runs: every run on these would only record a failure
        raise DatasetError(plan.missing_data_message(missing))
    warn_if_dirty()
    if args.executor == "ray":
        from benchmark.ray_executor import run_many_ray

        summaries = run_many_ray(
            runs,
            Path(args.results),
            address=args.address,
            force=args.force,
            cpus_per_run=args.cpus_per_run,
            gpus_per_run=args.gpus_per_run,
            max_retries=args.max_retries,
            progress=not args.quiet,
        )
    else:
        summaries = run_many(
            runs,
            Path(args.results),
            workers=args.workers,
            force=args.force,
            progress=not args.quiet,
            max_retries=args.max_retries,
            keep_policy=args.keep_policy,
        )
    failed = [s for s in summaries if s.get("status") == "failed"]
    busy = [s for s in summaries if s.get("status") == "busy"]
    ok = [s for s in summaries if s.get("status") == "ok"]
    skipped = sum(1 for s in ok if s.get("_skipped"))
    print(
        f"{len(summaries)} runs: {len(ok)} ok ({skipped} already done), {len(failed)} failed"
        + (f", {len(busy)} in progress in another process (not run here)" if busy else "")
    )
    for s in failed:
        print(f"  FAILED {s['algo']} {s['task']} seed={s['seed']}: {s.get('reason')}")
    for s in busy:
        print(f"  BUSY {s['algo']} {s['task']} seed={s['seed']}: {s.get('reason')}")
    Path(args.results).mkdir(parents=True, exist_ok=True)  # the report works with whatever exists
    if not args.no_report:
        from benchmark.reporting.readme import write_report

        for name in suite.report_suites:
            seeds = args.seeds or suite.seeds
            out = write_report(name, Path(args.results), Path(args.reports) / name, seeds_requested=seeds)
            print(f"report: {out}")
    return 0 if not failed else 1


def cmd_evaluate(args) -> int:
    from benchmark.rl.checkpoint import load_policy
    from benchmark.rl.trainers import evaluate
    from benchmark.seeding import seed_everything
    from benchmark.tasks import resolve_task

    _check_count("--episodes", args.episodes, 1)
    _check_count("--seed", args.seed, 0)
    policy = load_policy(Path(args.policy))
    meta, algo = policy["meta"], policy["algo"]
    task = resolve_task(meta["task"])
    seed = meta["seed"] if args.seed is None else args.seed
    seed_everything(seed)
    mean, std, _ = evaluate(lambda o: algo.act(o, deterministic=True), task.make_env, args.episodes, seed)
    print(json.dumps({
        "policy": args.policy, "algo": meta["algo"], "task": meta["task"], "trained_seed": meta["seed"],
        "budget": meta["budget"], "config_hash": meta["config_hash"], "commit": meta["commit"],
        "episodes": args.episodes, "eval_seed": seed, "return_mean": mean, "return_std": std,
        "score": task.normalize(mean), "recorded_final_score": meta["final_score"],
    }, indent=1))
    return 0


def cmd_report(args) -> int:
    from benchmark.reporting.readme import write_report
    from benchmark.suites import available_suites

    if args.suite not in available_suites() and not (Path(args.results) / args.suite).is_dir():
        raise ValueError(
            f"unknown suite {args.suite!r}: no suite file of that name and no records under "
            f"{Path(args.results) / args.suite}; suites: {', '.join(available_suites())}"
        )
    out = Path(args.out) if args.out else Path(args.reports) / args.suite
    path = write_report(args.suite, Path(args.results), out, seeds_requested=args.seeds)
    print(f"report: {path}")
    return 0


def cmd_plot_metrics(args) -> int:
    from benchmark.reporting.figures import plot_metrics

    keys = [k for k in (args.keys or "").split(",") if k]
    print(f"figure: {plot_metrics(Path(args.file), Path(args.out) if args.out else None, keys or None)}")
    return 0


def cmd_regress(args) -> int:
    from benchmark.regress import failed, format_table, regress

    _check_count("--workers", args.workers, 1)
    rows = regress(
        args.suite,
        Path(args.reference),
        workers=args.workers,
        update=args.update,
        strict=args.strict,
        progress=not args.quiet,
    )
    print(format_table(rows))
    if args.update:
        print(f"references rewritten under {Path(args.reference) / args.suite}")
        return 0
    return 1 if failed(rows) else 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="admbench", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    ls = sub.add_parser("list", help="list algorithms, datasets or suites")
    ls.add_argument("what", choices=["algorithms", "datasets", "suites"], help="what to list")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.set_defaults(func=cmd_list)

    run = sub.add_parser("run", help="train one algorithm on one task and write its record")
    run.add_argument("--algo", required=True, help="algorithm id (admbench list algorithms)")
    run.add_argument(
        "--task", required=True, help="e.g. local/hopper-medium, d4rl/hopper-medium-v2, mujoco/Hopper"
    )
    run.add_argument("--seed", type=int, default=0, help="run seed (default: 0)")
    run.add_argument("--budget", choices=BUDGET_NAMES, default="smoke",
                     help="sizes: smoke (plumbing check, untrained), short, paper (default: smoke)")
    run.add_argument("--set", action="append", metavar="KEY=VALUE", help="config override (repeatable)")
    run.add_argument("--results", default="results", help="results root (default: results)")
    run.add_argument("--suite", default="adhoc", help="suite name used in the record path (default: adhoc)")
    run.add_argument("--threads", type=int, default=1, help="torch threads for this run")
    run.add_argument("--force", action="store_true", help="rerun even if a finished record exists")
    run.add_argument("--keep-policy", action="store_true",
                     help="also write the trained policy beside the record (seed-N.policy.pt; see evaluate)")
    run.add_argument("--quiet", action="store_true", help="no progress output")
    run.set_defaults(func=cmd_run)

    rep = sub.add_parser("reproduce", help="run a suite (skipping finished runs) and write its report")
    rep.add_argument("suite", nargs="?", default="mini",
                     help="suite name (default: mini; admbench list suites)")
    rep.add_argument("--budget", choices=BUDGET_NAMES, help="override the suite's budget")
    rep.add_argument("--seeds", type=int, help="number of seeds (0..N-1); default from the suite")
    rep.add_argument("--executor", choices=["local", "ray"], default="local",
                     help="where runs execute (default: local)")
    rep.add_argument("--address", default=None, help="Ray cluster address (auto, HOST:PORT)")
    rep.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="local executor processes")
    rep.add_argument("--cpus-per-run", type=float, default=1, help="ray: CPUs reserved per run")
    rep.add_argument("--gpus-per-run", type=float, default=0, help="ray: GPUs (fractions allowed) per run")
    rep.add_argument("--max-retries", type=int, default=2, help="retries of a run whose worker process died")
    rep.add_argument("--set", action="append", metavar="KEY=VALUE", help="config override for every run")
    rep.add_argument("--results", default="results", help="results root (default: results)")
    rep.add_argument("--reports", default="reports",
                     help="reports root: writes REPORTS/SUITE (default: reports)")
    rep.add_argument("--plan", action="store_true",
                     help="print the runs (done ones marked), missing data and estimated cost, then exit")
    rep.add_argument("--check-plan", action="store_true",
                     help="compare --plan's estimates (each made without the run's own record) with what the "
                          "suite's finished runs cost, then exit")
    rep.add_argument("--force", action="store_true", help="rerun finished runs too")
    rep.add_argument("--keep-policy", action="store_true", help="write each trained policy beside its record")
    rep.add_argument("--no-report", action="store_true", help="skip writing the report")
    rep.add_argument("--quiet", action="store_true", help="no progress output")
    rep.set_defaults(func=cmd_reproduce)

    ev = sub.add_parser("evaluate", help="run a policy file written by --keep-policy again")
    ev.add_argument("policy", help="a seed-N.policy.pt file")
    ev.add_argument("--episodes", type=int, default=10, help="deterministic evaluation episodes")
    ev.add_argument("--seed", type=int, default=None, help="evaluation seed (default: the run's seed)")
    ev.set_defaults(func=cmd_evaluate)

    rp = sub.add_parser("report", help="aggregate a suite's records into tables and figures")
    rp.add_argument("suite", help="suite name (records under RESULTS/SUITE)")
    rp.add_argument("--results", default="results", help="results root (default: results)")
    rp.add_argument("--reports", default="reports",
                    help="reports root: writes REPORTS/SUITE (default: reports); --out overrides")
    rp.add_argument("--out", default=None, help="output folder (default: reports/SUITE)")
    rp.add_argument("--seeds", type=int, default=None, help="seeds requested (tables flag fewer)")
    rp.set_defaults(func=cmd_report)

    pm = sub.add_parser("plot-metrics", help="plot a run's per-epoch metrics file (seed-N.metrics.jsonl)")
    pm.add_argument("file", help="a seed-N.metrics.jsonl beside a run record")
    pm.add_argument("--out", default=None, help="PNG path (default: the metrics file with .png)")
    pm.add_argument("--keys", default=None, help="comma-separated metrics (default: all that change)")
    pm.set_defaults(func=cmd_plot_metrics)

    rg = sub.add_parser("regress", help="rerun a suite and compare final scores with committed references")
    rg.add_argument("suite", nargs="?", default="ci", help="suite to rerun (default: ci)")
    rg.add_argument("--reference", default="results/reference", help="reference records root")
    rg.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="local executor processes")
    rg.add_argument(
        "--update", action="store_true", help="rewrite the references (the only way to change them)"
    )
    rg.add_argument("--strict", action="store_true", help="a delta on another platform also fails")
    rg.add_argument("--quiet", action="store_true", help="no progress output")
    rg.set_defaults(func=cmd_regress)

    try:
        from benchmark.data_cli import add_data_commands, run_data_command
    except ImportError:
        pass
    else:
        data = sub.add_parser("data", help="build, fetch and inspect datasets")
        add_data_commands(data.add_subparsers(dest="data_command", required=True))
        data.set_defaults(func=run_data_command)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from benchmark import progress

    try:
        with progress.disabled() if getattr(args, "quiet", False) else contextlib.nullcontext():
            return int(args.func(args) or 0)
    except USER_ERRORS as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"admbench: error: {msg}", file=sys.stderr)
        return 2
    except OSError as e:  # disk full, permissions, ...: one line naming the path
        where = f"{e.filename}: " if e.filename else ""
        print(f"admbench: error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("admbench: interrupted; finished records are kept, rerun to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
