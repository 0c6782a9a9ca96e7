"""Parity fixtures from the official ADMPO code (HxLyn3/ADMPO): the any-step model's forward pass, its
training loss and gradients, one rollout with the uncertainty penalty, and the termination functions.

    PARITY_ADMPO=/path/to/ADMPO python scripts/parity/admpo.py

Shims (no official line is changed):
* ``ARMDynamics`` is given ``int`` dimensions (modern ``nn.GRU`` rejects the numpy ints that
  ``agent/admpo.py:43-44`` passes), by wrapping the class the agent module looks up.
* The loss and gradient are read from the official ``learn_dynamics_from`` training loop: its buffer is
  a stand-in returning fixed windows, its model is ours (mapped weights) and the run stops at the first
  optimiser step.
* In the rollout, ``np.random.randint`` / ``np.random.normal`` hand out the k and noise given here and
  the policy is a fixed deterministic map (the same on our side); dropout is off on both sides (our
  rollout's explicit masks and the official ``nn.Dropout`` cannot share draws), so the model runs in
  eval mode.
"""

from __future__ import annotations

import numpy as np
import torch
from _common import NoiseQueue, checkout, patched, reference_gaussians, save_fixture, state

_, COMMIT = checkout("admpo")
REPO = "HxLyn3/ADMPO"

import agent.admpo as official_agent  # noqa: E402
from components.static_fns import STATICFUNC  # noqa: E402
from dynamics import ARMDynamics  # noqa: E402

from adm.model import ADMConfig, AnyStepDynamics  # noqa: E402
from benchmark.rl.sac import ADMPO_LOGP_EPS, SAC, SACConfig  # noqa: E402

torch.set_num_threads(1)
OBS, ACT, HID, M, B, H = 11, 3, 12, 3, 32, 4
G = np.random.default_rng(0)


class Stop(Exception):
    pass


def mapped_official(ours: AnyStepDynamics) -> ARMDynamics:
    ref = ARMDynamics(OBS, ACT, hidden_dim=HID, device="cpu")
    sd = {}
    for k, v in ours.state_dict().items():
        if k.startswith("rnn."):
            sd["model.rnn_layer." + k[4:]] = v
        elif k.startswith("blocks."):
            i, rest = k.split(".")[1], k.split(".", 2)[2]
            sd[f"model.out_layer.{i}." + rest.replace("norm", "layer_norm")] = v
        elif k.startswith("out."):
            sd["model.out_layer.4." + k[4:]] = v
        else:
            sd[k] = v
    ref.load_state_dict(sd, strict=True)
    return ref


def build_ours() -> AnyStepDynamics:
    torch.manual_seed(0)
    ours = AnyStepDynamics(OBS, ACT, ADMConfig(hidden_dim=HID))
    obs = G.normal(0, 1, (200, OBS)) * G.uniform(0.2, 3, OBS) + G.normal(0, 1, OBS)
    obs[:, 0] = G.uniform(0.9, 1.6, 200)  # hopper height, so that rollouts terminate sometimes
    obs[:, 1] = G.uniform(-0.15, 0.15, 200)
    ours.set_normalizer(obs, G.uniform(-1, 1, (200, ACT)))
    with torch.no_grad():  # small steps, so that hopper rollouts end in some rows and not in others
        ours.out.weight.mul_(0.1)
        ours.max_logvar.fill_(-5.0).add_(torch.as_tensor(G.normal(0, 0.2, OBS + 1), dtype=torch.float32))
        ours.min_logvar.add_(torch.as_tensor(G.normal(0, 0.5, OBS + 1), dtype=torch.float32))
    return ours


