"""The chat messages of a search: the first prompt from the env context, and the feedback turn after it.

Only the last round of feedback is kept: iteration ``i`` sends ``[system, task, assistant: best code so far,
user: its reflection]`` -- never the whole history -- which keeps prompts short for a small local coder.

The system message states the contract, what makes a dense reward work (progress, costs rather than positive
per-step rewards, milestones, a success bonus; in words that name no task, since the blind control gets them too)
and a format example chosen by the action space: a small coder copies the example's terms, so an effort penalty
appears in it only where actions are continuous.

    >>> from llm_reward.eureka.context import EnvContext
    >>> ctx = EnvContext("CartPole-v1", "Keep the pole upright.", "obs[0] cart position", "Discrete(2)", "not fallen")
    >>> [m["role"] for m in initial_messages(ctx)]
    ['system', 'user']
    >>> "effort" in initial_messages(ctx)[0]["content"]
    False
"""

from __future__ import annotations

import re

from llm_reward.eureka.context import EnvContext
from llm_reward.eureka.extract import SIGNATURE
from llm_reward.identity import digest
from llm_reward.types import Messages

_CONTRACT = (
    "You are a reward engineer. You write dense reward functions in Python that make reinforcement learning "
    "agents solve a task. Write exactly one function:\n"
    f"    def {SIGNATURE}\n"
    "obs is the observation before the action, next_obs the one after it, action the action taken (numpy), and "
    "info a dict of numbers about the state after the action. Return the total reward as a float and a dict naming "
    "each reward component. Use only `import numpy as np` and `import math`; no files, no other modules, no "
    "classes, no printing. Index the observation exactly as documented.\n")

#: What makes a dense reward work, in words that name no task: the blind control is sent them too.
PRINCIPLES = (
    "What makes a dense reward work:\n"
    "- Reward progress: how much the step reduced the distance to the current subgoal (obs vs next_obs), or minus "
    "that distance. A task in stages has one subgoal per stage, in order.\n"
    "- Mind how episodes end. Where reaching the goal ends one, every per-step term but progress must be zero or "
    "negative, a cost for what is still missing: a positive reward on every step pays the agent not to finish. "
    "Where failing ends one (falling over), the reverse: a cost on every step pays the agent to fail early.\n"
    "- A milestone reached lowers that cost on every later step (a constant cost while it is missing), or is paid "
    "once, on the step it changes between obs and next_obs. Pay a large bonus for success; keep the other "
    "components on a comparable scale.\n")

#: The format example's lines, for a different task; the action penalty only where actions are continuous.
_EXAMPLE_HEAD = (
    "```python\nimport numpy as np\n\ndef compute_reward(obs, action, next_obs, info):\n"
    "    distance = float(np.linalg.norm(next_obs[0:2] - next_obs[2:4]))\n"
    "    progress = float(np.linalg.norm(obs[0:2] - obs[2:4])) - distance\n"
    "    cost = -0.01 * distance\n"
    "    success = 10.0 if distance < 0.05 else 0.0\n")
_EXAMPLE_DISCRETE = (
    "    return progress + cost + success, {\"progress\": progress, \"cost\": cost, \"success\": success}\n```")
_EXAMPLE_CONTINUOUS = (
    "    effort = -0.01 * float(np.sum(np.square(action)))\n"
    "    return progress + cost + success + effort, {\"progress\": progress, \"cost\": cost, \"success\": success, "
    "\"effort\": effort}\n```")
#: The format example where the context describes info keys (MiniGrid's grid state), written with the context's own
#: position keys: a small coder copied the observation example's ``obs[0:2]`` into an image of ids, and an example
#: with another task's info keys (``hand_x``) into a KeyError it kept through every repair.
_EXAMPLE_INFO = (
    "```python\nimport numpy as np\n\ndef compute_reward(obs, action, next_obs, info):\n"
    "    a = np.array([info[\"{a}_x\"], info[\"{a}_y\"]], dtype=float)\n"
    "    b = np.array([info[\"{b}_x\"], info[\"{b}_y\"]], dtype=float)\n"
    "    distance = float(np.linalg.norm(b - a))\n"
    "    cost = -0.01 * distance\n"
    "    reached = 10.0 if distance == 0 else 0.0\n")
