"""The paper's model analyses as registered jobs: ``compounding-error`` (Figure 2) and ``uncertainty``
(Figure 4), each with a typed, budgeted sizes config.

The runner (:func:`benchmark.runner.run_analysis`) resolves the sizes like an algorithm config (class
defaults = the paper's sizes <- budget <- overrides), with m and the GRU width inherited from the task's
``admpo-off`` config (``config_from``), loads the task's data and calls ``run(dataset, env_key, sizes,
seed)``. Nothing here knows tasks, budgets by name or the runner.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from adm.analysis import AnalysisSizes
from adm.compounding_error import compounding_error, reference_errors
from adm.uncertainty_error import uncertainty_vs_error
from baselines.bc import BC, BCConfig
from benchmark.envs import make_env
from benchmark.registry import AnalysisSpec, register_analysis
from benchmark.rl.algorithm import Context
from benchmark.rl.dataset import OfflineDataset, truncate

Tensor = torch.Tensor

# smoke: seconds (tests); short: minutes on a CPU (epoch/step caps, not time caps, so results do not depend
# on the machine's load; measured on 2 cores shared with ~10 other processes, local/hopper-medium-replay:
# compounding error ~15 min and uncertainty ~10 min with ~2-3 ADM/BootRNN epochs and 3000 ensemble steps);
# paper (the class defaults): early stopping as the code, [REPRO]'s horizons and starts
_SMOKE_TRAINING = {"model_max_epochs": 1, "ensemble_max_epochs": 2, "ensemble_max_steps": 30,
                   "train_transitions": 3000}
_SHORT_TRAINING = {"model_max_epochs": 3, "ensemble_max_epochs": 100, "ensemble_max_steps": 3000}


@dataclass
class CompoundingErrorSizes(AnalysisSizes):
    """Figure 2 sizes; the defaults are the paper budget ([REPRO]: horizon 100, 1000 segments)."""

    BUDGETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"horizon": 10, "n_starts": 20, **_SMOKE_TRAINING},
        "short": {"horizon": 100, "n_starts": 200, **_SHORT_TRAINING},
    }


@dataclass
class UncertaintySizes(AnalysisSizes):
    """Figure 4 sizes; the defaults are the paper budget ([REPRO]: horizon 5)."""

    horizon: int = 5
    n_starts: int = 5000
    bc_steps: int = 100_000

    BUDGETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"horizon": 3, "n_starts": 20, **_SMOKE_TRAINING, "bc_steps": 50},
        "short": {"horizon": 5, "n_starts": 500, **_SHORT_TRAINING, "bc_steps": 2000},
    }


def train_bc_policy(dataset: OfflineDataset, env_key: str, steps: int, seed: int
                    ) -> Callable[[Tensor], Tensor]:
    """A BC policy (:mod:`baselines.bc`, default config) trained for ``steps`` updates, as a torch
    callable."""
    env = make_env(env_key)
    ctx = Context(dataset, env_key, dataset.obs_dim, dataset.act_dim,
                         float(env.action_space.high[0]), torch.device("cpu"), seed)
    torch.manual_seed(seed)
    bc = BC(BCConfig(seed=seed), ctx)
    bc.setup()
    for step in range(steps):
        bc.learn(bc.next_batch(step))

    @torch.no_grad()
    def policy(obs: Tensor) -> Tensor:
        return bc.forward_policy(obs)

    return policy


def run_compounding_error(dataset: OfflineDataset, env_key: str, sizes: AnalysisSizes, seed: int,
                          stages=None) -> dict:
    return compounding_error(dataset, env_key, horizon=sizes.horizon, n_starts=sizes.n_starts, seed=seed,
                             sizes=sizes, stages=stages)


def run_compounding_references(dataset: OfflineDataset, env_key: str, sizes: AnalysisSizes, seed: int
                               ) -> dict:
    return reference_errors(dataset, sizes, seed)


def run_uncertainty(dataset: OfflineDataset, env_key: str, sizes: AnalysisSizes, seed: int,
                    stages=None) -> dict:
    """The "learned" source is a BC policy trained for ``bc_steps`` on the same (truncated) data."""
    policy = train_bc_policy(truncate(dataset, sizes.train_transitions), env_key, sizes.bc_steps, seed)
    return uncertainty_vs_error(dataset, env_key, horizon=sizes.horizon, n_starts=sizes.n_starts, seed=seed,
                                learned_policy=policy, sizes=sizes, stages=stages,
                                learned_name=f"BC (baselines/bc.py), {sizes.bc_steps} updates "
                                "on the same data")


# m of ADM / the history of BootRNN and the GRU width are the method's settings, not sizes
_FROM_ADMPO_OFF = (("max_step", "max_arm_step"), ("hidden_dim", "arm_hidden_dim"))

register_analysis(AnalysisSpec(
    name="compounding-error", config_cls=CompoundingErrorSizes, run=run_compounding_error,
    config_from="admpo-off", inherit=_FROM_ADMPO_OFF, module=__name__,
    description="Figure 2: open-loop compounding error of ADM, a 7-member ensemble and BootRNN"))
register_analysis(AnalysisSpec(
    name="compounding-references", config_cls=CompoundingErrorSizes, run=run_compounding_references,
    config_from="admpo-off", inherit=_FROM_ADMPO_OFF, module=__name__,
    description="Figure 2's yardstick: the compounding error of predicting without a model (the last real "
                "state; the training data's mean state) on the same held-out segments"))
register_analysis(AnalysisSpec(
    name="uncertainty", config_cls=UncertaintySizes, run=run_uncertainty,
    config_from="admpo-off", inherit=_FROM_ADMPO_OFF, module=__name__,
    description="Figure 4: model uncertainty vs simulator-true model error of ADM and the ensemble"))
