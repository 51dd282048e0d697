"""Prompts that ask an LLM which of two captions shows more progress, and the parsing of its verdict.

Two styles share one pair template:

* **Motif** (free text): the judge may reason first and must end with ``Verdict: 1``, ``Verdict: 2`` or
  ``Verdict: none``; the *last* verdict in the answer counts, because a chain of thought often quotes the key early.
* **RLAIF** (choice probabilities): the answer is a single ``1`` or ``2`` and the soft label is read from the
  probabilities of those two tokens.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from llm_reward.types import Messages

#: Goal sentences per domain. "default" of a domain without an entry falls back to the env adapter's goal.
GOALS: dict[str, dict[str, str]] = {
    "nethack": {
        "default": "The goal is to maximize the in-game score: kill monsters, collect gold, and go down the "
        "dungeon as far as possible.",
        "combat": "The goal is to fight and kill as many monsters as possible.",
        "gold": "The goal is to collect as much gold as possible.",
        "stairs": "The goal is to find the staircase and go down to deeper dungeon levels as fast as possible.",
    },
}
ZERO_KNOWLEDGE = "zero_knowledge"

_DOMAIN_NAMES = {"nethack": "NetHack", "minigrid": "a MiniGrid gridworld",
                 # robotic sims (llm_reward.envs.robotics): the family is the package the env class comes from
                 "mujoco": "a MuJoCo robot simulation", "fetch": "a Fetch robot-arm simulation",
                 "adroit": "an Adroit robotic-hand simulation", "maze": "a robot maze-navigation simulation",
                 "kitchen": "a Franka kitchen robot simulation", "shadow_hand": "a Shadow robotic-hand simulation"}

VERDICT_PATTERN = re.compile(r"verdict\W{0,6}(1|2|none)\b", re.IGNORECASE)
VERDICT_ONLY_REQUEST = (
    "Reply with your final verdict only, exactly one of: `Verdict: 1`, `Verdict: 2`, `Verdict: none`."
)


def goal_sentence(domain: str, variant: str = "default", env_goal: str | None = None) -> str | None:
    """Resolve a goal variant to the sentence put in the prompt (``None`` for zero-knowledge).

    ``variant`` is ``"default"``, ``"zero_knowledge"``, a domain-specific name (NetHack: ``combat``, ``gold``,
    ``stairs``) or free text starting with ``"text:"``.
    """
    if variant == ZERO_KNOWLEDGE:
        return None
    if variant.startswith("text:"):
        text = variant[len("text:"):].strip()
        if not text:
            raise ValueError("goal 'text:' needs a sentence after the colon")
        return text
    known = GOALS.get(domain, {})
    if variant in known:
        return known[variant]
    if variant == "default":
        if env_goal:
            return f"The goal is to {env_goal.rstrip('.')}."
        raise ValueError(f"domain {domain!r} has no default goal: pass the env's goal or goal='text:...'")
    choices = sorted({"default", ZERO_KNOWLEDGE, *known})
    raise ValueError(f"unknown goal variant {variant!r} for domain {domain!r}; choose one of {choices} or "
                     f"'text:<sentence>'")


@dataclass(frozen=True)
class PairPrompt:
    """Builds judge messages for one ordered caption pair.

    Args:
        domain: the env family whose captions are judged (``minigrid``, ``nethack``, ...): names the game.
        goal: the goal sentence the judge is told (:func:`goal_sentence`); None: no goal (zero-knowledge).
        chain_of_thought: let ``motif`` verdicts reason before answering.
        version: the wording's version (part of a label store's fingerprint).

    Example:
        >>> prompt = PairPrompt(domain="nethack", goal=goal_sentence("nethack", "gold"))
        >>> messages = prompt.rlaif("You see here 12 gold pieces.", "It's a wall.")
    """

    domain: str
    goal: str | None
    chain_of_thought: bool = True

    #: Bump when the wording changes: stores keyed on it refuse to mix labels from different prompts.
    version: str = "pair-v2"

    @property
    def game(self) -> str:
        """The game's name as the prompts say it ("NetHack", "a MiniGrid gridworld")."""
        return _DOMAIN_NAMES.get(self.domain, self.domain)

    def _system(self) -> dict[str, str]:
        return {"role": "system", "content": f"You are an honest judge of good play and progress in {self.game}."}

    def _pair_text(self, first: str, second: str) -> str:
        goal = f"{self.goal}\n" if self.goal else ""
        return (
            f"Here are two descriptions of moments while playing {self.game}. {goal}"
            f"Recall what you know about the game and decide which moment shows more progress.\n\n"
            f"Description 1:\n{first.strip()}\n\nDescription 2:\n{second.strip()}\n\n"
        )

    def motif(self, first: str, second: str) -> Messages:
        if self.chain_of_thought:
            ask = (
                "Analyse each description in one or two sentences, compare them, then end with your verdict on "
                "the last line: `Verdict: 1`, `Verdict: 2`, or `Verdict: none` if neither shows more progress."
            )
        else:
            ask = VERDICT_ONLY_REQUEST
        return [self._system(), {"role": "user", "content": self._pair_text(first, second) + ask}]

    def rlaif(self, first: str, second: str) -> Messages:
        # The question comes before the descriptions: everything up to "Description 1:" is then shared by all
        # prompts and decoded once (KV-prefix reuse), and on a 12-pair probe this layout was the most accurate
        # after both-order averaging (11/12 vs 9/12 with the question last).
        goal = f"{self.goal}\n" if self.goal else ""
        text = (
            f"Here are two descriptions of moments while playing {self.game}. {goal}"
            "Recall what you know about the game. Which description shows more progress? "
            "Answer with a single digit: 1 or 2.\n\n"
            f"Description 1:\n{first.strip()}\n\nDescription 2:\n{second.strip()}"
        )
        return [self._system(), {"role": "user", "content": text}]

    # -- the pairwise judge's template protocol (llm_reward.feedback.judges.PairTemplate) -------------------------
    def verdict(self, first: str, second: str, context: str | None = None) -> Messages:
        """The RLAIF prompt (a single "1" or "2" reply); captions need no per-pair context."""
        return self.rlaif(first, second)

    def rationale(self, first: str, second: str, context: str | None = None) -> Messages:
        ask = "Analyse each description in one or two sentences and compare them. Do not give a verdict yet."
        return [self._system(), {"role": "user", "content": self._pair_text(first, second) + ask}]

    @property
    def after_rationale(self) -> str:
        return "Which description shows more progress? Answer with a single digit: 1 or 2."


