"""Ways of asking a small judge about caption pairs, compared by ``benchmarks/judge_quality.py``.

Every strategy answers ``label(pairs) -> LabelBatch`` (P(first preferred), both orders kept apart where a pair is
shown in two orders) and has ``llm`` and ``fingerprint``, so the benchmark,
:func:`llm_reward.feedback.annotate.annotate` and the label store treat it like the library's labeler. Built on the
shared judges (:class:`~llm_reward.feedback.judges.PairwiseJudge`,
:class:`~llm_reward.feedback.judges.PointwiseScorer`, :class:`~llm_reward.feedback.judges.ScoreJudge`):

* pointwise — one question per distinct caption ("does this show progress?"), Bradley-Terry on the answers;
  ``_ensemble`` averages the logits of three wordings of the question; ``_fewshot`` shows exemplar answers first;
  ``_compact`` asks about the caption without walls and with step distances summed; ``_harm`` subtracts the
  logit of a second question ("is this moment bad for the player?");
* ``score10`` — RLAIF's 1-10 rating per caption, pairs ordered by expected score;
* ``pairwise_ref`` — "does this moment show more progress than the reference moment?" about each caption of
  the pair in turn, the other shown as the reference (:class:`ReferencePairPrompt`);
* pairwise — "which shows more progress, 1 or 2?" in both orders; with ``fewshot`` hand-written exemplar
  answers precede the question; with ``difference`` captions (:mod:`~llm_reward.feedback.caption_diff`) the judge
  sees only what differs, the mission once; ``calibration`` removes the judge's position prior
  (:mod:`~llm_reward.feedback.calibration`); ``chain_of_thought`` decodes a short comparison first;
* ``pairwise_copy`` — the judge answers by copying the description it prefers, not by naming a position (no "1"
  or "2" to be biased towards); ``_pmi`` divides out how likely each copy is when the question asks for either
  description (:class:`ContentPairStrategy`); ``_fewshot`` answers exemplar pairs by copying first; ``_bc``
  removes the batch's position prior as above.
* verdict (:class:`VerdictQuestion`, Motif's ``mode: motif``) — free-text answers, optionally reasoned, ending with
  ``Verdict: 1|2|none``.

The feedback modes are questions too (:func:`mode_question`): ``pointwise`` asks :class:`PointwiseQuestion`,
``rlaif`` :class:`PairQuestion`, ``motif`` :class:`VerdictQuestion`.

Example:
    >>> from llm_reward.llm import make_llm
    >>> judge = make_strategy("pairwise_diff_cf", make_llm("local"), domain="nethack", goal=None)  # doctest: +SKIP
    >>> judge.label([("You kill the newt!", "It's a wall.")]).label  # doctest: +SKIP
    array([0.93], dtype=float32)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from llm_reward.feedback import calibration
from llm_reward.feedback.caption_diff import VERSION as DIFF_VERSION
from llm_reward.feedback.caption_diff import compact, difference_pair
from llm_reward.feedback.judges import LabelBatch, PairwiseJudge, PointwiseScorer, ScoreJudge, both_order_labels
from llm_reward.feedback.prompts import VERDICT_ONLY_REQUEST, CaptionPrompt, PairPrompt, parse_verdict
from llm_reward.llm.base import LLM
from llm_reward.types import Messages

log = logging.getLogger(__name__)

#: Hand-written exemplars per domain (first, second, better side); answers balanced between "1" and "2". A domain
#: without any gets the few-shot strategies' question without exemplars (a warning says so).
EXEMPLARS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "minigrid": (
        ("You see a wall 1 step forward.", "You see a locked purple door 2 steps forward. You carry a purple key.",
         "2"),
        ("You see a goal 2 steps forward. You carry a green key.", "You see a green key 3 steps forward.", "1"),
        ("You see an open blue door 1 step left.", "You reached the goal.", "2"),
        ("You picked up the red key.", "You see a red key 4 steps forward, a wall 5 steps forward.", "1"),
    ),
    "nethack": (
        ("You kill the jackal!", "You hear some noises in the distance.", "1"),
        ("It's solid stone.", "$ - 12 gold pieces.", "2"),
        ("The grid bug bites!", "You see here a scroll.", "2"),
        ("There is a staircase down here.", "You are hit by an arrow!", "1"),
    ),
    "fetch": (
        ("gripper 30 cm from the target", "gripper 5 cm from the target", "2"),
        ("gripper 3 cm from the block, block 8 cm from the target", "gripper 25 cm from the block, block 20 cm from "
         "the target", "1"),
    ),
    "maze": (
        ("ball 240 cm from the goal", "ball 35 cm from the goal", "2"),
        ("ball 12 cm from the goal, reached it", "ball 90 cm from the goal", "1"),
    ),
    "kitchen": (
        ("2 kitchen tasks left", "4 kitchen tasks left", "1"),
        ("3 kitchen tasks left", "0 kitchen tasks left", "2"),
    ),
    "mujoco": (
        ("torso 0.6 m high, moving forward at 2.1 m/s, 6.0 m from the start", "torso 0.5 m high, moving backward at "
         "0.4 m/s, -1.2 m from the start", "1"),
        ("torso 0.3 m high, moving forward at 0.1 m/s, 0.4 m from the start", "torso 0.6 m high, moving forward at "
         "1.5 m/s, 3.1 m from the start", "2"),
    ),
}

#: The second question of ``pointwise_harm``: its logit is subtracted from the progress question's.
HARM_QUESTION = ("Is this moment bad for the player: harm, danger or a setback? Answer with a single digit: 1 for yes, "
                 "2 for no.")

#: Alternative wordings of the pointwise question for the phrasing ensemble (the library's own comes first).
PHRASINGS = (
    "Is the player closer to achieving the goal at this moment? Answer with a single digit: 1 for yes, 2 for no.",
    "Would an expert player be pleased to see this moment? Answer with a single digit: 1 for yes, 2 for no.",
)


def _user_text(messages: Messages) -> str:
    return messages[-1]["content"]


@dataclass(frozen=True)
class FewShotPairPrompt:
    """A pair prompt preceded by exemplar pairs and their answers, as earlier turns of the same chat."""

    base: PairPrompt
    exemplars: tuple[tuple[str, str, str], ...]

    @property
    def version(self) -> str:
        return f"{self.base.version}+fewshot{len(self.exemplars)}"

    def verdict(self, first: str, second: str, context: str | None = None) -> Messages:
        system, *_ = self.base.verdict(first, second)
        shots: Messages = []
        for a, b, answer in self.exemplars:
            shots += [{"role": "user", "content": _user_text(self.base.verdict(a, b))},
                      {"role": "assistant", "content": answer}]
        return [system, *shots, {"role": "user", "content": _user_text(self.base.verdict(first, second))}]


@dataclass(frozen=True)
class DifferencePairPrompt:
    """The judge sees only the clauses that differ; ``context`` is the mission both captions share (or None)."""

    base: PairPrompt
    version: str = f"pair-diff-{DIFF_VERSION}"

    def verdict(self, first: str, second: str, context: str | None = None) -> Messages:
        system, *_ = self.base.verdict(first, second)
        goal = f"{self.base.goal}\n" if self.base.goal else ""
        mission = f"The mission in both moments: {context}.\n" if context else ""
        game = _user_text(self.base.verdict(first, second)).split(". ", 1)[0]  # "Here are two descriptions of ..."
        text = (f"{game}. {goal}{mission}Only what differs between the two moments is shown. Recall what you know "
                "about the game. Which description shows more progress? Answer with a single digit: 1 or 2.\n\n"
                f"Description 1:\n{first.strip()}\n\nDescription 2:\n{second.strip()}")
        return [system, {"role": "user", "content": text}]


@dataclass(frozen=True)
class ReferencePairPrompt:
    """The pointwise question about the first caption, with the second shown as the reference to beat.

    "Does this moment show more progress than the reference? 1 for yes, 2 for no": P("1") is P(first preferred),
    and the swapped order asks the same about the other caption. A small judge that answers "2" to "which of 1 or 2"
    whatever it is shown still answers a yes/no question about one highlighted moment; its lean towards "yes" is a
    constant that calibration removes.
    """

    base: PairPrompt

    @property
    def version(self) -> str:
        return f"{self.base.version}+reference-v1"

    def verdict(self, first: str, second: str, context: str | None = None) -> Messages:
        system, *_ = self.base.verdict(first, second)
        goal = f" {self.base.goal}" if self.base.goal else ""
        text = (f"Here is a description of a moment while playing {self.base.game}, and another moment for "
                f"reference.{goal} Recall what you know about the game.\n\n"
                f"Reference moment:\n{second.strip()}\n\nDescription:\n{first.strip()}\n\n"
                "Does this moment show more progress towards the goal than the reference moment? Answer with a "
                "single digit: 1 for yes, 2 for no.")
        return [system, {"role": "user", "content": text}]


@dataclass(frozen=True)
class ContentPairPrompt:
    """Two unnumbered descriptions; the reply is a copy of one. ``verdict`` asks for the one that shows more
    progress, ``neutral`` for either (the denominator of the domain-conditional PMI)."""

    base: PairPrompt
    exemplars: tuple[tuple[str, str, str], ...] = ()  # (first, second, better side): answered by copying

    @property
    def version(self) -> str:
        return "pair-content-v1" + (f"+fewshot{len(self.exemplars)}" if self.exemplars else "")

    def _ask(self, first: str, second: str, question: str, goal: bool) -> str:
        goal_text = f"{self.base.goal}\n" if goal and self.base.goal else ""
        return (f"Here are two descriptions of moments while playing {self.base.game}. {goal_text}{question}\n\n"
                f"Description:\n{first}\n\nDescription:\n{second}")

    def verdict(self, first: str, second: str, context: str | None = None) -> Messages:
        system, *_ = self.base.verdict(first, second)
        question = ("Recall what you know about the game. Which description shows more progress? Reply by copying "
                    "that description exactly.")
        shots: Messages = []
        for a, b, better in self.exemplars:
            shots += [{"role": "user", "content": self._ask(a, b, question, goal=True)},
                      {"role": "assistant", "content": a if better == "1" else b}]
        return [system, *shots, {"role": "user", "content": self._ask(first, second, question, goal=True)}]

    def neutral(self, first: str, second: str) -> Messages:
        system, *_ = self.base.verdict(first, second)  # no exemplars: they would say which copy is wanted
        return [system, {"role": "user", "content": self._ask(first, second, "Reply by copying one of the "
                                                              "descriptions exactly.", goal=False)}]


@dataclass
class ContentPairStrategy:
    """Pairwise without position labels: P(first preferred) is the probability that the reply *is* the first
    description (the whole token sequence of each), asked in both orders.

    A small judge asked "1 or 2?" answers the position it favours; answering with the content leaves no position
    label to favour, but a copy's probability also depends on the description's length and wording. ``pmi``
    divides that out (Holtzman et al. 2021, domain-conditional PMI): the same two probabilities under a question
    that asks for either description, in the same order, so what favours a description or a position whatever the
    question cancels. Needs whole-sequence probabilities, which only the local backend gives.

    Example:
        >>> from llm_reward.llm import make_llm
        >>> judge = make_strategy("pairwise_copy_pmi_bc", make_llm("local"), domain="nethack",
        ...                       goal=None)  # doctest: +SKIP
        >>> batch = judge.label([("You kill the newt!", "It's a wall."),
        ...                      ("You see here 5 gold pieces.", "Ouch! That hurts!")])  # doctest: +SKIP
        >>> batch.label.round(2), batch.position_consistency  # doctest: +SKIP
        (array([0.67, 0.74], dtype=float32), 1.0)
    """

    llm: LLM
    template: ContentPairPrompt
    pmi: bool = False
    batch_calibration: bool = False  # the batch's mean answer removed, as in PairwiseStrategy(calibration="batch")

    def __post_init__(self) -> None:
        if getattr(self.llm, "backend", None) == "litellm":
            raise ValueError("judge strategy pairwise_copy needs the probability of whole descriptions, which a "
                             "litellm provider does not return (only its first tokens'); use the local backend")

    @property
    def fingerprint(self) -> dict[str, object]:
        return {"llm": self.llm.name, "kind": "pairwise", "template": self.template.version, "pmi": self.pmi,
                "calibration": "batch" if self.batch_calibration else None}  # version names the exemplars

    def __call__(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        return self.label(pairs).label

    def _first_logit(self, render: Callable[[str, str], Messages], first: str, second: str) -> float:
        probs = self.llm.choice_probs_batch([render(first, second)], [first, second])[0]
        return float(calibration.logit(probs[first]))

    def label(self, pairs: Sequence[tuple[str, str]]) -> LabelBatch:
        renders = [(self.template.verdict, 1.0)] + ([(self.template.neutral, -1.0)] if self.pmi else [])

        def judge_ordered(_: list[int], ordered: list[tuple[str, str]]) -> tuple[np.ndarray, int]:
            logits = [sum(sign * self._first_logit(render, a, b) for render, sign in renders) for a, b in ordered]
            return calibration.sigmoid(np.array(logits)), 0

        # The reply is compared as text, so captions that differ only in surrounding space are a tie.
        batch = both_order_labels([(a.strip(), b.strip()) for a, b in pairs], judge_ordered)
        batch = replace(batch, llm_prompts=batch.llm_prompts * len(renders))
        return calibration.batch_calibrated(batch) if self.batch_calibration else batch


@dataclass
class PairwiseStrategy:
    """A pairwise judge over (optionally difference) captions, optionally calibrated against its position prior.

    ``calibration``: None, ``"content_free"`` (Zhao et al.; a few extra calls per template) or ``"batch"`` (mean
    logit of the batch, no extra calls; needs both orders).
    """

    judge: PairwiseJudge
    difference: bool = False
    calibration: str | None = None
    prior_logit: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.calibration not in (None, "content_free", "batch"):
            raise ValueError(f"calibration must be None, 'content_free' or 'batch', got {self.calibration!r}")

    @property
    def llm(self) -> LLM:
        return self.judge.llm

    @property
    def fingerprint(self) -> dict[str, object]:
        return {**self.judge.fingerprint, "difference": DIFF_VERSION if self.difference else None,
                "calibration": self.calibration}

    def __call__(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        return self.label(pairs).label

    def label(self, pairs: Sequence[tuple[str, str]]) -> LabelBatch:
        contexts = None
        if self.difference:
            reduced = [difference_pair(a, b) for a, b in pairs]
            pairs = [(r.first, r.second) for r in reduced]  # identical after reduction -> tie, never asked
            contexts = [r.mission for r in reduced]
        batch = self.judge.label(pairs, contexts)
        if self.calibration == "content_free":
            if self.prior_logit is None:
                template = self.judge.template
                self.prior_logit = calibration.content_free_prior(self.judge.llm, lambda a, b: template.verdict(a, b))
            return calibration.calibrate(batch, self.prior_logit)
        return calibration.batch_calibrated(batch) if self.calibration == "batch" else batch


@dataclass
class PointwiseStrategy:
    """Pairs labelled by Bradley-Terry on one strength per distinct caption (``strengths(captions)`` -> logits)."""

    llm: LLM
    strengths: Callable[[list[str]], np.ndarray]
    name: str
    prompts_sent: Callable[[], int]
    version: str = "pointwise-strategies-v1"

    @property
    def fingerprint(self) -> dict[str, object]:
        return {"llm": self.llm.name, "kind": "pointwise", "strategy": self.name, "version": self.version}

    def __call__(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        return self.label(pairs).label

    def label(self, pairs: Sequence[tuple[str, str]]) -> LabelBatch:
        n = len(pairs)
        forward = np.full(n, np.nan, dtype=np.float32)
        asked = [i for i, (a, b) in enumerate(pairs) if a != b]
        before = self.prompts_sent()
        if asked:
            unique = list(dict.fromkeys(c for i in asked for c in pairs[i]))
            table = dict(zip(unique, self.strengths(unique), strict=True))
            gaps = np.array([table[pairs[i][0]] - table[pairs[i][1]] for i in asked])
            forward[asked] = calibration.sigmoid(gaps)
        label = np.where(np.isnan(forward), 0.5, forward).astype(np.float32)
        scores = {c: float(table[c]) for i in asked for c in pairs[i]} if asked else {}
        return LabelBatch(label, forward, np.full(n, np.nan, dtype=np.float32),
                          llm_prompts=self.prompts_sent() - before, caption_scores=scores)


def pointwise_renders(domain: str, goal: str | None, phrasings: int = 1,
                      fewshot: bool = False) -> list[Callable[[str], Messages]]:
    """Renderers of the pointwise question: the library's wording, then :data:`PHRASINGS` (``phrasings`` in all)."""
    base = CaptionPrompt(domain, goal).rlaif
    renders = [base]
    for ask in PHRASINGS[: max(0, phrasings - 1)]:
        renders.append(lambda c, ask=ask: [*base(c)[:-1], {"role": "user", "content": _user_text(base(c)).rsplit(
            "\n\n", 1)[0] + "\n\n" + ask}])
    if fewshot:
        shots: Messages = []
        for a, b, better in EXEMPLARS.get(domain, ()):
            good, bad = (a, b) if better == "1" else (b, a)
            shots += [{"role": "user", "content": _user_text(base(good))}, {"role": "assistant", "content": "1"},
                      {"role": "user", "content": _user_text(base(bad))}, {"role": "assistant", "content": "2"}]
        renders = [lambda c, r=r: [r(c)[0], *shots, r(c)[-1]] for r in renders]
    return renders