_EXAMPLE_INFO_DISCRETE = (
    "    return cost + reached, {{\"cost\": cost, \"reached\": reached}}\n```")
_EXAMPLE_INFO_CONTINUOUS = (
    "    effort = -0.01 * float(np.sum(np.square(action)))\n"
    "    return cost + reached + effort, {{\"cost\": cost, \"reached\": reached, \"effort\": effort}}\n```")
_FOREIGN_FORMAT = "The format, for a different task:\n"
_INFO_FORMAT = ("The format, reading this task's info keys (which terms the reward needs, and their scales, are "
                "yours to decide):\n")
_ACTIONS_DISCRETE = ("The actions are discrete: an action is an index, not a force, so never penalise its value. "
                     "Reply with one ```python code block and nothing else. The format, for a different task:\n")
_ACTIONS_CONTINUOUS = ("The actions are continuous: a small penalty on their squared size (effort) keeps them "
                       "smooth. Reply with one ```python code block and nothing else. The format, for a different "
                       "task:\n")

TIPS = (
    "Use this to write a better reward: a component whose values barely change cannot guide the agent (rescale "
    "it, or reward its change from obs to next_obs; np.exp(-d / temperature) suits a continuous distance that "
    "must matter most near the target, not a count of cells); a component much larger than the others drowns "
    "them (scale it down); where reaching the goal ends an episode and most episodes run out of time, a positive "
    "per-step term pays the agent not to finish (make it a cost); if the task score stays low, reward progress "
    "toward the next subgoal more directly. Write a new, complete compute_reward.")


def continuous_actions(context: EnvContext) -> bool:
    """Whether the context's action space is continuous (a Gymnasium ``Box``); discrete, multi-discrete and
    binary actions are indices, and an effort penalty on them would only teach the agent to prefer low ids."""
    return context.action.lstrip().startswith("Box")


def position_keys(context: EnvContext) -> list[str]:
    """The objects whose position the context describes as two info keys (``agent`` for ``agent_x``/``agent_y``),
    in the context's order; the blind control's context describes none."""
    described = [k for k in context.info_meanings if k in context.info_keys]
    return [k[:-2] for k in described if k.endswith("_x") and f"{k[:-2]}_y" in described]


def system_prompt(context: EnvContext) -> str:
    """The contract, what makes a dense reward work, and a format example for the context's kind of actions.

    Args:
        context: the env context; only its action space and whether it describes info keys are read (the blind
            control's context has the action space, and no info keys).

    Returns:
        The system message's text: the example penalises effort only for continuous actions, and reads positions
        from info where the context describes info keys.
    """
    continuous = continuous_actions(context)
    actions = _ACTIONS_CONTINUOUS if continuous else _ACTIONS_DISCRETE
    objects = position_keys(context)
    if len(objects) >= 2:  # the first two objects with a position: the agent and the first other one
        example = (_EXAMPLE_INFO + (_EXAMPLE_INFO_CONTINUOUS if continuous else _EXAMPLE_INFO_DISCRETE)).format(
            a=objects[0], b=objects[1])
        return _CONTRACT + PRINCIPLES + actions.replace(_FOREIGN_FORMAT, _INFO_FORMAT) + example
    example = _EXAMPLE_HEAD + (_EXAMPLE_CONTINUOUS if continuous else _EXAMPLE_DISCRETE)
    return _CONTRACT + PRINCIPLES + actions + example


_FAILURE = ("This reward function could not be used: {reason}\nFix the problem and write the complete "
            "compute_reward again, following the rules and the observation layout exactly.")

#: (pattern of a one-line failure reason, what it means for the coder): the small coder repeats a mistake it is
#: told only the exception of, so the repair turn says what went wrong in the terms of the contract.
HINTS: tuple[tuple[str, str], ...] = (
    (r"for [-+*/]+: '(tuple|list)'|'(tuple|list)' and '|not '(tuple|list)'|is (tuple|list), not a float",
     "info values are numbers; tuples cannot be subtracted: a position is two numbers, so build "
     "np.array([x, y]) from them to subtract positions, and return plain floats."),
    (r"'(int|float|bool)' object is not (subscriptable|iterable)|non-iterable (int|float|bool)",
     "info values are single numbers, not pairs or lists: do not index or unpack them; a position is two keys, "
     "x and y."),
    (r"^KeyError", "that key is not in info: use only the info keys listed in the task, spelled exactly."),
    (r"import (of|from) .* is not allowed",
     "use only `import numpy as np` and `import math`; write any other helper yourself."),
    (r"out of bounds|too many indices|IndexError",
     "index the observation only as documented; where info keys are listed, read positions from info, not "
     "from the observation."),
    (r"truth value of an array|could not be broadcast|is ndarray, not a float",
     "the reward and each component must be one float: compare and combine numbers (from info, or single "
     "entries of the observation), not whole arrays; np.where and comparisons of arrays return arrays."),
    (r"is (NoneType|str|dict), not a float|returned NoneType",
     "return (total, {name: value}) with every value a float."),
)


