"""The Dyna-style online base (ADMPO-ON, MBPO, BMPO): model training and rollouts on a schedule, a
resizable FIFO model buffer, and batches mixing real and model transitions."""

from __future__ import annotations

import time
from typing import ClassVar

from benchmark.rl.algorithm import Context
from benchmark.rl.buffers import Batch, MixedBatch, TransitionBuffer, mix
from benchmark.rl.online.algorithm import OnlineAlgorithm
from benchmark.rl.online.configs import OnlineModelBasedConfig, rollout_length


class OnlineModelBased(OnlineAlgorithm):
    """Dyna-style online learner: a model retrained on schedule, rolled out into a model buffer, and
    batches mixing ``int(batch_size * real_ratio)`` real with model transitions.

    Subclasses implement ``train_model(it) -> dict`` and ``rollout(num_starts, length) ->
    (transitions, info)`` (transitions: ``obs, act, rew, next_obs, done``). They may override the
    schedule (``rollout_length_at``: MBPO counts in epochs), the model steps one start adds
    (``model_steps_per_start``: BMPO's backward plus forward lengths), and how a resize keeps the data
    (``resize_in_storage_order``).
    """

    cfg: OnlineModelBasedConfig
    # False: a resize keeps the newest transitions, oldest first (ADMPO-ON). True: rows are copied in
    # storage order, so after a wrap-around the next writes evict rows in storage order, not the oldest
    # (MBPO's and BMPO's ``_reallocate_model_pool`` copies ``return_all_samples()``, i.e. rows 0..size-1)
    resize_in_storage_order: ClassVar[bool] = False

    def __init__(self, cfg: OnlineModelBasedConfig, ctx: Context):
        super().__init__(cfg, ctx)
        # created at the first rollout with the capacity of the schedule's rollout length then
        self.fake: TransitionBuffer | None = None
        self.model_trainings = 0
        self.rollouts = 0
        self.model_info: dict = {}
        self.rollout_info: dict = {}
        self.capacity_history: list[tuple[int, int]] = []  # (it, capacity) at every resize
        self.rollout_history: list[tuple[int, int, int]] = []  # (it, length, transitions) per rollout
        self.current_it = 0  # the env step of the hooks running now

    # ----- to implement -------------------------------------------------------------------------
    def train_model(self, it: int) -> dict:
        raise NotImplementedError

    def rollout(self, num_starts: int, length: int) -> tuple[Batch, dict]:
        raise NotImplementedError

    # ----- schedule (overridable) ---------------------------------------------------------------
    def rollout_length_at(self, it: int) -> int:
        return rollout_length(it, self.cfg.rollout_schedule)

    def model_steps_per_start(self, it: int) -> int:
        """Model transitions one rollout start adds at most (sizes the model buffer)."""
        return self.rollout_length_at(it)

    # ----- shared hooks -------------------------------------------------------------------------
    def model_buffer_capacity(self, it: int) -> int:
        cfg = self.cfg
        length = self.model_steps_per_start(it)
        capacity = cfg.rollout_batch_size * length * cfg.model_retain_steps / cfg.model_rollout_interval
        return max(1, int(capacity))

    def resize_model_buffer(self, it: int) -> None:
        capacity = self.model_buffer_capacity(it)
        if self.fake is None:
            self.fake = TransitionBuffer(capacity, self.ctx.obs_dim, self.ctx.act_dim, self.device)
            self.capacity_history.append((it, capacity))
        elif self.fake.capacity != capacity:
            self.fake.resize(capacity, storage_order=self.resize_in_storage_order)
            self.capacity_history.append((it, capacity))

    def before_step(self, it: int) -> dict:
        cfg = self.cfg
        info: dict = {}
        self.current_it = it
        if cfg.model_update_interval > 0 and it % cfg.model_update_interval == 0:
            t0 = time.time()
            self.model_info = self.train_model(it) or {}
            self.model_info["train_time_s"] = time.time() - t0
            self.model_trainings += 1
            info.update({f"model/{k}": v for k, v in self.model_info.items()})
        if it % cfg.model_rollout_interval == 0:
            self.resize_model_buffer(it)
            length = self.rollout_length_at(it)
            t0 = time.time()
            transitions, rinfo = self.rollout(cfg.rollout_batch_size, length)
            self.fake.add(**transitions)
            self.rollouts += 1
            self.rollout_history.append((it, length, len(transitions["obs"])))
            self.rollout_info = {**rinfo, "length": length, "time_s": time.time() - t0,
                                 "model_buffer": len(self.fake), "model_buffer_capacity": self.fake.capacity}
            info.update({f"rollout/{k}": v for k, v in self.rollout_info.items()})
        return info

    def next_batch(self, it: int) -> MixedBatch:
        cfg = self.cfg
        # real data only while there is no model data yet
        return mix(self.real, self.fake, cfg.batch_size, cfg.real_ratio, self.batch_generator)