def make_agent(ours: AnyStepDynamics):
    import gymnasium

    ref_model = mapped_official(ours)
    wrapper = lambda obs_dim, action_dim, **kw: ref_model  # noqa: E731 (int dims; our weights)
    with patched(official_agent, "ARMDynamics", wrapper):
        agent = official_agent.ADMPOAgent(
            obs_shape=(OBS,),
            hidden_dims=[8, 8],
            action_dim=ACT,
            action_space=gymnasium.spaces.Box(-1.0, 1.0, (ACT,), np.float32),
            static_fn=STATICFUNC["hopper"],
            max_arm_step=M,
            arm_hidden_dim=HID,
            actor_freq=1,
            actor_lr=1e-4,
            critic_lr=3e-4,
            model_lr=0.0,
            penalty_coef=1.0,
            device="cpu",
        )
    return agent, ref_model


def forward_loss_fixture(ours: AnyStepDynamics) -> dict:
    agent, ref_model = make_agent(ours)
    out = {}
    ref_model.eval()
    for k in range(1, M + 1):
        s = torch.as_tensor(G.normal(0, 1, (B, OBS)), dtype=torch.float32)
        a = torch.as_tensor(G.uniform(-1, 1, (B, k, ACT)), dtype=torch.float32)
        with torch.no_grad():
            mean, logvar = ref_model(s, a)
        out |= {f"fwd{k}/obs": s, f"fwd{k}/act": a, f"fwd{k}/mean": mean, f"fwd{k}/logvar": logvar}
    # the training loss of one k-step window batch, from the official loop
    k = 2
    window = {
        "s": G.normal(0, 1, (B, k, OBS)).astype(np.float32),
        "a": G.uniform(-1, 1, (B, k, ACT)).astype(np.float32),
        "r": G.normal(0, 1, (B, k, 1)).astype(np.float32),
        "s_": G.normal(0, 1, (B, k, OBS)).astype(np.float32),
    }

    class Buffer:
        size = 40 * B

        def cal_mu_std(self):
            return (ours.obs_mu.numpy(), ours.obs_std.numpy(), ours.act_mu.numpy(), ours.act_std.numpy())

        def sample_nstep(self, batch_size, nstep, start_idx=None, end_idx=None):
            assert nstep == k
            return window

    captured = {}

    class CaptureOptim:
        def zero_grad(self):
            ref_model.zero_grad()

        def step(self):
            captured["grads"] = {
                n: p.grad.clone() for n, p in ref_model.named_parameters() if p.grad is not None
            }
            raise Stop

    original_backward = torch.Tensor.backward

    def backward(self, *args, **kw):
        captured["loss"] = self.detach().clone()
        return original_backward(self, *args, **kw)

    agent.make_dynamics = lambda: ref_model
    reset = agent.reset_dyna

    def reset_dyna():
        reset()
        agent.dyna_optim = CaptureOptim()

    agent.reset_dyna = reset_dyna
    ref_model.train()
    torch.manual_seed(0)
    with (
        patched(np.random, "randint", lambda high, *a, **kw: k - 1),
        patched(torch.Tensor, "backward", backward),
    ):
        try:
            agent.learn_dynamics_from(Buffer(), B, max_holdout=1000)
        except Stop:
            pass
    # dropout is on in the official loop (train mode): our side replays torch's global RNG from seed 0
    out |= {f"win/{key}": v for key, v in window.items()}
    out["loss_k"] = np.array(k)
    out["loss"] = captured["loss"]
    names = dict(zip([n for n, _ in ref_model.named_parameters()], [n for n, _ in ours.named_parameters()]))
    for n, g in captured["grads"].items():
        out[f"grad/{names[n]}"] = g
    return out


