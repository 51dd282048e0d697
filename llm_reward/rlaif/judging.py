"""Judges checked before they are trusted: a stored probe of clear-cut answer pairs, and position-free comparison.

A small judge asked "which answer is better, 1 or 2?" often answers by position alone; averaged over both orders
that judge reads 0.5 whatever the answers are, so a win rate under it is forced. Two tools here:

* :func:`probe_judge` runs the stored probe (``data/probe_pairs.jsonl``: clear-cut quality pairs and constraint
  pairs where the checker knows the better answer) in both orders and reports accuracy and position consistency;
  :func:`require_probe` refuses a judge below the bar with an error naming its config key.
* :class:`PositionFreeJudge` compares two answers without showing them together: each answer is scored alone by a
  :class:`ScoreJudge` and the one with the higher expected score wins (ties 0.5). It cannot be position-biased, so a
  judge that fails the pairwise form may still pass this one.
* :class:`ChecklistJudge` asks one yes/no question per item instead of one holistic score: "is this answer helpful
  and relevant?" and, for each instruction of the prompt, one concrete question about what the answer looks like
  (:func:`instruction_question`: "Does the answer contain a comma?", "Is the answer longer than 12 words?"; one
  wording per instruction kind). The judge model answers each question; the checker is never run or shown. Its
  reward is the mean P(met) (direct mode's reward with ``judge.reward_form=checklist``), and it compares answers
  position-free like :class:`PositionFreeJudge`. Small judges that miss instructions inside a holistic 1-10 score
  (they prefer the longer answer) answer concrete single questions better: Qwen2.5-Coder-1.5B passes the probe in
  this form (``benchmarks/results/rlaif_judge_probe.json``).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence

import numpy as np

from llm_reward.feedback.judges import LabelBatch, PairwiseJudge, ScoreJudge
from llm_reward.rlaif.constraints import Constraint, checker_success, parse_constraint, render_prompt

MIN_ACCURACY = 0.8
MIN_POSITION_CONSISTENCY = 0.7
FORMS = ("pairwise", "score", "checklist")
HELPFUL = "Is this answer helpful and relevant to the question?"


class JudgeProbeError(ValueError):
    """A judge failed its probe and is not trusted for the role it was given."""


class ComparingJudge(Protocol):
    """Anything giving P(first answer better) for answer pairs: :class:`PairwiseJudge`, :class:`PositionFreeJudge`."""

    def label(self, pairs: Sequence[tuple[str, str]], contexts: Sequence[str | None] | None = None) -> LabelBatch:
        ...


@dataclass
class PositionFreeJudge:
    """P(first better) from two separate 1-10 scores: 1 if the first answer's expected score is higher, 0 if lower,
    0.5 if equal or the two answers are identical. Both "orders" are the same call, so position consistency is 1.

    Example:
        >>> from llm_reward.llm import make_llm
        >>> from llm_reward.feedback.text_prompts import ResponseScorePrompt
        >>> judge = PositionFreeJudge(ScoreJudge(make_llm("local:small"), ResponseScorePrompt()))  # doctest: +SKIP
        >>> judge.label([("Paris.", "Berlin.")], contexts=["Capital of France?"]).label  # doctest: +SKIP
        array([1.], dtype=float32)
    """

    scorer: ScoreJudge

    @property
    def llm(self) -> Any:
        return self.scorer.llm

    @property
    def fingerprint(self) -> dict[str, object]:
        return {**self.scorer.fingerprint, "kind": "position_free_score"}

    def label(self, pairs: Sequence[tuple[str, str]], contexts: Sequence[str | None] | None = None) -> LabelBatch:
        def score(answers: list[str], prompts: list[str | None]) -> tuple[np.ndarray, int]:
            return self.scorer.expected_scores(answers, prompts), len(answers)

        return _compare_by_scores(score, pairs, contexts)

    def check(self) -> None:
        self.scorer.check()


def _compare_by_scores(score: Any, pairs: Sequence[tuple[str, str]],
                       contexts: Sequence[str | None] | None) -> LabelBatch:
    """Position-free labels: each distinct (context, answer) scored once by ``score(answers, contexts)``, the higher
    score wins (1 / 0), equal scores and identical answers tie (0.5); both "orders" are the same call."""
    if contexts is not None and len(contexts) != len(pairs):
        raise ValueError(f"{len(contexts)} contexts for {len(pairs)} pairs")
    contexts = list(contexts) if contexts is not None else [None] * len(pairs)
    items = list(dict.fromkeys((c, a) for (a, b), c in zip(pairs, contexts) for a in (a, b)))
    scores, sent = score([a for _, a in items], [c for c, _ in items]) if items else ([], 0)
    table = dict(zip(items, scores))
    label = np.array([0.5 if a == b else float(np.sign(table[(c, a)] - table[(c, b)]) / 2 + 0.5)
                      for (a, b), c in zip(pairs, contexts)], dtype=np.float32)
    asked = np.array([a != b for a, b in pairs], dtype=bool)
    forward = np.where(asked, label, np.nan).astype(np.float32)
    return LabelBatch(label, forward, forward.copy(), llm_prompts=sent)


#: The checklist's prompt version: part of :attr:`ChecklistJudge.fingerprint`, so labels and rewards stored under an
#: older wording are never reused. v1 quoted the instruction sentence and asked "does the answer follow it exactly?"
#: (reply 1/2); v2 asks one concrete question per instruction kind (below), with a system line and the answer
#: fenced between markers.
CHECKLIST_TEMPLATE = "checklist-v2"
CHECKLIST_SYSTEM = ("You check one thing about an answer. Read the answer between the <answer> and </answer> markers "
                    "exactly as it is written, character by character, and reply with Yes or No only.")
YES_NO = ("Yes", "No")


@dataclass(frozen=True)
class ChecklistQuestion:
    """One yes/no question of the checklist. ``yes_keeps`` says which reply means the item is met: a "yes" to
    "Does the answer contain a comma?" breaks ``no_commas``, so that question's item score is P(no)."""

    text: str
    yes_keeps: bool = True


