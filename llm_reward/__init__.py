"""llm_reward: turn AI feedback into rewards for reinforcement-learning agents."""

__version__ = "0.1.0"