@dataclass(frozen=True)
class CaptionScorePrompt:
    """RLAIF-style 1-10 rating of one caption (for :class:`ScoreJudge`)."""

    domain: str
    goal: str | None
    version: str = "caption-score-v1"

    def score(self, response: str, context: str | None = None) -> Messages:
        messages = CaptionPrompt(self.domain, self.goal).rlaif(response)
        text = _user_text(messages).rsplit("\n\n", 1)[0] + (
            "\n\nRate how much progress towards the goal this moment shows, from 1 (none, or harmful) to 10 (a "
            "big step forward). Answer with the number only.")
        return [messages[0], {"role": "user", "content": text}]


#: What a judging spec builds: a :class:`~llm_reward.types.Labeler`, like
#: :class:`~llm_reward.feedback.labelers.LLMPreferenceLabeler`.
Strategy = PairwiseStrategy | PointwiseStrategy | ContentPairStrategy


def _warn_without_exemplars(name: str, domain: str) -> None:
    if domain not in EXEMPLARS:
        log.warning("judge strategy %s: no exemplars for %r captions (exemplars exist for %s), so the question is "
                    "asked without them", name, domain, ", ".join(EXEMPLARS))


@dataclass(frozen=True)
class PointwiseQuestion:
    """One question per distinct caption ("does this show progress?"), Bradley-Terry on the answers' logits.

    Args:
        exemplars: show exemplar answers (two per exemplar pair of the domain) before the question.
        phrasings: average the logits of this many wordings of the question (1, 2 or 3: :data:`PHRASINGS`).
        compact: ask about the caption without walls and with step distances summed.
        harm: subtract the logit of a second question ("is this moment bad for the player?").

    Example:
        >>> PointwiseQuestion(exemplars=True).name, PointwiseQuestion(phrasings=3).scores_captions
        ('pointwise_fewshot', True)
    """

    exemplars: bool = False
    phrasings: int = 1
    compact: bool = False
    harm: bool = False
    scores_captions = True  #: its labels carry a score per caption (``reward_model.dense_pairs`` draws on them)

    def __post_init__(self) -> None:
        if not 1 <= self.phrasings <= 1 + len(PHRASINGS):
            raise ValueError(f"phrasings must be 1..{1 + len(PHRASINGS)}, got {self.phrasings}")

    @property
    def name(self) -> str:
        """The strategy's name: the label store's fingerprint and the stage identity (``paths.labeler``) use it."""
        parts = ["pointwise", "ensemble" if self.phrasings == 3 else f"phrasings{self.phrasings}"
                 if self.phrasings > 1 else "", "fewshot" if self.exemplars else "", "compact" if self.compact else "",
                 "harm" if self.harm else ""]
        return "_".join(p for p in parts if p)

    def build(self, llm: LLM, *, domain: str, goal: str | None, rationale_tokens: int = 96) -> PointwiseStrategy:
        """The labeler asking this question of ``llm`` about ``domain`` captions with ``goal``."""
        if self.exemplars:
            _warn_without_exemplars(self.name, domain)
        renders = pointwise_renders(domain, goal, phrasings=self.phrasings, fewshot=self.exemplars)
        if self.compact:
            renders = [lambda c, r=r: r(compact(c, steps=True, walls=False)) for r in renders]
        signs = [1.0] * len(renders)
        if self.harm:
            base = renders[0]
            renders.append(lambda c: [*base(c)[:-1], {"role": "user", "content": _user_text(base(c)).rsplit(
                "\n\n", 1)[0] + "\n\n" + HARM_QUESTION}])
            signs.append(-1.0)
        scorers = [PointwiseScorer(llm, r) for r in renders]
        harm = self.harm

        def strengths(captions: list[str]) -> np.ndarray:
            logits = [sign * calibration.logit(s.yes_probs(captions)) for s, sign in zip(scorers, signs, strict=True)]
            return np.sum(logits, axis=0) if harm else np.mean(logits, axis=0)

        return PointwiseStrategy(llm, strengths, self.name, lambda: sum(s.prompts_sent for s in scorers))


