"""The online side, laid out as the offline one: configs (:mod:`.configs`), the contract
(:mod:`.algorithm`: real transitions and buffer, :class:`OnlineAlgorithm`; the context is the offline
side's :class:`benchmark.rl.algorithm.Context`), the Dyna-style base
(:mod:`.model_based`: :class:`OnlineModelBased`) and the loop (:mod:`.trainers`: :func:`train_online`).
Every name is re-exported here, so algorithms import from ``benchmark.rl.online``."""

from benchmark.rl.algorithm import Context
from benchmark.rl.buffers import EnvReplay, Transition
from benchmark.rl.online.algorithm import OnlineAlgorithm, SACAgent
from benchmark.rl.online.configs import (
    OnlineModelBasedConfig,
    OnlineSACConfig,
    OnlineTrainConfig,
    rollout_length,
)
from benchmark.rl.online.model_based import OnlineModelBased
from benchmark.rl.online.trainers import train_online

__all__ = [
    "Context",
    "EnvReplay",
    "OnlineAlgorithm",
    "OnlineModelBased",
    "OnlineModelBasedConfig",
    "OnlineSACConfig",
    "OnlineTrainConfig",
    "SACAgent",
    "Transition",
    "rollout_length",
    "train_online",
]
