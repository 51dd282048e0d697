"""LLM judges read from choice probabilities: the one home of pairwise, pointwise and 1-10 scoring judgements.

* :class:`PairwiseJudge` — P(first preferred) = the judge's probability of answering "1" rather than "2", asked in
  **both orders** and averaged (a small judge's first-order answer is mostly position bias), with the
  position-consistency rate kept; optionally a chain of thought first (a rationale is decoded, then the verdict is
  read from probabilities in the same conversation).
* :class:`PointwiseScorer` — P(yes) for one item at a time ("1" for yes, "2" for no), each distinct item asked once.
* :class:`ScoreJudge` — probabilities over the scores 1..10 -> expected score -> rescaled to [-1, 1] (RLAIF's
  direct reward; "10" is two tokens in most tokenizers, which the LLM layer's ``choice_probs`` accounts for).

What is judged (caption pairs of a game, answers to a user's prompt) is only the template: any object with
``verdict(first, second, context)`` (and ``rationale``/``after_rationale`` for chain of thought) serves the pairwise
judge, so Motif's caption labeler and the text-RLAIF judge are this code with different prompts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

import numpy as np

from llm_reward.llm.base import LLM
from llm_reward.llm.errors import LLMCapabilityError, LLMOutputError
from llm_reward.types import LabelBatch, Messages
from llm_reward.types import position_consistency  # noqa: F401 (re-exported: its home was here)

PAIR_CHOICES = ("1", "2")
SCORE_CHOICES = tuple(str(i) for i in range(1, 11))


def both_order_labels(pairs: Sequence[tuple[str, str]], judge_ordered: Callable[[list[int], list[tuple[str, str]]],
                      tuple[np.ndarray, int]], *, both_orders: bool = True) -> LabelBatch:
    """Judge each pair as given and (``both_orders``) swapped, and average the two into P(first preferred).

    ``judge_ordered(indices, ordered_pairs)`` returns P(first of the ordered pair preferred) per ordered pair (NaN =
    no verdict) and a retry count; ``indices`` name the original pair of each ordered one (for per-pair context).
    Identical items are a tie by definition and never reach the judge (Motif). Where one order has no verdict, the
    other order alone is the label.

    Example:
        >>> batch = both_order_labels([("a", "b")], lambda idx, op: (np.array([0.9, 0.3]), 0))
        >>> round(float(batch.label[0]), 6)  # (0.9 + (1 - 0.3)) / 2
        0.8
    """
    n = len(pairs)
    forward = np.full(n, np.nan, dtype=np.float32)
    reverse = np.full(n, np.nan, dtype=np.float32)
    asked = [i for i, (a, b) in enumerate(pairs) if a != b]
    indices, ordered = list(asked), [tuple(pairs[i]) for i in asked]
    if both_orders:
        indices += asked
        ordered += [(b, a) for a, b in ordered]
    judged, retries = judge_ordered(indices, ordered) if ordered else (np.zeros(0, dtype=np.float32), 0)
    judged = np.asarray(judged, dtype=np.float32)
    forward[asked] = judged[: len(asked)]
    if both_orders:
        reverse[asked] = 1.0 - judged[len(asked):]
    label = np.where(np.isnan(forward), reverse, np.where(np.isnan(reverse), forward, (forward + reverse) / 2))
    identical = np.ones(n, dtype=bool)
    identical[asked] = False
    label[identical] = 0.5
    return LabelBatch(label.astype(np.float32), forward, reverse, llm_prompts=len(ordered), retries=retries)


class PairTemplate(Protocol):
    """Renders one ordered pair for a judge. ``context`` is what both items answer (a user prompt), or None."""

    def verdict(self, first: str, second: str, context: str | None = None) -> Messages:
        """Messages whose reply is a single "1" or "2"."""

    def rationale(self, first: str, second: str, context: str | None = None) -> Messages:
        """Messages asking for a comparison without a verdict (chain of thought only)."""

    @property
    def after_rationale(self) -> str:
        """The user turn after the rationale that asks for the single digit."""


@dataclass
class PairwiseJudge:
    """P(first preferred) from the choice probabilities of "1" vs "2", both orders averaged.

    Example:
        >>> from llm_reward.llm import make_llm
        >>> from llm_reward.feedback.text_prompts import ResponsePairPrompt
        >>> judge = PairwiseJudge(make_llm("local"), ResponsePairPrompt())  # doctest: +SKIP
        >>> batch = judge.label([("Go down the stairs.", "banana")],
        ...                     contexts=["You see stairs. What now?"])  # doctest: +SKIP
        >>> batch.label, batch.position_consistency  # doctest: +SKIP
        (array([0.97], dtype=float32), 1.0)
    """

    llm: LLM
    template: PairTemplate
    both_orders: bool = True
    chain_of_thought: bool = False
    rationale_tokens: int = 96  # decoded greedily (RLAIF: sampling several rationales hurt)

    def __call__(self, pairs: Sequence[tuple[str, str]], contexts: Sequence[str | None] | None = None) -> np.ndarray:
        return self.label(pairs, contexts).label

    @property
    def fingerprint(self) -> dict[str, object]:
        return {"llm": self.llm.name, "kind": "pairwise", "template": _describe(self.template),
                "both_orders": self.both_orders, "chain_of_thought": self.chain_of_thought,
                "rationale_tokens": self.rationale_tokens if self.chain_of_thought else None}

    def label(self, pairs: Sequence[tuple[str, str]], contexts: Sequence[str | None] | None = None) -> LabelBatch:
        """Labels (and both orders apart) for ``pairs``; ``contexts[i]`` is the prompt both items of pair i answer."""
        if contexts is not None and len(contexts) != len(pairs):
            raise ValueError(f"{len(contexts)} contexts for {len(pairs)} pairs")

        def judge_ordered(indices: list[int], ordered: list[tuple[str, str]]) -> tuple[np.ndarray, int]:
            ctx = [None if contexts is None else contexts[i] for i in indices]
            conversations = [self.template.verdict(a, b, c) for (a, b), c in zip(ordered, ctx)]
            if self.chain_of_thought:
                asks = [self.template.rationale(a, b, c) for (a, b), c in zip(ordered, ctx)]
                rationales = self.llm.complete_batch(asks, max_tokens=self.rationale_tokens, temperature=0.0,
                                                     allow_empty=True)
                conversations = [ask + [{"role": "assistant", "content": r.strip()},
                                        {"role": "user", "content": self.template.after_rationale}]
                                 for ask, r in zip(asks, rationales)]
            probs = self.llm.choice_probs_batch(conversations, list(PAIR_CHOICES))
            return np.array([p["1"] for p in probs], dtype=np.float32), 0

        return both_order_labels(pairs, judge_ordered, both_orders=self.both_orders)

    def check(self) -> None:
        """Ask one real question (cache bypassed): raises :class:`LLMCapabilityError` if no probabilities come back."""
        _probe(self.llm, self.template.verdict("Yes.", "No.", "Say yes."), PAIR_CHOICES)


@dataclass
class PointwiseScorer:
    """P(yes) for single items, read from the probabilities of "1" (yes) vs "2" (no); each distinct item asked once.

    ``render(item)`` builds the question for one item, e.g. ``CaptionPrompt("nethack", goal).rlaif``.

    Example:
        >>> from llm_reward.llm import make_llm
        >>> from llm_reward.feedback.prompts import CaptionPrompt
        >>> scorer = PointwiseScorer(make_llm("local"), CaptionPrompt("nethack", None).rlaif)  # doctest: +SKIP
        >>> scorer.yes_probs(["You kill the newt!", "It's a wall."])  # doctest: +SKIP
        array([0.81, 0.12])
    """

    llm: LLM
    render: Callable[[str], Messages]
    prompts_sent: int = field(default=0, init=False)

    def yes_probs(self, items: Sequence[str]) -> np.ndarray:
        """float64 P(yes) per item, in order (repeats are asked once)."""
        unique = list(dict.fromkeys(items))
        if not unique:
            return np.zeros(0, dtype=np.float64)
        probs = self.llm.choice_probs_batch([self.render(item) for item in unique], list(PAIR_CHOICES))
        self.prompts_sent += len(unique)
        table = {item: float(p["1"]) for item, p in zip(unique, probs)}
        return np.array([table[item] for item in items], dtype=np.float64)

    def check(self) -> None:
        _probe(self.llm, self.render("You see a wall."), PAIR_CHOICES)


def bradley_terry_labels(yes_first: np.ndarray, yes_second: np.ndarray) -> np.ndarray:
    """Pair labels from pointwise answers: ``sigmoid(logit P(yes | a) - logit P(yes | b))``, float32.

    Example:
        >>> bradley_terry_labels(np.array([0.8]), np.array([0.5])).round(2)
        array([0.8], dtype=float32)
    """
    return sigmoid(logit(yes_first) - logit(yes_second)).astype(np.float32)


def logit(p: np.ndarray | float) -> np.ndarray:
    """``log(p / (1 - p))`` in float64, ``p`` clipped to [1e-6, 1 - 1e-6] so a certain answer stays finite.

    Example:
        >>> float(logit(0.5)), bool(np.isfinite(logit(1.0)))
        (0.0, True)
    """
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.log(p) - np.log1p(-p)


def sigmoid(x: np.ndarray | float) -> np.ndarray:
    """``1 / (1 + exp(-x))`` in float64, the inverse of :func:`logit`.

    Example:
        >>> float(sigmoid(0.0)), round(float(sigmoid(logit(0.8))), 6)
        (0.5, 0.8)
    """
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


class ScoreTemplate(Protocol):
    def score(self, response: str, context: str | None = None) -> Messages:
        """Messages whose reply is a single score 1..10."""


@dataclass
class ScoreJudge:
    """RLAIF's direct reward: ``s = sum_i i * P(i)`` over the scores 1..10, rescaled to ``2 (s - 1) / 9 - 1`` in
    [-1, 1].

    Example:
        >>> from llm_reward.llm import make_llm
        >>> from llm_reward.feedback.text_prompts import ResponseScorePrompt
        >>> judge = ScoreJudge(make_llm("local"), ResponseScorePrompt())  # doctest: +SKIP
        >>> judge.scores(["Drink the healing potion now."],
        ...              contexts=["You have 2 of 30 HP. What should I do?"])  # doctest: +SKIP
        array([0.55])
    """

    llm: LLM
    template: ScoreTemplate
    prompts_sent: int = field(default=0, init=False)

    @property
    def fingerprint(self) -> dict[str, object]:
        return {"llm": self.llm.name, "kind": "score_1_10", "template": _describe(self.template)}

    def probabilities(self, responses: Sequence[str], contexts: Sequence[str | None] | None = None) -> np.ndarray:
        """``[N, 10]`` probabilities of the scores 1..10 (each row sums to 1)."""
        if contexts is not None and len(contexts) != len(responses):
            raise ValueError(f"{len(contexts)} contexts for {len(responses)} responses")
        contexts = list(contexts) if contexts is not None else [None] * len(responses)
        if not responses:
            return np.zeros((0, len(SCORE_CHOICES)))
        probs = self.llm.choice_probs_batch([self.template.score(r, c) for r, c in zip(responses, contexts)],
                                            list(SCORE_CHOICES))
        self.prompts_sent += len(responses)
        return np.array([[p[c] for c in SCORE_CHOICES] for p in probs], dtype=np.float64)

    def expected_scores(self, responses: Sequence[str], contexts: Sequence[str | None] | None = None) -> np.ndarray:
        """Expected score in [1, 10]."""
        return expected_score(self.probabilities(responses, contexts))

    def scores(self, responses: Sequence[str], contexts: Sequence[str | None] | None = None) -> np.ndarray:
        """Rewards in [-1, 1] (1 -> -1, 10 -> +1)."""
        return rescale_score(self.expected_scores(responses, contexts))

    def check(self) -> None:
        _probe(self.llm, self.template.score("Yes.", "Say yes."), SCORE_CHOICES)


def expected_score(probs: np.ndarray) -> np.ndarray:
    """``sum_i i * P(i)`` for rows of probabilities over the scores 1..K.

    Example:
        >>> expected_score(np.array([[0.5] + [0.0] * 8 + [0.5]]))  # half on 1, half on 10
        array([5.5])
    """
    probs = np.asarray(probs, dtype=np.float64)
    return probs @ np.arange(1, probs.shape[-1] + 1, dtype=np.float64)


def rescale_score(score: np.ndarray, low: float = 1.0, high: float = 10.0) -> np.ndarray:
    """Map [low, high] linearly to [-1, 1]."""
    return 2.0 * (np.asarray(score, dtype=np.float64) - low) / (high - low) - 1.0


def _probe(llm: LLM, messages: Messages, choices: Sequence[str]) -> None:
    """One uncached choice-probability call, so a judge that cannot give probabilities fails before any work."""
    cache, llm.cache = getattr(llm, "cache", None), None
    try:
        llm.choice_probs_batch([messages], list(choices))
    except LLMOutputError as err:
        raise LLMCapabilityError(f"judge {llm.name} gives no usable probabilities over {list(choices)}: {err}") from err
    finally:
        llm.cache = cache


def _describe(template: object) -> str:
    """A template's identity for fingerprints: its class and version (or repr)."""
    version = getattr(template, "version", None)
    return f"{type(template).__name__}:{version}" if version else repr(template)