@dataclass(frozen=True)
class ScoreQuestion:
    """RLAIF's 1-10 rating per caption; a pair is ordered by the expected scores.

    Example:
        >>> ScoreQuestion().name
        'score10'
    """

    scores_captions = True

    @property
    def name(self) -> str:
        return "score10"

    def build(self, llm: LLM, *, domain: str, goal: str | None, rationale_tokens: int = 96) -> PointwiseStrategy:
        judge = ScoreJudge(llm, CaptionScorePrompt(domain, goal))
        return PointwiseStrategy(llm, judge.expected_scores, self.name, lambda: judge.prompts_sent)


@dataclass(frozen=True)
class PairQuestion:
    """"Which shows more progress, 1 or 2?" in both orders.

    Args:
        template: ``plain``; ``fewshot`` (hand-written exemplar answers first); ``diff`` (only what differs between
            the captions, the mission once); ``ref`` (each caption in turn against the other as the reference).
        chain_of_thought: decode a short comparison before the verdict.
        calibration: None, ``content_free`` (divide out the answer to content-free pairs) or ``batch`` (the
            batch's own position prior, no extra calls).
        both_orders: ask each pair in both orders and average (``batch`` calibration needs them).

    Example:
        >>> PairQuestion(template="diff", calibration="batch").name
        'pairwise_diff_bc'
    """

    template: str = "plain"
    chain_of_thought: bool = False
    calibration: str | None = None
    both_orders: bool = True
    scores_captions = False

    def __post_init__(self) -> None:
        if self.template not in ("plain", "fewshot", "diff", "ref"):
            raise ValueError(f"template must be 'plain', 'fewshot', 'diff' or 'ref', got {self.template!r}")
        if self.calibration not in (None, "content_free", "batch"):
            raise ValueError(f"calibration must be None, 'content_free' or 'batch', got {self.calibration!r}")
        if self.calibration == "batch" and not self.both_orders:
            raise ValueError("calibration 'batch' needs both_orders: the prior is read from the two orders")

    @property
    def name(self) -> str:
        parts = ["pairwise", "" if self.template == "plain" else self.template, "cot" if self.chain_of_thought else "",
                 {None: "", "content_free": "cf", "batch": "bc"}[self.calibration],
                 "" if self.both_orders else "one_order"]
        return "_".join(p for p in parts if p)

    def build(self, llm: LLM, *, domain: str, goal: str | None, rationale_tokens: int = 96) -> PairwiseStrategy:
        prompt = PairPrompt(domain=domain, goal=goal, chain_of_thought=self.chain_of_thought)
        if self.template == "fewshot":
            _warn_without_exemplars(self.name, domain)
            template = FewShotPairPrompt(prompt, EXEMPLARS.get(domain, ()))
        elif self.template == "ref":
            template = ReferencePairPrompt(prompt)
        else:
            template = DifferencePairPrompt(prompt) if self.template == "diff" else prompt
        judge = PairwiseJudge(llm, template, both_orders=self.both_orders, chain_of_thought=self.chain_of_thought,
                              rationale_tokens=rationale_tokens)
        return PairwiseStrategy(judge, difference=self.template == "diff", calibration=self.calibration)


