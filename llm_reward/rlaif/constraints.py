"""Verifiable instructions (IFEval-style) and their programmatic checker: the ground truth beside the judge.

A prompt can carry constraints such as ``max_words:25`` or ``no_commas``; the policy sees the prompt followed by one
instruction sentence per constraint, the judge sees exactly what the policy saw (it is never shown the checker),
and :func:`checker_success` scores an answer by the fraction of its constraints it meets. Training on a judge's
opinion and measuring with this checker is what tells "the policy got better" apart from "the judge likes it more".

Constraint specs are ``kind`` or ``kind:argument``:

================  ===========================================================  =========================
spec              instruction the policy reads                                 met when
================  ===========================================================  =========================
max_words:N       Answer in at most N words.                                   1 <= words <= N
min_words:N       Answer in at least N words.                                  words >= N
include_word:W    Use the word "W" in your answer.                             W appears as a word
bullets:K         Give exactly K bullet points (lines starting with "- ").     exactly K such lines
end_question      End your answer with a question.                             last character is "?"
no_commas         Do not use any commas.                                       no "," and not empty
lowercase         Write your whole answer in lowercase letters.                has letters, none upper
one_sentence      Answer in exactly one sentence.                              one sentence end, at end
================  ===========================================================  =========================
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Sequence

_WORD = re.compile(r"[A-Za-z0-9']+")
_BULLET = re.compile(r"^\s*[-*\u2022]\s+\S", re.MULTILINE)
KINDS = ("max_words", "min_words", "include_word", "bullets", "end_question", "no_commas", "lowercase",
         "one_sentence")
NEEDS_NUMBER = ("max_words", "min_words", "bullets")


class ConstraintError(ValueError):
    """A constraint spec the checker does not know, or a bad argument (raised before any model is loaded)."""


@dataclass(frozen=True)
class Constraint:
    """One verifiable instruction.

    Example:
        >>> c = parse_constraint("max_words:5")
        >>> c.instruction
        'Answer in at most 5 words.'
        >>> c.check("Drink the potion now."), c.check("Drink the healing potion right now please.")
        (True, False)
    """

    kind: str
    arg: str | int | None = None

    @property
    def spec(self) -> str:
        return self.kind if self.arg is None else f"{self.kind}:{self.arg}"

    @property
    def instruction(self) -> str:
        return {
            "max_words": f"Answer in at most {self.arg} words.",
            "min_words": f"Answer in at least {self.arg} words.",
            "include_word": f'Use the word "{self.arg}" in your answer.',
            "bullets": f'Give exactly {self.arg} bullet points, each on its own line starting with "- ".',
            "end_question": "End your answer with a question.",
            "no_commas": "Do not use any commas.",
            "lowercase": "Write your whole answer in lowercase letters.",
            "one_sentence": "Answer in exactly one sentence.",
        }[self.kind]

    def check(self, answer: str) -> bool:
        """Whether ``answer`` meets this constraint (an empty answer meets none)."""
        text = answer.strip()
        if not text:
            return False
        words = _WORD.findall(text)
        if self.kind == "max_words":
            return 1 <= len(words) <= int(self.arg)
        if self.kind == "min_words":
            return len(words) >= int(self.arg)
        if self.kind == "include_word":
            return re.search(rf"\b{re.escape(str(self.arg))}\b", text, flags=re.IGNORECASE) is not None
        if self.kind == "bullets":
            return len(_BULLET.findall(text)) == int(self.arg)
        if self.kind == "end_question":
            return text.endswith("?")
        if self.kind == "no_commas":
            return "," not in text
        if self.kind == "lowercase":
            return any(ch.isalpha() for ch in text) and text == text.lower()
        if self.kind == "one_sentence":  # one run of sentence-ending marks, at the very end
            ends = re.findall(r"[.!?]+(?=\s|$)", text)
            return len(ends) == 1 and re.search(r"[.!?]+$", text) is not None and "\n" not in text
        raise ConstraintError(f"unknown constraint kind {self.kind!r}")  # parse_constraint keeps this unreachable


def parse_constraint(spec: str, key: str = "constraints") -> Constraint:
    """``"kind"`` or ``"kind:argument"`` -> :class:`Constraint`; unknown kinds and bad arguments raise, naming ``key``.

    Example:
        >>> parse_constraint("include_word:potion").check("Quaff the Potion.")
        True
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ConstraintError(f"{key}: a constraint must be a non-empty string like 'max_words:20', got {spec!r}")
    kind, _, arg = spec.strip().partition(":")
    if kind not in KINDS:
        raise ConstraintError(f"{key}: unknown constraint {spec!r}; the checker knows {list(KINDS)}")
    if kind in NEEDS_NUMBER:
        if not arg.isdigit() or int(arg) < 1:
            raise ConstraintError(f"{key}: {kind} needs a positive whole number, e.g. '{kind}:3', got {spec!r}")
        return Constraint(kind, int(arg))
    if kind == "include_word":
        if not _WORD.fullmatch(arg or ""):
            raise ConstraintError(f"{key}: include_word needs one word, e.g. 'include_word:potion', got {spec!r}")
        return Constraint(kind, arg)
    if arg:
        raise ConstraintError(f"{key}: {kind} takes no argument, got {spec!r}")
    return Constraint(kind)


def render_prompt(question: str, constraints: Sequence[Constraint]) -> str:
    """The text the policy (and the judge) reads: the question, then one instruction sentence per constraint."""
    if not constraints:
        return question.strip()
    return question.strip() + "\n\n" + " ".join(c.instruction for c in constraints)


def checker_success(answer: str, constraints: Sequence[Constraint]) -> float:
    """Fraction of ``constraints`` that ``answer`` meets (NaN for a prompt without constraints).

    Example:
        >>> cs = [parse_constraint("no_commas"), parse_constraint("end_question")]
        >>> checker_success("Go left, then?", cs), checker_success("Go left then?", cs)
        (0.5, 1.0)
    """
    if not constraints:
        return float("nan")
    return sum(c.check(answer) for c in constraints) / len(constraints)


# -- the shipped instruction prompts: every shipped question with two constraints ---------------------------------

WORDS = ("first", "safe", "because", "careful", "next", "now", "simple", "quickly")
# Constraints that read sensibly after any shipped question (several shipped questions already ask for one or two
# sentences, so bullet lists are left to user files).
POOL = ("max_words:{n}", "include_word:{w}", "end_question", "no_commas", "lowercase", "one_sentence")


def assign_constraints(question: str, n: int = 2) -> tuple[Constraint, ...]:
    """``n`` different constraints for ``question``, chosen by a hash of its text (stable across machines).

    Example:
        >>> [c.spec for c in assign_constraints("What does a thermometer measure?")] == [
        ...     c.spec for c in assign_constraints("What does a thermometer measure?")]
        True
    """
    digest = hashlib.sha256(question.encode()).digest()
    order = sorted(range(len(POOL)), key=lambda i: digest[i])
    chosen = [POOL[i] for i in order[:n]]
    max_words = (12, 15, 20, 25)[digest[8] % 4]
    word = WORDS[digest[9] % len(WORDS)]
    return tuple(parse_constraint(s.format(n=max_words, w=word)) for s in chosen)