#: Per instruction kind: the question's wording (``{arg}``: the instruction's argument) and whether "yes" means the
#: instruction is met (most ask whether the answer breaks the rule: "contains a comma?").
_QUESTIONS: dict[str, tuple[str, bool]] = {
    "max_words": ("Is the answer longer than {arg} words?", False),
    "min_words": ("Is the answer shorter than {arg} words?", False),
    "include_word": ('Does the answer contain the word "{arg}"?', True),
    "bullets": ('Is the answer a list of exactly {arg} lines, each line starting with "- "?', True),
    "end_question": ('Is the very last character of the answer a question mark ("?")?', True),
    "no_commas": ('Does the answer contain a comma (the character ",")?', False),
    "lowercase": ("Does the answer contain any capital letter (A to Z)?", False),
    "one_sentence": ("Does the answer contain more than one sentence?", False),
}


def instruction_question(rule: Constraint) -> ChecklistQuestion:
    """The question the judge is asked about one instruction of the prompt: concrete and about what the answer
    looks like (a comma, a capital letter, the last character, a length), one wording per instruction kind.

    The judge model answers it; nothing here looks at the answer (the checker stays the ground truth the judge is
    measured against).

    Example:
        >>> from llm_reward.rlaif.constraints import parse_constraint
        >>> q = instruction_question(parse_constraint("no_commas"))
        >>> q.text, q.yes_keeps
        ('Does the answer contain a comma (the character ",")?', False)
    """
    if rule.kind not in _QUESTIONS:  # parse_constraint refuses unknown kinds, so this is a missing entry here
        raise ValueError(f"no checklist question for constraint kind {rule.kind!r}")
    wording, yes_keeps = _QUESTIONS[rule.kind]
    return ChecklistQuestion(wording.format(arg=rule.arg), yes_keeps=yes_keeps)