@dataclass(frozen=True)
class CopyQuestion:
    """The judge answers by copying the description it prefers, in both orders (no "1" or "2" to be biased to).

    Args:
        exemplars: exemplar pairs answered by copying first.
        pmi: divide out how likely each copy is under a neutral question (domain-conditional PMI).
        batch_calibration: remove the batch's position prior.

    Example:
        >>> CopyQuestion(exemplars=True, pmi=True, batch_calibration=True).name
        'pairwise_copy_fewshot_pmi_bc'
    """

    exemplars: bool = False
    pmi: bool = False
    batch_calibration: bool = False
    scores_captions = False

    @property
    def name(self) -> str:
        parts = ["pairwise_copy", "fewshot" if self.exemplars else "", "pmi" if self.pmi else "",
                 "bc" if self.batch_calibration else ""]
        return "_".join(p for p in parts if p)

    def build(self, llm: LLM, *, domain: str, goal: str | None, rationale_tokens: int = 96) -> ContentPairStrategy:
        if self.exemplars:
            _warn_without_exemplars(self.name, domain)
        template = ContentPairPrompt(PairPrompt(domain=domain, goal=goal),
                                     EXEMPLARS.get(domain, ()) if self.exemplars else ())
        return ContentPairStrategy(llm, template, pmi=self.pmi, batch_calibration=self.batch_calibration)


