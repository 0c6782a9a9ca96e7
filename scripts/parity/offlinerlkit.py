"""Parity fixtures from OfflineRL-Kit (yihaosun1124/OfflineRL-Kit), the implementation behind the ADMPO
paper's retrained CQL/MOPO columns and the code our ensemble, SAC core, MOBILE, EDAC, RAMBO and COMBO
follow.

    PARITY_OFFLINERL_KIT=/path/to/OfflineRL-Kit python scripts/parity/offlinerlkit.py

Shims: ``gym`` is aliased to ``gymnasium`` (only ``gym.spaces.Box`` is used) and
``torch.utils.tensorboard`` is stubbed (the logger module imports it; nothing here logs).
Writes ``tests/fixtures/parity/okit_*.npz``; ``tests/test_parity.py`` checks our code against them.
"""

from __future__ import annotations

import copy
import sys

import gymnasium
import numpy as np
import torch
from _common import (
    NoiseQueue,
    checkout,
    patched,
    reference_gaussians,
    save_fixture,
    state,
    stub_module,
)

_, COMMIT = checkout("offlinerl-kit")
REPO = "yihaosun1124/OfflineRL-Kit"
sys.modules["gym"] = gymnasium
stub_module("torch.utils.tensorboard", SummaryWriter=object)

from offlinerlkit.dynamics import EnsembleDynamics as RefDynamics  # noqa: E402
from offlinerlkit.modules import ActorProb, Critic, EnsembleCritic, EnsembleDynamicsModel, TanhDiagGaussian  # noqa: E402
from offlinerlkit.nets import MLP  # noqa: E402
from offlinerlkit.policy import COMBOPolicy, CQLPolicy, EDACPolicy, MOBILEPolicy, RAMBOPolicy, SACPolicy  # noqa: E402
from offlinerlkit.utils import termination_fns as ref_term  # noqa: E402
from offlinerlkit.utils.scaler import StandardScaler  # noqa: E402

from baselines.cql import CQLConfig, CQLLearner  # noqa: E402
from baselines.edac import EDACConfig, EDACLearner  # noqa: E402
from benchmark.rl.dynamics import EnsembleDynamics, EnsembleDynamicsConfig  # noqa: E402
from benchmark.rl.sac import SAC, QEnsemble, SACConfig, TanhGaussianActor  # noqa: E402

torch.set_num_threads(1)
OBS, ACT, HID, B = 11, 3, (8, 8), 8  # hopper shapes (the termination function applies), tiny nets
GEN = torch.Generator().manual_seed(2026)


def randn(*shape, scale=1.0):
    return torch.randn(*shape, generator=GEN) * scale


def batch(n=B, obs=OBS, act=ACT, done_rows=(1,)):
    out = {
        "obs": randn(n, obs),
        "act": torch.rand(n, act, generator=GEN) * 1.8 - 0.9,
        "rew": randn(n, 1),
        "next_obs": randn(n, obs),
        "done": torch.zeros(n, 1),
    }
    out["done"][list(done_rows)] = 1.0
    return out


def ref_batch(b):
    return {
        "observations": b["obs"],
        "actions": b["act"].clone(),
        "next_observations": b["next_obs"],
        "rewards": b["rew"],
        "terminals": b["done"],
    }


def inputs(prefix, b):
    return {f"{prefix}/{k}": v for k, v in b.items()}