def repair_hint(reason: str) -> str | None:
    """What a one-line failure reason means for the coder, where it is a common mistake (None otherwise).

    >>> repair_hint("TypeError: unsupported operand type(s) for -: 'tuple' and 'tuple' (line 4)")[:52]
    'info values are numbers; tuples cannot be subtracted'
    >>> repair_hint("NameError: name 'x' is not defined") is None
    True
    """
    for pattern, hint in HINTS:
        if re.search(pattern, reason or ""):
            return hint
    return None


#: The repair turn (the failed reply is not in it: see :func:`repair_messages`).
_REPAIR = ("An earlier reply to this request could not be used: {reason}{line}\nWrite compute_reward again, "
           "from the start, avoiding that mistake and following the rules and the observation layout exactly.")


#: A digest of every prompt text: part of a search's identity, so a run directory written with other prompts is
#: never resumed as this search (its stored replies answer those prompts).
PROMPTS_DIGEST = digest([_CONTRACT, PRINCIPLES, _EXAMPLE_HEAD, _EXAMPLE_DISCRETE, _EXAMPLE_CONTINUOUS,
                         _EXAMPLE_INFO, _EXAMPLE_INFO_DISCRETE, _EXAMPLE_INFO_CONTINUOUS, _INFO_FORMAT,
                         _ACTIONS_DISCRETE, _ACTIONS_CONTINUOUS, TIPS, _FAILURE, _REPAIR,
                         [list(h) for h in HINTS]])


def initial_messages(context: EnvContext) -> Messages:
    """``[system, user]``: the contract, then the env context and the request."""
    task = (f"{context.as_text()}\n\nWrite compute_reward for this task. The dense reward should lead the agent "
            f"to success as defined above.")
    return [{"role": "system", "content": system_prompt(context)}, {"role": "user", "content": task}]


def feedback_messages(context: EnvContext, code: str, feedback: str) -> Messages:
    """The first prompt, then the chosen code as the assistant's turn and its feedback as the next user turn."""
    return [*initial_messages(context),
            {"role": "assistant", "content": f"```python\n{code.strip()}\n```"},
            {"role": "user", "content": feedback}]


def _meaning(reason: str) -> str:
    """``"\nThat is: <hint>"`` where the reason is a common mistake (:func:`repair_hint`), else ``""``."""
    hint = repair_hint(reason)
    return f"\nThat is: {hint}" if hint else ""


def failure_feedback(reason: str) -> str:
    """What a candidate that did not run is told: the one-line reason from the allow-list, smoke test or trainer,
    and what it means where it is a common mistake (:func:`repair_hint`)."""
    return _FAILURE.format(reason=reason + _meaning(reason))


def repair_messages(messages: Messages, reason: str, code: str | None = None) -> Messages:
    """A repair turn: the prompt, then the one-line reason the failed reply could not be used (what it means, where
    it is a common mistake, and the failing line where the reason names one of ``code``), asking for the function
    anew. The failed reply itself is not sent back as the assistant's turn: shown its own reply, the 1.5B coder
    repeated it verbatim at the repair's new seed whatever the reason said (DoorKey-8x8, two repairs of two)."""
    line = ""
    number = re.search(r"\bline (\d+)", reason or "")
    lines = (code or "").splitlines()
    if number and 0 < int(number[1]) <= len(lines) and lines[int(number[1]) - 1].strip():
        line = f"\nThe failing line: `{lines[int(number[1]) - 1].strip()[:200]}`"
    return [*messages, {"role": "user", "content": _REPAIR.format(reason=reason, line=line + _meaning(reason))}]