@dataclass
class VerdictStrategy:
    """P(first preferred) from free-text verdicts (Motif): the judge may reason, then ends with ``Verdict: 1|2|none``
    (the last one counts); an answer without one gets a single verdict-only follow-up, then counts as unknown (NaN).
    Built by :class:`VerdictQuestion`.
    """

    llm: LLM
    prompt: PairPrompt
    both_orders: bool = True
    temperature: float = 0.1
    top_p: float = 0.95
    max_tokens: int = 320

    @property
    def fingerprint(self) -> dict[str, object]:
        return {"llm": self.llm.name, "kind": "verdict", "template": self.prompt.version,
                "chain_of_thought": self.prompt.chain_of_thought, "both_orders": self.both_orders,
                "temperature": self.temperature, "top_p": self.top_p, "max_tokens": self.max_tokens}

    def __call__(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        return self.label(pairs).label

    def label(self, pairs: Sequence[tuple[str, str]]) -> LabelBatch:
        return both_order_labels(pairs, lambda _indices, ordered: self._verdicts(ordered), both_orders=self.both_orders)

    def _verdicts(self, ordered: list[tuple[str, str]]) -> tuple[np.ndarray, int]:
        """P(first preferred) from free-text verdicts for each ordered pair, NaN where the judge gave none."""
        # An empty reply is parsed like any other: no verdict -> retry -> unknown (counted), never a silent label.
        sampling = dict(max_tokens=self.max_tokens, temperature=self.temperature, top_p=self.top_p, allow_empty=True)
        conversations = [self.prompt.motif(a, b) for a, b in ordered]
        answers = self.llm.complete_batch(conversations, **sampling)
        verdicts = [parse_verdict(text) for text in answers]
        missing = [i for i, v in enumerate(verdicts) if v is None]
        if missing:  # One follow-up asking for the verdict alone; still nothing -> unknown.
            follow_ups = [
                conversations[i] + [{"role": "assistant", "content": answers[i]},
                                    {"role": "user", "content": VERDICT_ONLY_REQUEST}]
                for i in missing
            ]
            for i, text in zip(missing, self.llm.complete_batch(follow_ups, **{**sampling, "max_tokens": 12})):
                verdicts[i] = parse_verdict(text)
        return np.array([np.nan if v is None else v for v in verdicts], dtype=np.float32), len(missing)


@dataclass(frozen=True)
class VerdictQuestion:
    """Motif's question: "which shows more progress?" answered in free text ending with a verdict, sampled.

    Args:
        chain_of_thought: the judge analyses both descriptions before its verdict (else: the verdict alone).
        both_orders: ask each pair in both orders and average (cancels the judge's position bias).
        temperature: sampling temperature of the answers.
        top_p: nucleus sampling of the answers.
        max_tokens: the longest answer.

    Example:
        >>> VerdictQuestion().name, VerdictQuestion(chain_of_thought=False, both_orders=False).name
        ('verdict_cot', 'verdict_one_order')
    """

    chain_of_thought: bool = True
    both_orders: bool = True
    temperature: float = 0.1
    top_p: float = 0.95
    max_tokens: int = 320
    scores_captions = False

    @property
    def name(self) -> str:
        parts = ["verdict", "cot" if self.chain_of_thought else "", "" if self.both_orders else "one_order"]
        return "_".join(p for p in parts if p)

    def build(self, llm: LLM, *, domain: str, goal: str | None, rationale_tokens: int = 96) -> VerdictStrategy:
        prompt = PairPrompt(domain=domain, goal=goal, chain_of_thought=self.chain_of_thought)
        return VerdictStrategy(llm, prompt, both_orders=self.both_orders, temperature=float(self.temperature),
                               top_p=float(self.top_p), max_tokens=int(self.max_tokens))


#: A way of judging caption pairs as plain data: a config node with ``_target_`` builds one.
JudgingSpec = PointwiseQuestion | ScoreQuestion | PairQuestion | CopyQuestion | VerdictQuestion
QUESTIONS = (PointwiseQuestion, ScoreQuestion, PairQuestion, CopyQuestion, VerdictQuestion)

#: The feedback modes (``feedback.mode``) and the question each asks when no ``feedback.strategy`` is given.
MODES = ("rlaif", "motif", "pointwise")


def mode_question(mode: str, *, both_orders: bool = True, chain_of_thought: bool = True, temperature: float = 0.1,
                  top_p: float = 0.95, max_tokens: int = 320) -> JudgingSpec:
    """The question a feedback ``mode`` asks: ``pointwise`` -> :class:`PointwiseQuestion` (no exemplars), ``rlaif`` ->
    :class:`PairQuestion` (P("1") vs P("2")), ``motif`` -> :class:`VerdictQuestion` (free-text verdicts, sampled
    with ``temperature``, ``top_p`` and ``max_tokens``).

    Example:
        >>> mode_question("pointwise"), mode_question("rlaif", both_orders=False).name
        (PointwiseQuestion(exemplars=False, phrasings=1, compact=False, harm=False), 'pairwise_one_order')
    """
    if mode == "pointwise":
        return PointwiseQuestion()
    if mode == "rlaif":
        return PairQuestion(both_orders=bool(both_orders))
    if mode == "motif":
        return VerdictQuestion(chain_of_thought=bool(chain_of_thought), both_orders=bool(both_orders),
                               temperature=float(temperature), top_p=float(top_p), max_tokens=int(max_tokens))
    raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")

#: The strategies measured by ``benchmarks/judge_quality.py``, by name: combinations of the question classes above.
STRATEGIES: dict[str, JudgingSpec] = {spec.name: spec for spec in (
    PointwiseQuestion(), PointwiseQuestion(phrasings=3), PointwiseQuestion(exemplars=True),
    PointwiseQuestion(compact=True), PointwiseQuestion(harm=True), ScoreQuestion(),
    *(PairQuestion(template, calibration=c) for template in ("plain", "diff", "fewshot", "ref")
      for c in (None, "content_free", "batch")),
    PairQuestion(chain_of_thought=True),
    *(CopyQuestion(exemplars, pmi, bc) for exemplars in (False, True) for pmi in (False, True) for bc in (False, True)),
)}


def judging_spec(strategy: str | JudgingSpec | Mapping[str, Any] | None) -> JudgingSpec | None:
    """``feedback.strategy`` as a spec: a name of :data:`STRATEGIES`, a spec, a config node with ``_target_`` (one
    of the question classes :data:`QUESTIONS` and its fields), or None (no strategy: the feedback mode's question,
    :func:`mode_question`).

    Example:
        >>> judging_spec("pointwise_fewshot") == judging_spec(
        ...     {"_target_": "llm_reward.feedback.strategies.PointwiseQuestion", "exemplars": True})
        True
    """
    if strategy is None or isinstance(strategy, QUESTIONS):
        return strategy
    if isinstance(strategy, str):
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown judge strategy {strategy!r}; choose one of {list(STRATEGIES)}, or give a "
                             f"question with _target_ ({', '.join(cls.__name__ for cls in QUESTIONS)})")
        return STRATEGIES[strategy]
    fields = dict(strategy)
    target = fields.pop("_target_", None)
    kinds = {cls.__name__: cls for cls in QUESTIONS}
    kind = target.rpartition(".")[2] if isinstance(target, str) else None
    if kind not in kinds or not target.startswith(__name__ + "."):
        raise ValueError(f"a judging config needs _target_: {__name__}.<one of {list(kinds)}>, got {target!r}")
    try:
        return kinds[kind](**fields)
    except TypeError as err:
        raise ValueError(f"{kind}: {err}") from err