@dataclass
class ChecklistJudge:
    """Mean P(item met) over one yes/no question per item: helpful and relevant, then each of the prompt's
    instructions, asked as a concrete question about the answer (:func:`instruction_question`).

    ``instructions`` maps a prompt (as the policy reads it) to its instructions; prompts it does not know are asked
    the helpfulness question only. With ``ask_helpful=False`` a prompt with instructions is asked about its
    instructions only (``judge.reward_form=instructions``): on the policy's own answers the helpfulness item adds
    variance that does not follow the instructions (``benchmarks/results/rlaif_policy_sample_probe.json``). Usable as
    a reward (``score``) and as a position-free comparing judge (``label``).

    Example:
        >>> from llm_reward.llm import make_llm
        >>> judge = ChecklistJudge(make_llm("local"), prompts.constraints)  # doctest: +SKIP
        >>> judge.score(["Name a fruit.\\n\\nDo not use any commas."], ["apple, pear"])  # doctest: +SKIP
        array([0.41])
    """

    llm: Any
    instructions: Mapping[str, Sequence[Constraint]] = field(default_factory=dict)
    ask_helpful: bool = True
    prompts_sent: int = field(default=0, init=False)

    @property
    def fingerprint(self) -> dict[str, object]:
        return {"llm": self.llm.name, "kind": "checklist", "template": CHECKLIST_TEMPLATE,
                **({} if self.ask_helpful else {"helpful": False})}

    def questions(self, prompt: str) -> list[ChecklistQuestion]:
        rules = self.instructions.get(prompt, ())
        helpful = [ChecklistQuestion(HELPFUL)] if self.ask_helpful or not rules else []
        return helpful + [instruction_question(r) for r in rules]

    def _ask(self, prompt: str, answer: str, question: str) -> list[dict[str, str]]:
        return [{"role": "system", "content": CHECKLIST_SYSTEM},
                {"role": "user", "content": f"Question: {prompt.strip()}\n\n<answer>\n{answer.strip() or '(empty)'}"
                                            f"\n</answer>\n\n{question} Reply Yes or No."}]

    def item_scores(self, answers: Sequence[str], prompts: Sequence[str | None]) -> list[np.ndarray]:
        """Per answer, P(met) of each checklist item in :meth:`questions` order (helpfulness first if asked)."""
        asks, owner, keeps = [], [], []
        for i, (a, p) in enumerate(zip(answers, prompts)):
            for q in self.questions(p or ""):
                asks.append(self._ask(p or "", a, q.text))
                owner.append(i)
                keeps.append(q.yes_keeps)
        probs = self.llm.choice_probs_batch(asks, list(YES_NO)) if asks else []
        met = np.array([p[YES_NO[0]] if k else p[YES_NO[1]] for p, k in zip(probs, keeps)], dtype=np.float64)
        owner_arr = np.array(owner, dtype=np.int64)
        self.prompts_sent += len(asks)
        return [met[owner_arr == i] for i in range(len(answers))]

    def _scores(self, answers: Sequence[str], prompts: Sequence[str | None]) -> tuple[np.ndarray, int]:
        items = self.item_scores(answers, prompts)
        return np.array([x.mean() for x in items], dtype=np.float64), sum(len(x) for x in items)

    def score(self, prompts: Sequence[str], completions: Sequence[str]) -> np.ndarray:
        """Reward per answer: mean P(met) over its checklist, in [0, 1]."""
        return self._scores(list(completions), list(prompts))[0]

    def scores(self, responses: Sequence[str], contexts: Sequence[str | None] | None = None) -> np.ndarray:
        """Rewards in [-1, 1] (every item missed -> -1, every item met -> +1): the scale of
        :meth:`ScoreJudge.scores`, so :class:`~llm_reward.rlaif.rewards.DirectReward` takes either judge and the
        KL weight ``train.beta`` means the same for both."""
        contexts = list(contexts) if contexts is not None else [None] * len(responses)
        return 2.0 * self._scores(list(responses), contexts)[0] - 1.0

    def label(self, pairs: Sequence[tuple[str, str]], contexts: Sequence[str | None] | None = None) -> LabelBatch:
        return _compare_by_scores(self._scores, pairs, contexts)

    def check(self) -> None:
        from llm_reward.feedback.judges import _probe

        _probe(self.llm, self._ask("Say yes.", "Yes.", HELPFUL), YES_NO)


# -- the probe --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ProbePair:
    """A clear-cut pair: ``better`` answers ``prompt`` (with its constraints) plainly better than ``worse``."""

    prompt: str
    better: str
    worse: str
    kind: str  # "quality" (a useful answer vs a useless or wrong one) | "constraint" (the checker decides)
    constraints: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        """What the judge reads as the question: the prompt with its instruction sentences."""
        return render_prompt(self.prompt, [parse_constraint(s) for s in self.constraints])


def probe_pairs_path() -> Path:
    return Path(str(resources.files("llm_reward.rlaif") / "data" / "probe_pairs.jsonl"))


def load_probe_pairs(path: str | Path | None = None) -> list[ProbePair]:
    """The stored probe (32 pairs: 16 quality, 16 constraint), checked against the checker as it loads."""
    pairs = []
    for line in Path(path or probe_pairs_path()).read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            pairs.append(ProbePair(row["prompt"], row["better"], row["worse"], row["kind"],
                                   tuple(row.get("constraints", ()))))
    for pair in pairs:
        if pair.kind == "constraint":
            rules = [parse_constraint(s) for s in pair.constraints]
            if not checker_success(pair.better, rules) > checker_success(pair.worse, rules):
                raise ValueError(f"probe pair {pair.prompt[:40]!r}: the checker does not prefer its better answer")
    return pairs


