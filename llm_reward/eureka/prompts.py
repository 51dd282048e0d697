"""The chat messages of a search: the first prompt from the env context, and the feedback turn after it.

Only the last round of feedback is kept: iteration ``i`` sends ``[system, task, assistant: best code so far,
user: its reflection]`` -- never the whole history -- which keeps prompts short for a small local coder.

    >>> from llm_reward.eureka.context import EnvContext
    >>> ctx = EnvContext("CartPole-v1", "Keep the pole upright.", "obs[0] cart position", "Discrete(2)", "not fallen")
    >>> [m["role"] for m in initial_messages(ctx)]
    ['system', 'user']
"""

from __future__ import annotations

from llm_reward.eureka.context import EnvContext
from llm_reward.eureka.extract import SIGNATURE
from llm_reward.types import Messages

SYSTEM = (
    "You are a reward engineer. You write dense reward functions in Python that make reinforcement learning "
    "agents solve a task. Write exactly one function:\n"
    f"    def {SIGNATURE}\n"
    "obs is the observation before the action, next_obs the one after it, action the action taken (numpy), and "
    "info a dict of numbers. Return the total reward as a float and a dict naming each reward component. Use only "
    "`import numpy as np` and `import math`; no files, no other modules, no classes, no printing. Index the "
    "observation exactly as documented. Keep every component on a comparable scale. Reply with one ```python "
    "code block and nothing else. The format, for a different task:\n"
    "```python\nimport numpy as np\n\ndef compute_reward(obs, action, next_obs, info):\n"
    "    distance = float(np.linalg.norm(next_obs[0:2] - next_obs[2:4]))\n"
    "    reach = float(np.exp(-distance / 0.1))\n"
    "    effort = -0.01 * float(np.sum(np.square(action)))\n"
    "    return reach + effort, {\"reach\": reach, \"effort\": effort}\n```")

TIPS = (
    "Use this to write a better reward: a component whose values barely change cannot guide the agent (rescale "
    "it, e.g. with np.exp(-d / temperature), or replace it); a component much larger than the others drowns them "
    "(scale it down); if the task score stays low, reward progress toward success more directly. Write a new, "
    "complete compute_reward.")


def initial_messages(context: EnvContext) -> Messages:
    """``[system, user]``: the contract, then the env context and the request."""
    task = (f"{context.as_text()}\n\nWrite compute_reward for this task. The dense reward should lead the agent "
            f"to success as defined above.")
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": task}]


def feedback_messages(context: EnvContext, code: str, feedback: str) -> Messages:
    """The first prompt, then the chosen code as the assistant's turn and its feedback as the next user turn."""
    return [*initial_messages(context),
            {"role": "assistant", "content": f"```python\n{code.strip()}\n```"},
            {"role": "user", "content": feedback}]


def failure_feedback(reason: str) -> str:
    """What a candidate that did not run is told (the one-line reason from the allow-list, smoke test or trainer)."""
    return (f"This reward function could not be used: {reason}\nFix the problem and write the complete "
            f"compute_reward again, following the rules and the observation layout exactly.")


def repair_messages(messages: Messages, reply: str, reason: str) -> Messages:
    """A repair turn: the prompt, the coder's failed reply, and the one-line reason it could not be used."""
    return [*messages, {"role": "assistant", "content": reply}, {"role": "user", "content": failure_feedback(reason)}]
