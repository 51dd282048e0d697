"""SB3 glue every track uses: vectorised envs, the training loop with episode records, curves, rollouts."""

from llm_reward.training.loop import EpisodeRecorder, StopOnInterrupt, TrainResult, make_vec_env, plot_curves, train_agent

__all__ = ["EpisodeRecorder", "StopOnInterrupt", "TrainResult", "make_vec_env", "plot_curves", "train_agent"]
