"""Parity fixture from the official CBOP code (jihwan-jeong/CBOP): the conservative MVE target of
``MVEPOTrainer.get_target_from_mve`` (the README path, ``indep_sampling=false``), with terminations.

    PARITY_CBOP=/path/to/CBOP python scripts/parity/cbop.py

Shims: the packages the rlkit stack imports at module level but this function never uses (gym, d4rl,
hydra, omegaconf, wandb, gtimer, cv2) are empty stand-ins. The method is called unbound on a stand-in
trainer whose model environment, policy and target critics are OUR networks with the given noise, so
the official loop, termination mask and Bayesian fusion run on exactly the inputs ours sees.
"""

from __future__ import annotations

import types

import numpy as np
import torch
from _common import checkout, save_fixture, state, stub_packages

_, COMMIT = checkout("cbop")
REPO = "jihwan-jeong/CBOP"
stub_packages("gtimer", "wandb", "hydra", "omegaconf", "gym", "d4rl", "cv2")

import rlkit.trainers.mvepo.mvepo as mvepo  # noqa: E402

from benchmark.rl.dynamics import EnsembleDynamics, EnsembleDynamicsConfig  # noqa: E402
from benchmark.rl.sac import QEnsemble, TanhGaussianActor  # noqa: E402

torch.set_num_threads(1)
OBS, ACT, HID, N, M, H, GAMMA = 11, 3, (8, 8), 12, 4, 3, 0.99
G = torch.Generator().manual_seed(11)


def build():
    torch.manual_seed(0)
    dyn = EnsembleDynamics(
        OBS,
        ACT,
        EnsembleDynamicsConfig(members=4, elites=3, hidden=HID, weight_decays=(0.0, 0.0, 0.0)),
        "hopper",
        seed=1,
    )
    with torch.no_grad():  # small model steps with little noise: terminations depend on the start state
        dyn.net.layers[-1].weight.mul_(0.05)
        dyn.max_logvar.fill_(-6.0)
        dyn.elites.copy_(torch.tensor([3, 0, 2]))
    actor = TanhGaussianActor(OBS, ACT, HID)
    critic = QEnsemble(OBS, ACT, M, HID)
    with torch.no_grad():  # values far from the rewards, so that dropping a horizon shows
        critic.net.layers[-1].bias.add_(50.0 + torch.randn(M, 1, 1, generator=G))
    return dyn, actor, critic


def main():
    dyn, actor, critic = build()
    k = len(dyn.elites)
    obs = torch.randn(N, OBS, generator=G) * 0.05
    obs[:, 0] = torch.tensor([1.25] * 4 + [0.3] * 4 + [0.72, 0.74, 0.76, 0.78])  # alive, dead, borderline
    act = torch.tanh(torch.randn(N, ACT, generator=G))
    eps_model = torch.randn(H, k, N, OBS + 1, generator=G)
    eps_pi = torch.randn(H + 1, k, N, ACT, generator=G)  # [0] unused: the first action is given

    class ModelEnv:
        """The official model-environment interface on our ensemble (particle k follows elite k)."""

        def reset(self, initial_obs_batch, return_as_np=True):
            self._obs = initial_obs_batch
            self.t = 0

        def step(self, action_batch, sample=True, batch_size=None):
            s, a = self._obs.view(k, N, OBS), action_batch.view(k, N, ACT)
            s_all = s.new_zeros(dyn.cfg.members, N, OBS).index_copy(0, dyn.elites, s)
            a_all = a.new_zeros(dyn.cfg.members, N, ACT).index_copy(0, dyn.elites, a)
            mean, logvar = dyn.predict(s_all, a_all)
            sample_ = mean[dyn.elites] + torch.exp(0.5 * logvar[dyn.elites]) * eps_model[self.t]
            next_obs, rew = sample_[..., :-1].reshape(k * N, OBS), sample_[..., -1:].reshape(k * N, 1)
            done = dyn.termination_fn(self._obs, action_batch, next_obs).reshape(-1, 1)
            self._obs, self.t = next_obs, self.t + 1
            return next_obs, rew, done, {}

    env = ModelEnv()

    def policy(o):
        mean, log_std = actor.dist_params(o)
        t = env.t
        return types.SimpleNamespace(
            sample=lambda: actor.act_scale * torch.tanh(mean + log_std.exp() * eps_pi[t].reshape(k * N, ACT))
        )

    def target_qfs(x, use_propagation=False, only_elite=True):
        return critic(x[0, :, :OBS], x[0, :, OBS:])

    trainer = types.SimpleNamespace(
        model_env=env,
        num_particles=k,
        horizon=H,
        on_policy=True,
        policy=policy,
        target_qfs=target_qfs,
        num_qfs=M,
        discount=GAMMA,
        weighting="adaptive",
        use_t_dist=False,
        lamb=None,
        _need_to_update_eval_statistics=False,
    )
    with torch.no_grad():
        mean, var = mvepo.MVEPOTrainer.get_target_from_mve(trainer, obs, act)
    save_fixture(
        "cbop_target",
        REPO,
        COMMIT,
        "rlkit/trainers/mvepo/mvepo.py (get_target_from_mve, adaptive Gaussian)",
        **state("dyn", dyn),
        **state("actor", actor),
        **state("critic", critic),
        **{"in/obs": obs, "in/act": act, "noise/model": eps_model, "noise/pi": eps_pi[1:]},
        ref_mean=mean.reshape(-1),
        ref_var=var.reshape(-1),
        gamma=np.array(GAMMA),
        horizon=np.array(H),
    )
    print("reference target mean per state:", np.round(mean.reshape(-1).numpy(), 2))


if __name__ == "__main__":
    main()