@dataclass(frozen=True)
class ProbeResult:
    """How a judge did on the probe (every pair in both orders; ``accuracy`` counts a 0.5 as wrong)."""

    judge: str
    form: str
    pairs: int
    accuracy: float
    position_consistency: float
    first_order_accuracy: float
    quality_accuracy: float
    constraint_accuracy: float  # agreement with the checker on constraint pairs
    prompts: int
    prompts_per_s: float
    p_better: tuple[float, ...] = ()  # per pair, in the probe's order: P(better answer preferred), both orders averaged

    @property
    def passed(self) -> bool:
        return (self.accuracy >= MIN_ACCURACY
                and np.nan_to_num(self.position_consistency, nan=0.0) >= MIN_POSITION_CONSISTENCY)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed, "min_accuracy": MIN_ACCURACY,
                "min_position_consistency": MIN_POSITION_CONSISTENCY}


def probe_judge(judge: ComparingJudge, pairs: Sequence[ProbePair] | None = None, *, name: str | None = None,
                form: str | None = None) -> ProbeResult:
    """Run the probe: half the pairs shown better-first, half worse-first, each also judged swapped.

    Example:
        >>> result = probe_judge(PositionFreeJudge(score_judge))  # doctest: +SKIP
        >>> result.accuracy, result.position_consistency  # doctest: +SKIP
        (0.91, 1.0)
    """
    pairs = list(pairs) if pairs is not None else load_probe_pairs()
    if isinstance(judge, ChecklistJudge):  # the probe's prompts carry their own instructions
        judge = type(judge)(judge.llm, {**judge.instructions, **{
            p.text: tuple(parse_constraint(c) for c in p.constraints) for p in pairs}}, judge.ask_helpful)
    flip = np.arange(len(pairs)) % 2 == 1  # better answer second on odd pairs
    shown = [(p.worse, p.better) if f else (p.better, p.worse) for p, f in zip(pairs, flip)]
    start = time.perf_counter()
    batch = judge.label(shown, contexts=[p.text for p in pairs])
    seconds = time.perf_counter() - start
    p_better = np.where(flip, 1.0 - batch.label, batch.label)
    first = np.where(flip, 1.0 - batch.forward, batch.forward)
    right = p_better > 0.5
    kinds = np.array([p.kind for p in pairs])
    part = lambda k: float(right[kinds == k].mean()) if (kinds == k).any() else float("nan")  # noqa: E731
    return ProbeResult(
        judge=name or str(getattr(getattr(judge, "llm", None), "name", type(judge).__name__)),
        form=form or ("score" if isinstance(judge, PositionFreeJudge) else
                      "checklist" if isinstance(judge, ChecklistJudge) else "pairwise"),
        pairs=len(pairs), accuracy=float(right.mean()), position_consistency=float(batch.position_consistency),
        first_order_accuracy=float(np.mean(first > 0.5)), quality_accuracy=part("quality"),
        constraint_accuracy=part("constraint"), prompts=int(batch.llm_prompts),
        prompts_per_s=batch.llm_prompts / max(seconds, 1e-9), p_better=tuple(float(x) for x in p_better))


def require_probe(result: ProbeResult, key: str) -> None:
    """Raise :class:`JudgeProbeError` naming ``<key>.spec`` if ``result`` is below 80 % right or 70 % consistent.

    Example:
        >>> bad = ProbeResult("local:small", "pairwise", 32, 0.5, 0.0, 0.5, 0.5, 0.5, 64, 2.0)
        >>> try:
        ...     require_probe(bad, "heldout_judge")
        ... except JudgeProbeError as err:
        ...     print(str(err)[:95])
        heldout_judge.spec='local:small' (form pairwise) failed the judge probe: 50% right, 0% position
    """
    if result.passed:
        return
    others = "|".join(f for f in FORMS if f != result.form)
    consistency = "n/a" if np.isnan(result.position_consistency) else f"{result.position_consistency:.0%}"
    raise JudgeProbeError(
        f"{key}.spec={result.judge!r} (form {result.form}) failed the judge probe: {result.accuracy:.0%} right, "
        f"{consistency} position-consistent on {result.pairs} clear-cut pairs in both orders (needs >= "
        f"{MIN_ACCURACY:.0%} and >= {MIN_POSITION_CONSISTENCY:.0%}); try {key}.form={others} or a stronger model")


def comparing_judge(pairwise: PairwiseJudge, scorer: ScoreJudge, form: str, key: str,
                    instructions: Mapping[str, Sequence[Constraint]] | None = None) -> ComparingJudge:
    """The judge of one ``form``: the pairwise prompt (both orders), position-free 1-10 scores, or the checklist."""
    if form not in FORMS:
        raise ValueError(f"{key} must be one of {list(FORMS)}, got {form!r}")
    if form == "pairwise":
        return pairwise
    return PositionFreeJudge(scorer) if form == "score" else ChecklistJudge(pairwise.llm, dict(instructions or {}))