# ----- weight mapping: ours -> reference layout ---------------------------------------------------
def ref_actor(ours: TanhGaussianActor) -> ActorProb:
    backbone = MLP(OBS, HID)
    dist = TanhDiagGaussian(HID[-1], ACT, unbounded=True, conditioned_sigma=True, max_mu=1.0)
    actor = ActorProb(backbone, dist)
    lin = [m for m in ours.trunk if isinstance(m, torch.nn.Linear)]
    ref_lin = [m for m in backbone.model if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for a, r in zip(lin[:-1], ref_lin):
            r.weight.copy_(a.weight)
            r.bias.copy_(a.bias)
        dist.mu.weight.copy_(lin[-1].weight[:ACT])
        dist.mu.bias.copy_(lin[-1].bias[:ACT])
        dist.sigma.weight.copy_(lin[-1].weight[ACT:])
        dist.sigma.bias.copy_(lin[-1].bias[ACT:])
    return actor


def actor_back(ref: ActorProb, ours: TanhGaussianActor) -> TanhGaussianActor:
    out = copy.deepcopy(ours)
    lin = [m for m in out.trunk if isinstance(m, torch.nn.Linear)]
    ref_lin = [m for m in ref.backbone.model if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for a, r in zip(lin[:-1], ref_lin):
            a.weight.copy_(r.weight)
            a.bias.copy_(r.bias)
        lin[-1].weight.copy_(torch.cat([ref.dist_net.mu.weight, ref.dist_net.sigma.weight]))
        lin[-1].bias.copy_(torch.cat([ref.dist_net.mu.bias, ref.dist_net.sigma.bias]))
    return out


def ref_critic(ours: QEnsemble, i: int, hidden=HID) -> Critic:
    critic = Critic(MLP(OBS + ACT, hidden))
    ref_lin = [m for m in critic.backbone.model if isinstance(m, torch.nn.Linear)] + [critic.last]
    with torch.no_grad():
        for layer, r in zip(ours.net.layers, ref_lin):
            r.weight.copy_(layer.weight[i].T)
            r.bias.copy_(layer.bias[i, 0])
    return critic


def critics_back(refs, ours: QEnsemble) -> QEnsemble:
    out = copy.deepcopy(ours)
    with torch.no_grad():
        for i, critic in enumerate(refs):
            ref_lin = [m for m in critic.backbone.model if isinstance(m, torch.nn.Linear)] + [critic.last]
            for layer, r in zip(out.net.layers, ref_lin):
                layer.weight[i].copy_(r.weight.T)
                layer.bias[i, 0].copy_(r.bias)
    return out


def ref_ensemble_critic(ours: QEnsemble) -> EnsembleCritic:
    critic = EnsembleCritic(OBS, ACT, HID, num_ensemble=ours.n)
    ref_lin = [m for m in critic.model if hasattr(m, "weight")]
    with torch.no_grad():
        for layer, r in zip(ours.net.layers, ref_lin):
            r.weight.copy_(layer.weight)
            r.bias.copy_(layer.bias)
    return critic


def zero_lr(*modules):
    return [torch.optim.Adam(m.parameters() if hasattr(m, "parameters") else m, lr=0.0) for m in modules]


# ----- SAC core: 3 updates, automatic temperature pushed above 1 (OfflineRL-Kit clamps it) ---------
def sac_fixture():
    torch.manual_seed(1)
    cfg = SACConfig(
        hidden=HID,
        actor_lr=1e-3,
        critic_lr=1e-3,
        alpha_lr=0.3,
        auto_alpha=True,
        target_entropy=5.0,
        alpha_max=1.0,
    )
    ours = SAC(OBS, ACT, cfg)
    init = state("init", ours)
    actor = ref_actor(ours.actor)
    c1, c2 = ref_critic(ours.critic, 0), ref_critic(ours.critic, 1)
    log_alpha = torch.zeros(1, requires_grad=True)
    ref = SACPolicy(
        actor,
        c1,
        c2,
        torch.optim.Adam(actor.parameters(), lr=cfg.actor_lr),
        torch.optim.Adam(c1.parameters(), lr=cfg.critic_lr),
        torch.optim.Adam(c2.parameters(), lr=cfg.critic_lr),
        tau=cfg.tau,
        gamma=cfg.gamma,
        alpha=(cfg.target_entropy, log_alpha, torch.optim.Adam([log_alpha], lr=cfg.alpha_lr)),
    )
    arrays, alphas, critic_losses, actor_losses = {}, [], [], []
    for step in range(3):
        b = batch()
        eps = randn(2, B, ACT)  # critic target's next action, then the actor's action
        with reference_gaussians(NoiseQueue(list(eps))):
            out = ref.learn(ref_batch(b))
        arrays.update(inputs(f"in/{step}", b))
        arrays[f"noise/{step}"] = eps
        alphas.append(float(ref._alpha))
        critic_losses.append(out["loss/critic1"] + out["loss/critic2"])
        actor_losses.append(out["loss/actor"])
    result = copy.deepcopy(ours)
    result.actor = actor_back(ref.actor, ours.actor)
    result.critic = critics_back([ref.critic1, ref.critic2], ours.critic)
    result.critic_target = critics_back([ref.critic1_old, ref.critic2_old], ours.critic_target)
    with torch.no_grad():
        result.log_alpha.copy_(log_alpha.detach()[0])
    keep = {k: v for k, v in state("ref", result).items() if "act_scale" not in k}
    save_fixture(
        "okit_sac",
        REPO,
        COMMIT,
        "offlinerlkit/policy/model_free/sac.py; modules/dist_module.py",
        **init,
        **arrays,
        **keep,
        alpha=np.array(alphas),
        critic_loss=np.array(critic_losses),
        actor_loss=np.array(actor_losses),
        target_entropy=np.array(cfg.target_entropy),
        alpha_lr=np.array(cfg.alpha_lr),
        lr=np.array(cfg.actor_lr),
    )


# ----- ensemble dynamics: training loss, gradients, holdout MSE, MOPO penalty -----------------------
def dynamics_pair(members=4, elites=3):
    torch.manual_seed(2)
    cfg = EnsembleDynamicsConfig(
        members=members, elites=elites, hidden=HID, weight_decays=(2.5e-5, 5e-5, 1e-4)
    )
    ours = EnsembleDynamics(OBS, ACT, cfg, "hopper", seed=3)
    with torch.no_grad():  # bounds and normaliser away from their initial values
        ours.max_logvar.copy_(0.5 + 0.3 * randn(OBS + 1))
        ours.min_logvar.copy_(-10 + 0.5 * randn(OBS + 1))
        ours.input_mean.copy_(randn(OBS + ACT, scale=0.3))
        ours.input_std.copy_(0.5 + torch.rand(OBS + ACT, generator=GEN))
        ours.elites.copy_(torch.tensor([2, 0, 3][:elites]))
    model = EnsembleDynamicsModel(OBS, ACT, HID, members, elites, weight_decays=list(cfg.weight_decays))
    ref_layers = [*model.backbones, model.output_layer]
    with torch.no_grad():
        for layer, r in zip(ours.net.layers, ref_layers):
            r.weight.copy_(layer.weight)
            r.bias.copy_(layer.bias)
        model.max_logvar.copy_(ours.max_logvar)
        model.min_logvar.copy_(ours.min_logvar)
        model.elites.copy_(ours.elites)
    scaler = StandardScaler(ours.input_mean.numpy()[None], ours.input_std.numpy()[None])
    return ours, model, scaler


def ours_param_names(ours: EnsembleDynamics, model: EnsembleDynamicsModel):
    pairs = []
    for i, r in enumerate([*model.backbones, model.output_layer]):
        pairs += [(f"net.layers.{i}.weight", r.weight), (f"net.layers.{i}.bias", r.bias)]
    return pairs + [("max_logvar", model.max_logvar), ("min_logvar", model.min_logvar)]


def dynamics_fixture():
    ours, model, scaler = dynamics_pair()
    ref = RefDynamics(
        model,
        torch.optim.Adam(model.parameters(), lr=0.0),
        scaler,
        ref_term.termination_fn_hopper,
        penalty_coef=1.0,
    )
    e = model.num_ensemble
    obs, act = randn(e, 16, OBS), torch.rand(e, 16, ACT, generator=GEN) * 2 - 1
    target = randn(e, 16, OBS + 1, scale=0.5)
    norm = scaler.transform(torch.cat([obs, act], -1).numpy())
    loss = ref.learn(norm, target.numpy(), batch_size=16, logvar_loss_coef=0.01)
    grads = {f"ref_grad/{k}": p.grad.clone() for k, p in ours_param_names(ours, model)}
    ho_obs, ho_act, ho_target = randn(16, OBS), torch.rand(16, ACT, generator=GEN) * 2 - 1, randn(16, OBS + 1)
    ho = ref.validate(scaler.transform(torch.cat([ho_obs, ho_act], -1).numpy()), ho_target.numpy())
    st_obs, st_act = randn(16, OBS), torch.rand(16, ACT, generator=GEN) * 2 - 1
    np.random.seed(0)
    _, _, _, info = ref.step(st_obs.numpy(), st_act.numpy())
    save_fixture(
        "okit_dynamics",
        REPO,
        COMMIT,
        "offlinerlkit/dynamics/ensemble_dynamics.py (learn, validate, step); modules/dynamics_module.py",
        **state("init", ours),
        **grads,
        loss=np.array(loss),
        **{"in/obs": obs, "in/act": act, "in/target": target},
        **{"ho/obs": ho_obs, "ho/act": ho_act, "ho/target": ho_target},
        ref_holdout_mse=np.array(ho),
        **{"step/obs": st_obs, "step/act": st_act},
        ref_penalty=info["penalty"],
        members=np.array(4),
        elites=np.array(3),
    )


# ----- CQL conservative critic loss, OfflineRL-Kit's grouping -------------------------------------
def uniform_patch(noise: NoiseQueue):
    def uniform_(self, low=0.0, high=1.0):
        return self.copy_(low + (high - low) * noise.take(self.shape))

    return patched(torch.Tensor, "uniform_", uniform_)


def cql_like_fixture(name, files, policy_cls, learner_batch, extra_kwargs, m=4):
    torch.manual_seed(4)
    cfg = CQLConfig(
        hidden=HID,
        num_sampled_actions=m,
        cql_weight=5.0,
        temperature=1.0,
        auto_alpha=False,
        alpha=0.2,
        lse_grouping="state_sample",
        deterministic_backup=True,
    )
    ours = CQLLearner(OBS, ACT, cfg)
    actor = ref_actor(ours.actor)
    c1, c2 = ref_critic(ours.critic, 0), ref_critic(ours.critic, 1)
    space = gymnasium.spaces.Box(-1.0, 1.0, (ACT,), np.float32)
    ref = policy_cls(
        *extra_kwargs.pop("args", ()),
        actor,
        c1,
        c2,
        *zero_lr(actor, c1, c2),
        space,
        alpha=cfg.alpha,
        cql_weight=cfg.cql_weight,
        temperature=cfg.temperature,
        deterministic_backup=True,
        with_lagrange=False,
        num_repeart_actions=m,
        **extra_kwargs,
    )
    b, ref_in, n_down = learner_batch()
    eps = {
        "actor": randn(len(b["obs"]), ACT),
        "next": randn(len(b["obs"]), ACT),
        "pi_s": randn(n_down * m, ACT),
        "pi_next": randn(n_down * m, ACT),
    }
    u01 = torch.rand(n_down * m, ACT, generator=GEN)
    gauss = NoiseQueue([eps["actor"], eps["next"], eps["pi_s"], eps["pi_next"]])
    with reference_gaussians(gauss), uniform_patch(NoiseQueue([u01])):
        out = ref.learn(ref_in)
    save_fixture(
        name,
        REPO,
        COMMIT,
        files,
        **state("init", ours),
        **inputs("in", b),
        **{f"noise/{k}": v for k, v in eps.items()},
        **{"noise/u01": u01},
        critic_loss=np.array(out["loss/critic1"] + out["loss/critic2"]),
        m=np.array(m),
    )


def cql_fixture():
    def make():
        b = batch()
        return b, ref_batch(b), B

    cql_like_fixture("okit_cql", "offlinerlkit/policy/model_free/cql.py (learn)", CQLPolicy, make, {})


def combo_fixture():
    # COMBO: Bellman error on real + model rows, push-down on the whole batch (rho_s = mix), push-up on
    # the real rows only. Its learn() also takes one uniform-rollout-free path through the dynamics: none.
    def make():
        real, fake = batch(4), batch(4, done_rows=())
        b = {k: torch.cat([real[k], fake[k]]) for k in real}
        return b, {"real": ref_batch(real), "fake": ref_batch(fake)}, B

    cql_like_fixture(
        "okit_combo",
        "offlinerlkit/policy/model_based/combo.py (learn)",
        COMBOPolicy,
        make,
        {"args": (None,), "rho_s": "mix"},
    )


# ----- EDAC: critic loss with the gradient-diversity term ---------------------------------------
def edac_fixture():
    torch.manual_seed(5)
    cfg = EDACConfig(hidden=HID, num_critics=5, eta=5.0, auto_alpha=False, alpha=0.2, edac_init=True)
    ours = EDACLearner(OBS, ACT, cfg)
    actor = ref_actor(ours.actor)
    critics = ref_ensemble_critic(ours.critic)
    ref = EDACPolicy(
        actor, critics, *zero_lr(actor, critics), alpha=cfg.alpha, deterministic_backup=False, eta=cfg.eta
    )
    ref.critics_old.load_state_dict(critics.state_dict())
    b = batch()
    eps = randn(2, B, ACT)
    with reference_gaussians(NoiseQueue(list(eps))):
        out = ref.learn(ref_batch(b))
    save_fixture(
        "okit_edac",
        REPO,
        COMMIT,
        "offlinerlkit/policy/model_free/edac.py (learn)",
        **state("init", ours),
        **inputs("in", b),
        noise=eps,
        critic_loss=np.array(out["loss/critics"]),
        eta=np.array(cfg.eta),
        num_critics=np.array(cfg.num_critics),
    )


# ----- MOBILE: Bellman-inconsistency penalty and one full update ----------------------------------
def mobile_fixture(num_samples=3, n_real=4):
    from baselines.mobile import MOBILEConfig, MOBILELearner

    ours_dyn, model, scaler = dynamics_pair()
    ref_dyn = RefDynamics(model, None, scaler, ref_term.termination_fn_hopper)
    torch.manual_seed(6)
    cfg = MOBILEConfig(
        hidden=HID,
        actor_lr=1e-3,
        critic_lr=1e-3,
        num_samples=num_samples,
        penalty_coef=1.5,
        auto_alpha=False,
        alpha=0.2,
        lr_schedule=False,
        deterministic_backup=True,
    )
    ours = MOBILELearner(OBS, ACT, cfg, 1.0, "cpu")
    with torch.no_grad():  # targets away from the critics so that the Polyak step shows
        for p in ours.critic_target.parameters():
            p.add_(randn(*p.shape, scale=0.05))
    actor = ref_actor(ours.actor)
    critics = torch.nn.ModuleList([ref_critic(ours.critic, i) for i in range(2)])
    ref = MOBILEPolicy(
        ref_dyn,
        actor,
        critics,
        torch.optim.Adam(actor.parameters(), lr=cfg.actor_lr),
        torch.optim.Adam(critics.parameters(), lr=cfg.critic_lr),
        alpha=cfg.alpha,
        penalty_coef=cfg.penalty_coef,
        num_samples=num_samples,
        deterministic_backup=True,
    )
    for i in range(2):
        ref.critics_old[i].load_state_dict(ref_critic(ours.critic_target, i).state_dict())
    real, fake = batch(n_real), batch(B - n_real, done_rows=())
    b = {k: torch.cat([real[k], fake[k]]) for k in real}
    e = len(model.elites)
    eps_model = randn(num_samples, e, B, OBS + 1)
    eps_pi = randn(num_samples * e * B, ACT)
    eps_next, eps_actor = randn(B, ACT), randn(B, ACT)
    with reference_gaussians(NoiseQueue([*eps_model, eps_pi])):
        penalty = ref.compute_lcb(b["obs"], b["act"])
    queue = NoiseQueue([*eps_model, eps_pi, eps_next, eps_actor])
    with reference_gaussians(queue):
        out = ref.learn({"real": ref_batch(real), "fake": ref_batch(fake)})
    result = copy.deepcopy(ours)
    result.actor = actor_back(ref.actor, ours.actor)
    result.critic = critics_back(ref.critics, ours.critic)
    result.critic_target = critics_back(ref.critics_old, ours.critic_target)
    keep = {k: v for k, v in state("ref", result).items() if "act_scale" not in k and "log_alpha" not in k}
    save_fixture(
        "okit_mobile",
        REPO,
        COMMIT,
        "offlinerlkit/policy/model_based/mobile.py (compute_lcb, learn); dynamics/ensemble_dynamics.py "
        "(sample_next_obss); identical in yihaosun1124/mobile policies/mobile.py",
        **state("init", ours),
        **state("dyn", ours_dyn),
        **inputs("in", b),
        **keep,
        **{"noise/model": eps_model, "noise/pi": eps_pi, "noise/next": eps_next, "noise/actor": eps_actor},
        ref_penalty=penalty,
        critic_loss=np.array(out["loss/critic"]),
        actor_loss=np.array(out["loss/actor"]),
        n_real=np.array(n_real),
        num_samples=np.array(num_samples),
        penalty_coef=np.array(cfg.penalty_coef),
        lr=np.array(cfg.actor_lr),
    )


# ----- RAMBO: adversarial model loss (one step of dynamics_step_and_forward) ------------------------
def rambo_fixture():
    ours_dyn, model, scaler = dynamics_pair()
    ref_dyn = RefDynamics(model, None, scaler, ref_term.termination_fn_hopper)
    torch.manual_seed(7)
    sac = SAC(OBS, ACT, SACConfig(hidden=HID, alpha=0.2))
    actor = ref_actor(sac.actor)
    c1, c2 = ref_critic(sac.critic, 0), ref_critic(sac.critic, 1)
    adv_optim = torch.optim.Adam(model.parameters(), lr=0.0)
    ref = RAMBOPolicy(ref_dyn, actor, c1, c2, *zero_lr(actor, c1, c2), adv_optim, alpha=0.2, adv_weight=3e-4)
    n = 16
    obs = randn(n, OBS, scale=0.5)
    obs[:, 0] += 1.25  # hopper heights near the healthy range: some transitions terminate, some not
    eps_act = randn(n, ACT)
    mean, log_std = sac.actor.dist_params(obs)  # ours samples the action inside; the reference gets it
    act = torch.tanh(mean + log_std.exp() * eps_act).detach()
    sl = batch(n)
    e = model.num_ensemble
    eps_model = randn(e, n, OBS + 1)
    choice = torch.randint(len(model.elites), (n,), generator=GEN)
    elite_idx = model.elites.detach().numpy()[choice.numpy()]

    def sample_patch(self, sample_shape=()):
        with torch.no_grad():  # Normal.sample draws without a graph
            return self.loc + self.scale * eps_model

    with (
        patched(torch.distributions.Normal, "sample", sample_patch),
        patched(model, "random_elite_idxs", lambda batch_size: elite_idx),
    ):
        _, _, info = ref.dynamics_step_and_forward(
            obs.numpy(), act.numpy(), sl["obs"], sl["act"], sl["next_obs"], sl["rew"]
        )
    grads = {f"ref_grad/{k}": p.grad.clone() for k, p in ours_param_names(ours_dyn, model)}
    save_fixture(
        "okit_rambo",
        REPO,
        COMMIT,
        "offlinerlkit/policy/model_based/rambo.py (dynamics_step_and_forward)",
        **state("dyn", ours_dyn),
        **state("sac", sac),
        **inputs("sl", sl),
        **grads,
        **{"in/obs": obs, "noise/act": eps_act, "noise/model": eps_model, "noise/choice": choice},
        adv_loss=np.array(info["adv_dynamics_update/adv_loss"]),
        sl_loss=np.array(info["adv_dynamics_update/sl_loss"]),
        all_loss=np.array(info["adv_dynamics_update/all_loss"]),
        log_prob=np.array(info["adv_dynamics_update/adv_log_prob"]),
        adv_weight=np.array(3e-4),
    )


# ----- termination functions ------------------------------------------------------------------------
def stress_states(n, dim, height_col=0, angle_col=1, rng=None):
    s = rng.normal(0, 1, (n, dim)).astype(np.float32)
    s[:, height_col] = rng.uniform(0.5, 2.2, n)
    s[:, angle_col] = rng.uniform(-1.2, 1.2, n)
    big = rng.random(n) < 0.2
    s[big, rng.integers(2, dim, big.sum())] = rng.choice([-150.0, 150.0, 99.9, -99.9], big.sum())
    s[::37, dim - 1] = np.nan
    s[::41, height_col] = np.inf
    return s


def termination_fixture():
    rng = np.random.default_rng(0)
    arrays = {}
    for env, fn, dim in (
        ("hopper", ref_term.termination_fn_hopper, 11),
        ("walker2d", ref_term.termination_fn_walker2d, 17),
        ("halfcheetah", ref_term.termination_fn_halfcheetah, 17),
    ):
        s = stress_states(150, dim, rng=rng)
        a = np.zeros((len(s), 6), np.float32)
        arrays[f"{env}/next_obs"] = s
        arrays[f"{env}/done"] = fn(s, a, s).reshape(-1)
    save_fixture("okit_termination", REPO, COMMIT, "offlinerlkit/utils/termination_fns.py", **arrays)


if __name__ == "__main__":
    for make in (
        sac_fixture,
        dynamics_fixture,
        cql_fixture,
        combo_fixture,
        edac_fixture,
        mobile_fixture,
        rambo_fixture,
        termination_fixture,
    ):
        make()