def rollout_fixture(ours: AnyStepDynamics) -> dict:
    agent, ref_model = make_agent(ours)
    ref_model.eval()
    w = G.normal(0, 0.3, (OBS, ACT)).astype(np.float32)
    hist_s = G.normal(0, 0.2, (B, M - 1, OBS)).astype(np.float32)
    hist_s[..., 0] += 1.25
    hist_a = G.uniform(-1, 1, (B, M - 1, ACT)).astype(np.float32)
    start = G.normal(0, 0.1, (B, OBS)).astype(np.float32)
    start[:, 0] += 1.25
    ks = G.integers(1, M + 1, H)
    noise = G.normal(0, 1, (H, B, OBS + 1))
    init = {
        "s": hist_s,
        "a": hist_a,
        "r": np.zeros((B, M - 1, 1), np.float32),
        "s_": np.concatenate([hist_s[:, 1:], start[:, None]], 1),
        "done": np.zeros((B, M - 1, 1), bool),
        "timeout": np.zeros((B, M - 1, 1), bool),
    }
    k_iter, n_iter = iter(ks), iter(noise)
    agent.act = lambda obs, deterministic=False: (np.tanh(obs @ w), None)
    dones = []  # the official code evaluates every row at every step; record which rows were alive
    term = agent.static_fn.termination_fn

    def recording(o, a, n):
        dones.append(np.asarray(term(o, a, n)).reshape(-1))
        return term(o, a, n)

    with (
        patched(np.random, "randint", lambda high, *a, **kw: next(k_iter) - 1),
        patched(np.random, "normal", lambda size=None, **kw: next(n_iter)),
        patched(agent.static_fn, "termination_fn", staticmethod(recording)),
    ):
        tr = agent.rollout(init, H)
    alive = np.ones((H, B), bool)
    for t in range(1, H):
        alive[t] = alive[t - 1] & ~dones[t - 1] if t - 1 < len(dones) else False
    return {
        "roll/w": w,
        "roll/hist_s": hist_s,
        "roll/hist_a": hist_a,
        "roll/start": start,
        "roll/ks": ks,
        "roll/noise": noise,
        "roll/alive": alive,
        **{f"roll/ref_{key}": v for key, v in tr.items()},
    }


def termination_fixture() -> dict:
    out = {}
    for env, dim in (
        ("hopper", 11),
        ("walker2d", 17),
        ("halfcheetah", 17),
        ("neorl-hopper", 12),
        ("neorl-walker2d", 18),
        ("neorl-halfcheetah", 18),
        ("anttruncatedobs", 27),
        ("humanoidtruncatedobs", 45),
    ):
        n = 60
        s = G.normal(0, 1, (n, dim)).astype(np.float32)
        s[:, 0] = G.uniform(0.1, 2.2, n)
        s[:, 1] = G.uniform(0.5, 2.2, n) if env.startswith("neorl") else G.uniform(-1.2, 1.2, n)
        if env.startswith("neorl"):
            s[:, 2] = G.uniform(-1.2, 1.2, n)
        big = G.random(n) < 0.25
        s[big, G.integers(3, dim, big.sum())] = G.choice([-150.0, 150.0, 99.9, -99.9], big.sum())
        s[::13, dim - 1] = np.nan
        s[::17, 1] = np.inf
        s[::19, 0] = -np.inf
        a = np.zeros((len(s), 3), np.float32)
        out[f"term/{env}/next_obs"] = s
        out[f"term/{env}/done"] = np.asarray(STATICFUNC[env].termination_fn(s, a, s)).reshape(-1)
    return out


def _linears(seq):
    return [m for m in seq if isinstance(m, torch.nn.Linear)]


