"""Judge prompts for answers to a user's prompt (text RLAIF): pairwise "which answer is better" and a 1-10 score.

Layout follows RLAIF (Lee et al. 2023): a preamble (the task, plus an optional *constitution* of principles),
optional few-shot examples, the item(s), and an ending that asks for the single answer token. The verdict is read
from choice probabilities by :mod:`llm_reward.feedback.judges`, never parsed from text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from llm_reward.types import Messages

DEFAULT_CONSTITUTION = (
    "A good answer is helpful (it actually tells the user what to do), correct, specific to the situation, and "
    "concise. Padding, repetition, vague filler and answers that ignore the question are bad."
)


@dataclass(frozen=True)
class PairExample:
    """A worked pairwise example for few-shot prompts: ``better`` is 1 or 2."""

    prompt: str
    first: str
    second: str
    better: int


@dataclass(frozen=True)
class ScoreExample:
    """A worked scoring example for few-shot prompts: ``score`` in 1..10."""

    prompt: str
    response: str
    score: int


def _preamble(constitution: str | None) -> str:
    text = "You are a careful, impartial judge of answers written by an AI assistant."
    return f"{text}\n{constitution.strip()}" if constitution else text


@dataclass(frozen=True)
class ResponsePairPrompt:
    """Which of two answers to the same prompt is better; reply "1" or "2".

    One user turn, no system role: principles, question, the two answers on one line each, then the ask. With a
    system preamble and the ask first, Qwen2.5-Coder-1.5B answered "2" for every clear-cut pair in both orders;
    ``python benchmarks/rlaif_text.py --probe-judges`` checks this layout on such pairs, and every benchmark run
    reports the judges' position consistency.

    Example:
        >>> prompt = ResponsePairPrompt()
        >>> messages = prompt.verdict("Quaff the potion.", "I like trains.", context="HP 2/30. What now?")
        >>> messages[-1]["content"].endswith("Which answer is better, 1 or 2? Reply with the digit only.")
        True
    """

    constitution: str | None = DEFAULT_CONSTITUTION
    few_shot: Sequence[PairExample] = ()
    version: str = "response-pair-v2"

    def _body(self, first: str, second: str, context: str | None) -> str:
        principles = f"{self.constitution.strip()}\n\n" if self.constitution else ""
        shots = "".join(f"Question: {e.prompt}\n\nAnswer 1: {_line(e.first)}\nAnswer 2: {_line(e.second)}\n\n"
                        f"Better: {e.better}\n\n" for e in self.few_shot)
        question = f"Question: {context.strip()}\n\n" if context else ""
        return f"{principles}{shots}{question}Answer 1: {_line(first)}\nAnswer 2: {_line(second)}\n\n"

    def verdict(self, first: str, second: str, context: str | None = None) -> Messages:
        return [{"role": "user", "content": self._body(first, second, context)
                 + "Which answer is better, 1 or 2? Reply with the digit only."}]

    def rationale(self, first: str, second: str, context: str | None = None) -> Messages:
        return [{"role": "user", "content": self._body(first, second, context)
                 + "Compare the two answers in two or three sentences. Do not state a final verdict yet."}]

    @property
    def after_rationale(self) -> str:
        return "So which answer is better, 1 or 2? Reply with the digit only."


def _line(text: str) -> str:
    """An answer on one line, so the two answers read as a matched pair."""
    return " ".join(text.split()) or "(empty)"


@dataclass(frozen=True)
class ResponseScorePrompt:
    """How good one answer is, on a 1-10 scale; reply with the number.

    Example:
        >>> ResponseScorePrompt().score("Quaff the potion.", context="HP 2/30. What now?")[-1]["content"][-40:]
        'Reply with the number only, from 1 to 10.'
    """

    constitution: str | None = DEFAULT_CONSTITUTION
    few_shot: Sequence[ScoreExample] = ()
    version: str = "response-score-v1"

    def score(self, response: str, context: str | None = None) -> Messages:
        shots = "".join(f"Example:\nPrompt: {e.prompt}\nAnswer: {e.response}\nScore: {e.score}\n\n"
                        for e in self.few_shot)
        question = f"Prompt:\n{context.strip()}\n\n" if context else ""
        return [{"role": "system", "content": _preamble(self.constitution)},
                {"role": "user", "content": "Rate how well the answer responds to the prompt, from 1 (useless) "
                                            "to 10 (excellent).\n\n" + shots + question
                                            + f"Answer:\n{response.strip() or '(empty)'}\n\n"
                                              "Reply with the number only, from 1 to 10."}]
