"""Parity fixture from CORL (corl-team/CORL) for the CQL critic loss with the CQL paper's log-sum-exp
grouping (over all 3M sampled actions of a state), the project's default ``lse_grouping: state``.

    PARITY_CORL=/path/to/CORL python scripts/parity/corl.py

Shims: ``d4rl``, ``gym``, ``pyrallis`` and ``wandb`` (imported at module level, unused by the loss) are
stand-ins; CORL's 256-wide networks are replaced by 8-wide ``nn.Sequential`` copies of ours, and its
log-std offset (a learnable scalar, -1 at init) is set to 0 and multiplier to 1, which makes its policy
our parametrisation (its log-std clamp [-20, 2] is inactive for these outputs).
"""

from __future__ import annotations

import numpy as np
import torch
from _common import NoiseQueue, checkout, patched, reference_gaussians, save_fixture, state, stub_packages
from torch import nn

_, COMMIT = checkout("corl")
REPO = "corl-team/CORL"
stub_packages("d4rl", "gym", "pyrallis", "wandb")

from algorithms.offline import cql as corl  # noqa: E402

from baselines.cql import CQLConfig, CQLLearner  # noqa: E402

torch.set_num_threads(1)
OBS, ACT, HID, B, M = 11, 3, (8, 8), 8, 4


def sequential(layers) -> nn.Sequential:
    mods = []
    for i, (w, b) in enumerate(layers):
        lin = nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            lin.weight.copy_(w)
            lin.bias.copy_(b)
        mods += [lin] if i == len(layers) - 1 else [lin, nn.ReLU()]
    return nn.Sequential(*mods)


def main():
    torch.manual_seed(3)
    cfg = CQLConfig(
        hidden=HID,
        num_sampled_actions=M,
        cql_weight=5.0,
        auto_alpha=False,
        alpha=0.2,
        deterministic_backup=True,
        lse_grouping="state",
    )
    ours = CQLLearner(OBS, ACT, cfg)
    actor = corl.TanhGaussianPolicy(OBS, ACT, 1.0)
    actor.base_network = sequential(
        [(m.weight, m.bias) for m in ours.actor.trunk if isinstance(m, nn.Linear)]
    )
    with torch.no_grad():
        actor.log_std_offset.constant.fill_(0.0)
        actor.log_std_multiplier.constant.fill_(1.0)
    critics = []
    for i in range(2):
        q = corl.FullyConnectedQFunction(OBS, ACT)
        q.network = sequential([(layer.weight[i].T, layer.bias[i, 0]) for layer in ours.critic.net.layers])
        critics.append(q)
    zero = lambda m: torch.optim.Adam(m.parameters(), lr=0.0)  # noqa: E731
    ref = corl.ContinuousCQL(
        critics[0],
        zero(critics[0]),
        critics[1],
        zero(critics[1]),
        actor,
        zero(actor),
        target_entropy=-ACT,
        use_automatic_entropy_tuning=False,
        backup_entropy=False,
        cql_n_actions=M,
        cql_importance_sample=True,
        cql_lagrange=False,
        cql_temp=1.0,
        cql_alpha=cfg.cql_weight,
    )
    g = torch.Generator().manual_seed(4)
    batch = {
        "obs": torch.randn(B, OBS, generator=g),
        "act": torch.rand(B, ACT, generator=g) * 1.8 - 0.9,
        "rew": torch.randn(B, 1, generator=g),
        "next_obs": torch.randn(B, OBS, generator=g),
        "done": torch.zeros(B, 1),
    }
    batch["done"][2] = 1.0
    eps_next, eps_pi_s, eps_pi_next = (
        torch.randn(B, ACT, generator=g),
        torch.randn(B, M, ACT, generator=g),
        torch.randn(B, M, ACT, generator=g),
    )
    u = torch.rand(B, M, ACT, generator=g)
    uniform = NoiseQueue([u])
    with (
        reference_gaussians(NoiseQueue([eps_next, eps_pi_s, eps_pi_next])),
        patched(
            torch.Tensor,
            "uniform_",
            lambda self, a=0.0, b=1.0: self.copy_(a + (b - a) * uniform.take(self.shape)),
        ),
    ):
        loss, _, _ = ref._q_loss(
            batch["obs"], batch["act"], batch["next_obs"], batch["rew"], batch["done"], torch.tensor(0.2), {}
        )
    uniform.check_used()
    save_fixture(
        "corl_cql",
        REPO,
        COMMIT,
        "algorithms/offline/cql.py (ContinuousCQL._q_loss)",
        **state("init", ours),
        **{f"in/{k}": v for k, v in batch.items()},
        **{
            "noise/next": eps_next,
            "noise/pi_s": eps_pi_s.reshape(B * M, ACT),
            "noise/pi_next": eps_pi_next.reshape(B * M, ACT),
            "noise/u01": u.reshape(B * M, ACT),
        },
        critic_loss=np.array(loss.item()),
        m=np.array(M),
    )


if __name__ == "__main__":
    main()
