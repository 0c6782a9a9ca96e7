"""Online Soft Actor-Critic, the model-free baseline (and asymptote line) of the ADMPO paper's Figure 3.

Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and Applications" (arXiv 1812.05905), Table 1:
Adam lr 3e-4 for actor, critics and temperature; 2 hidden layers of 256 ReLU units; batch 256; replay
buffer 1e6; gamma 0.99; Polyak tau 0.005 after every update; one gradient step per env step; automatic
entropy tuning towards -|A|. The learner is :class:`benchmark.rl.sac.SAC` (two critics, clipped double
Q, tanh-Gaussian actor) and the loop is :func:`benchmark.rl.online.train_online`.

Warm-up: Table 1 gives no number of initial random steps. We use ``start_learning = 5000`` uniformly
random steps, the value of MBPO's code (``n_initial_exploration_steps``) and of the ADMPO online code,
so SAC, MBPO and ADMPO-ON start from the same amount of random data (softlearning, SAC's own code,
used 1000 in ``examples/development/variants.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from benchmark.registry import AlgorithmSpec, register
from benchmark.rl.online import Context, OnlineAlgorithm, OnlineSACConfig, SACAgent
from benchmark.rl.sac import SAC


@dataclass
class SACOnlineConfig(OnlineSACConfig):
    """Online SAC: the paper's defaults live in :class:`OnlineSACConfig`; UTD 1."""

    updates_per_step: int = 1

    # one SAC update costs ~30-80 ms on a loaded 2-core CPU: smoke keeps to 60 of them
    BUDGETS: ClassVar[dict[str, dict[str, Any]]] = {"smoke": {"env_steps": 60, "eval_interval": 30}}


class OnlineSAC(SACAgent, OnlineAlgorithm):
    def __init__(self, cfg: SACOnlineConfig, ctx: Context):
        super().__init__(cfg, ctx)
        self.sac = SAC(ctx.obs_dim, ctx.act_dim, cfg.sac_config(), act_scale=ctx.act_scale, device=ctx.device)


register(
    AlgorithmSpec(
        name="sac",
        config_cls=SACOnlineConfig,
        factory=OnlineSAC,
        kind="online",
        config_dir=Path(__file__).parent / "configs" / "sac",
        description="Soft Actor-Critic (online, auto-alpha, UTD 1)",
        paper="Haarnoja et al., Soft Actor-Critic Algorithms and Applications, arXiv 1812.05905 (2018)",
        module=__name__,
    )
)