def scores_captions(mode: str, strategy: str | JudgingSpec | Mapping[str, Any] | None = None) -> bool:
    """Whether labels asked with feedback ``mode`` (or ``strategy``, which replaces it) carry the judge's score of
    each caption, which ``reward_model.dense_pairs`` draws on: the pointwise mode and questions do, pairs do not.

    Example:
        >>> scores_captions("pointwise"), scores_captions("rlaif"), scores_captions("pointwise", "pairwise_bc")
        (True, False, False)
    """
    return (judging_spec(strategy) or mode_question(mode)).scores_captions


def make_strategy(name: str | JudgingSpec | Mapping[str, Any], llm: LLM, *, domain: str, goal: str | None,
                  rationale_tokens: int = 96) -> Strategy:
    """The labeler of strategy ``name`` (one of :data:`STRATEGIES`, or a spec / ``_target_`` node: see
    :func:`judging_spec`) for captions of ``domain`` with ``goal``.

    Args:
        name: the strategy.
        llm: the judge.
        domain: the caption family (an env adapter's ``family``): prompts name it, exemplars are chosen by it.
        goal: the goal sentence the judge is given (None: zero knowledge).
        rationale_tokens: the chain of thought's length (``PairQuestion(chain_of_thought=True)`` only).

    Returns:
        A :class:`~llm_reward.types.Labeler`.
    """
    spec = judging_spec(name)
    if spec is None:
        raise ValueError("make_strategy needs a strategy, got None")
    return spec.build(llm, domain=domain, goal=goal, rationale_tokens=rationale_tokens)


__all__ = ["make_strategy", "judging_spec", "scores_captions", "Strategy", "STRATEGIES", "JudgingSpec",
           "PointwiseQuestion", "ScoreQuestion", "PairQuestion", "CopyQuestion", "VerdictQuestion", "VerdictStrategy",
           "QUESTIONS", "MODES", "mode_question", "EXEMPLARS", "PHRASINGS",
           "PairwiseStrategy", "PointwiseStrategy", "ContentPairStrategy", "ContentPairPrompt", "FewShotPairPrompt",
           "DifferencePairPrompt", "ReferencePairPrompt", "CaptionScorePrompt"]
