"""Parity fixture from the official TD3+BC code (sfujim/TD3_BC): state normalisation and four updates
(two actor/target updates) with the same batches and target-smoothing noise.

    PARITY_TD3_BC=/path/to/TD3_BC python scripts/parity/td3bc.py

Shim: the official networks are 256 wide; their ``l1..l6`` layers are replaced by 8-wide ones holding
our weights (the official ``forward``/``train`` code is unchanged) so the fixture stays small.
"""

from __future__ import annotations

import numpy as np
import torch
from _common import NoiseQueue, checkout, patched, save_fixture, state
from torch import nn

_, COMMIT = checkout("td3-bc")
REPO = "sfujim/TD3_BC"

import TD3_BC as official  # noqa: E402
import utils as official_utils  # noqa: E402

from baselines.td3bc import TD3BC, TD3BCConfig  # noqa: E402
from benchmark.rl.algorithm import Context  # noqa: E402
from benchmark.rl.dataset import OfflineDataset  # noqa: E402

torch.set_num_threads(1)
OBS, ACT, HID, N, B, STEPS = 11, 3, (8, 8), 64, 8, 4


def linear(w: torch.Tensor, b: torch.Tensor) -> nn.Linear:
    layer = nn.Linear(w.shape[1], w.shape[0])
    with torch.no_grad():
        layer.weight.copy_(w)
        layer.bias.copy_(b)
    return layer


def to_official(ours: TD3BC, ref: official.TD3_BC) -> None:
    actor = [m for m in ours.actor if isinstance(m, nn.Linear)]
    for net in (ref.actor, ref.actor_target):
        for name, layer in zip(("l1", "l2", "l3"), actor):
            setattr(net, name, linear(layer.weight, layer.bias))
    for net in (ref.critic, ref.critic_target):
        for i, names in enumerate((("l1", "l2", "l3"), ("l4", "l5", "l6"))):
            for name, layer in zip(names, ours.critic.net.layers):
                setattr(net, name, linear(layer.weight[i].T, layer.bias[i, 0]))
    ref.actor_optimizer = torch.optim.Adam(ref.actor.parameters(), lr=3e-4)
    ref.critic_optimizer = torch.optim.Adam(ref.critic.parameters(), lr=3e-4)


def from_official(ref: official.TD3_BC, ours: TD3BC) -> None:
    with torch.no_grad():
        for src, dst in ((ref.actor, ours.actor), (ref.actor_target, ours.actor_target)):
            for name, layer in zip(("l1", "l2", "l3"), [m for m in dst if isinstance(m, nn.Linear)]):
                layer.weight.copy_(getattr(src, name).weight)
                layer.bias.copy_(getattr(src, name).bias)
        for src, dst in ((ref.critic, ours.critic), (ref.critic_target, ours.critic_target)):
            for i, names in enumerate((("l1", "l2", "l3"), ("l4", "l5", "l6"))):
                for name, layer in zip(names, dst.net.layers):
                    layer.weight[i].copy_(getattr(src, name).weight.T)
                    layer.bias[i, 0].copy_(getattr(src, name).bias)


def main():
    g = np.random.default_rng(0)
    data = {
        "observations": (g.normal(0, 1, (N, OBS)) * g.uniform(0.1, 5, OBS) + g.normal(0, 2, OBS)).astype(
            np.float32
        ),
        "actions": g.uniform(-0.9, 0.9, (N, ACT)).astype(np.float32),
        "rewards": g.normal(0, 1, N).astype(np.float32),
        "next_observations": g.normal(0, 1, (N, OBS)).astype(np.float32),
        "terminals": (g.random(N) < 0.1).astype(np.float32),
    }
    ds = OfflineDataset(
        data["observations"],
        data["actions"],
        data["rewards"],
        data["next_observations"],
        data["terminals"],
        np.zeros(N, bool),
        env_key="hopper",
    )
    torch.manual_seed(0)
    ours = TD3BC(TD3BCConfig(hidden=HID), Context(ds, "hopper", OBS, ACT, 1.0, torch.device("cpu")))
    init = state("init", ours.actor) | state("init_critic", ours.critic)
    ref = official.TD3_BC(OBS, ACT, 1.0)
    to_official(ours, ref)
    buffer = official_utils.ReplayBuffer(OBS, ACT)
    buffer.convert_D4RL(data)
    mean, std = buffer.normalize_states()
    idx = g.integers(0, N, (STEPS, B))
    noise = np.stack([g.normal(0, 1, (B, ACT)) for _ in range(STEPS)]).astype(np.float32)
    for step in range(STEPS):
        ind = idx[step]
        sampled = (
            buffer.state[ind],
            buffer.action[ind],
            buffer.next_state[ind],
            buffer.reward[ind],
            buffer.not_done[ind],
        )
        buffer.sample = lambda batch_size, s=sampled: tuple(torch.FloatTensor(x) for x in s)
        queue = NoiseQueue([noise[step]])
        with patched(torch, "randn_like", lambda x, q=queue, **kw: q.take(x.shape)):
            ref.train(buffer, B)
        queue.check_used()
    from_official(ref, ours)
    save_fixture(
        "td3bc_update",
        REPO,
        COMMIT,
        "TD3_BC.py (TD3_BC.train); utils.py (ReplayBuffer.normalize_states)",
        **init,
        **state("ref_actor", ours.actor),
        **state("ref_critic", ours.critic),
        **state("ref_actor_target", ours.actor_target),
        **state("ref_critic_target", ours.critic_target),
        **{f"data/{k}": v for k, v in data.items()},
        idx=idx,
        noise=noise,
        ref_mean=mean,
        ref_std=std,
    )


if __name__ == "__main__":
    main()
