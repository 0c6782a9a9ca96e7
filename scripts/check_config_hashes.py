"""Config hashes of every registered algorithm x budget x task, as ``runner.prepare`` computes them (the data
fingerprint left out: it is the dataset's, not the code's). Run it on two checkouts and diff the output to
show a change keeps every existing record's hash:

    python scripts/check_config_hashes.py > /tmp/new.json
    (cd <other checkout> && python <this file> > /tmp/old.json) && diff /tmp/old.json /tmp/new.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path.cwd()))

from benchmark import registry, runner, tasks  # noqa: E402
from benchmark.config import BUDGET_NAMES  # noqa: E402


def task_ids(kind: str) -> list[str]:
    if kind == "online":
        return [f"mujoco/{env}" for env in tasks.ONLINE_ENVS]
    ids = [f"local/{env}-{level}" for env in tasks.LOCAL_ENVS for level in tasks.LOCAL_LEVELS]
    ids += [f"d4rl/{env}-{level}-v2" for env in tasks.LOCAL_ENVS for level in tasks.LOCAL_LEVELS]
    ids += [f"neorl/{env}-v3-{level}" for env in tasks.NEORL_TASKS for level in tasks.NEORL_LEVELS]
    return ids


def main() -> None:
    tasks.TaskSpec.data_fingerprint = lambda self: None
    registry.load_all()
    hashes = {}
    for name, spec in sorted(registry.algorithms().items()):
        for budget in BUDGET_NAMES:
            for task in task_ids(spec.kind):
                try:
                    chash = runner.prepare(runner.RunSpec(name, task, 0, budget))[-1]
                except Exception as e:  # a task this algorithm refuses is listed as such in both checkouts
                    chash = f"error: {type(e).__name__}"
                hashes[f"{name} {budget} {task}"] = chash
    print(json.dumps(hashes, indent=0, sort_keys=True))


if __name__ == "__main__":
    main()
