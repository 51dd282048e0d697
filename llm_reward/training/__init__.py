"""SB3 glue every track uses: vectorised envs, the training loop with episode records, curves, rollouts."""

from llm_reward.training.loop import (CounterLogger, EnvFactory, EpisodeRecorder, StopOnInterrupt, TrainResult,
                                     make_vec_env, plot_curves, train_agent)
from llm_reward.training.rollouts import collect_captions, load_rollouts, save_rollouts

__all__ = ["CounterLogger", "EnvFactory", "EpisodeRecorder", "StopOnInterrupt", "TrainResult", "collect_captions",
           "load_rollouts", "make_vec_env", "plot_curves", "save_rollouts", "train_agent"]