def sac_fixture() -> None:
    """Three updates of the official ``SACAgent.learn`` (online settings: automatic temperature from
    log alpha = 0, lr 3e-4, target entropy -1, actor every update) against ours with its ADMPO epsilon."""
    import gymnasium

    torch.manual_seed(2)
    cfg = SACConfig(
        hidden=(8, 8),
        actor_lr=3e-4,
        critic_lr=3e-4,
        alpha_lr=3e-4,
        auto_alpha=True,
        target_entropy=-1.0,
        logp_eps=ADMPO_LOGP_EPS,
    )
    ours = SAC(OBS, ACT, cfg)
    init = state("init", ours)
    ref = official_agent.SACAgent(
        (OBS,),
        [8, 8],
        ACT,
        gymnasium.spaces.Box(-1.0, 1.0, (ACT,), np.float32),
        actor_freq=1,
        actor_lr=cfg.actor_lr,
        critic_lr=cfg.critic_lr,
        auto_alpha=True,
        alpha_lr=cfg.alpha_lr,
        target_entropy=-1.0,
        device="cpu",
    )
    trunk = _linears(ours.actor.trunk)
    with torch.no_grad():
        for a, r in zip(trunk[:-1], _linears(ref.actor.backbone.net)):
            r.weight.copy_(a.weight)
            r.bias.copy_(a.bias)
        ref.actor.dist_net.mu.weight.copy_(trunk[-1].weight[:ACT])
        ref.actor.dist_net.mu.bias.copy_(trunk[-1].bias[:ACT])
        ref.actor.dist_net.sigma.weight.copy_(trunk[-1].weight[ACT:])
        ref.actor.dist_net.sigma.bias.copy_(trunk[-1].bias[ACT:])
        for i, nets in enumerate(((ref.critic1, ref.critic1_trgt), (ref.critic2, ref.critic2_trgt))):
            for net in nets:
                for layer, r in zip(ours.critic.net.layers, [*_linears(net.backbone.net), net.last]):
                    r.weight.copy_(layer.weight[i].T)
                    r.bias.copy_(layer.bias[i, 0])
    g = torch.Generator().manual_seed(3)
    arrays = {}
    for step in range(3):
        b = {
            "obs": torch.randn(16, OBS, generator=g),
            "act": torch.rand(16, ACT, generator=g) * 2 - 1,
            "rew": torch.randn(16, 1, generator=g),
            "next_obs": torch.randn(16, OBS, generator=g),
            "done": (torch.rand(16, 1, generator=g) < 0.2).float(),
        }
        eps = torch.randn(2, 16, ACT, generator=g)
        with reference_gaussians(NoiseQueue(list(eps))):
            ref.learn(b["obs"], b["act"], b["rew"], b["next_obs"], b["done"])
        arrays |= {f"in/{step}/{k}": v for k, v in b.items()} | {f"noise/{step}": eps}
    with torch.no_grad():
        for a, r in zip(trunk[:-1], _linears(ref.actor.backbone.net)):
            a.weight.copy_(r.weight)
            a.bias.copy_(r.bias)
        trunk[-1].weight.copy_(torch.cat([ref.actor.dist_net.mu.weight, ref.actor.dist_net.sigma.weight]))
        trunk[-1].bias.copy_(torch.cat([ref.actor.dist_net.mu.bias, ref.actor.dist_net.sigma.bias]))
        for i, (net, trgt) in enumerate(((ref.critic1, ref.critic1_trgt), (ref.critic2, ref.critic2_trgt))):
            for dst, src in ((ours.critic, net), (ours.critic_target, trgt)):
                for layer, r in zip(dst.net.layers, [*_linears(src.backbone.net), src.last]):
                    layer.weight[i].copy_(r.weight.T)
                    layer.bias[i, 0].copy_(r.bias)
        ours.log_alpha.copy_(ref._log_alpha.detach()[0])
    keep = {k: v for k, v in state("ref", ours).items() if "act_scale" not in k}
    save_fixture(
        "admpo_sac", REPO, COMMIT, "agent/sac.py (SACAgent.learn, actor4ward)", **init, **arrays, **keep
    )


def main():
    sac_fixture()
    ours = build_ours()
    arrays = state("init", ours)
    arrays |= forward_loss_fixture(ours)
    arrays |= rollout_fixture(ours)
    save_fixture(
        "admpo_model",
        REPO,
        COMMIT,
        "dynamics/arm.py, dynamics/arm_dynamics.py; agent/admpo.py (learn_dynamics_from loss, rollout)",
        **arrays,
    )
    save_fixture("admpo_termination", REPO, COMMIT, "components/static_fns/*.py", **termination_fixture())


if __name__ == "__main__":
    main()