def parse_verdict(text: str) -> float | None:
    """P(first preferred) from a free-text answer: 1.0, 0.0, 0.5 for "none", ``None`` when no verdict is found."""
    matches = VERDICT_PATTERN.findall(text)
    if not matches:
        return None
    return {"1": 1.0, "2": 0.0}.get(matches[-1].lower(), 0.5)


@dataclass(frozen=True)
class CaptionPrompt:
    """Asks whether one caption shows progress (the pointwise question; ONI's per-caption labels for retrieval).

    Args:
        domain: the caption family the prompt names (``minigrid``, ``nethack``, an env adapter's ``family``).
        goal: the goal sentence (:func:`goal_sentence`), or None for zero knowledge.

    Example:
        >>> messages = CaptionPrompt("minigrid", "The goal is to open the door.").rlaif("You see a red door.")
        >>> [m["role"] for m in messages], messages[-1]["content"].endswith("1 for yes, 2 for no.")
        (['system', 'user'], True)
    """

    domain: str
    goal: str | None
    version: str = "caption-v1"

    def rlaif(self, caption: str) -> Messages:
        game = _DOMAIN_NAMES.get(self.domain, self.domain)
        goal = f"{self.goal}\n" if self.goal else ""
        return [
            {"role": "system", "content": f"You are an honest judge of good play and progress in {game}."},
            {"role": "user", "content": f"Here is a description of a moment while playing {game}. {goal}\n"
                                        f"Description:\n{caption.strip()}\n\n"
                                        "Does this moment show progress towards the goal? Answer with a single "
                                        "digit: 1 for yes, 2 for no."},
        ]
