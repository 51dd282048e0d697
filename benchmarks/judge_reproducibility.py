"""How far the embedded judge's labels move with how its prompts are decoded and with its thread count.

    python benchmarks/judge_reproducibility.py --quick   # 10 DoorKey-8x8 pairs, one llama.cpp thread
    python benchmarks/judge_reproducibility.py           # the 50 DoorKey-8x8 pairs, and two threads against one
    python benchmarks/judge_reproducibility.py --tiny-only   # the tiny model's two-token answer only (a minute)

The same seed of ``llm-reward-train`` gave different results on two machines, and a test comparing two ways of
computing one probability failed on one of them (0.4929 against 0.5092). llama.cpp computes a prompt's logits with
other kernels when it decodes the prompt in one batch than when it decodes its last token alone onto a cached
prefix, and the sums of a matrix product split over threads come out in another order; the rounding differs. This
script measures how much that moves the judge's answers, on the default labelling path (``pointwise_fewshot``
P(yes) per caption, pair label = sigmoid of the logit gap):

* ``batched``: the library's path: the captions' prompts in sorted order, each decoding only what differs from the
  previous prompt in the KV cache (the shared exemplar prefix is decoded once);
* ``unbatched``: every prompt decoded whole from an empty KV cache;
* ``threads_2``: the library's path with two llama.cpp threads instead of one (not in ``--quick``: on a loaded
  machine llama.cpp's threads wait for each other and this pass alone can take an hour).

The default judge runs with one thread here (``batched`` and ``unbatched``), the tiny model with one and with two.

Per comparison with ``batched``: the largest and mean difference of P(yes), of the pair labels, and the share of
pairs whose label falls on the other side of 0.5 (a flipped preference). ``tiny``: the embedded tiny model's P of a
two-token answer ("10") read by ``choice_probs`` (prompt decoded in one batch, then the next token) against the
product of next-token probabilities with the prompt's last token decoded alone, the comparison
``tests/test_judges.py`` makes, over several prompts: the tolerance that test uses comes from here. Results in
``results/judge_reproducibility[_quick].json`` (the last stdout line).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, machine, stamp  # noqa: E402

from llm_reward.feedback.prompts import goal_sentence  # noqa: E402
from llm_reward.feedback.strategies import make_strategy  # noqa: E402
from llm_reward.feedback.text_prompts import ResponseScorePrompt  # noqa: E402
from llm_reward.llm import make_llm  # noqa: E402

PAIRSET = Path(__file__).resolve().parent / "pairsets" / "minigrid.jsonl"
ENV = "MiniGrid-DoorKey-8x8-v0"
TINY_CONTEXTS = ["HP 2/30. What now?", "You are hungry.", "A newt bites you.", "You see a staircase.",
                 "The door is locked.", "You find 20 gold pieces.", "It is dark here.", "A jackal attacks!"]
TINY_ANSWERS = ["Drink the potion.", "Eat the food ration.", "Fight back.", "Go down the stairs.",
                "Kick the door.", "Pick up the gold.", "Light a lamp.", "Run away."]


def load_pairs(n: int) -> tuple[list[tuple[str, str]], str | None]:
    rows = [json.loads(line) for line in PAIRSET.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r["env_id"] == ENV][:n]
    return [(r["caption_a"], r["caption_b"]) for r in rows], goal_sentence("minigrid", "default",
                                                                            env_goal=rows[0]["env_goal"])


def yes_probs(llm, captions: list[str], goal: str | None, *, cold: bool) -> np.ndarray:
    """P(yes) per caption on the default labelling path; ``cold``: each prompt from an empty KV cache."""
    strategy = make_strategy("pointwise_fewshot", llm, domain="minigrid", goal=goal)
    if not cold:
        return 1.0 / (1.0 + np.exp(-np.asarray(strategy.strengths(captions), dtype=np.float64)))
    out = []
    for caption in captions:
        llm.model.reset()
        out.append(1.0 / (1.0 + np.exp(-float(strategy.strengths([caption])[0]))))
    return np.array(out)


def labels(p: dict[str, float], pairs: list[tuple[str, str]]) -> np.ndarray:
    logit = {c: np.log(v) - np.log1p(-v) for c, v in p.items()}
    return np.array([1.0 / (1.0 + np.exp(-(logit[a] - logit[b]))) for a, b in pairs])


def compare(base: dict[str, float], other: dict[str, float], pairs: list[tuple[str, str]]) -> dict[str, float]:
    a, b = np.array([base[c] for c in base]), np.array([other[c] for c in base])
    la, lb = labels(base, pairs), labels(other, pairs)
    gap, label_gap = np.abs(a - b), np.abs(la - lb)
    return {"max_abs_diff_p_yes": float(gap.max()), "mean_abs_diff_p_yes": float(gap.mean()),
            "max_abs_diff_label": float(label_gap.max()), "mean_abs_diff_label": float(label_gap.mean()),
            "flipped_pairs": int(np.sum((la > 0.5) != (lb > 0.5))), "n_pairs": len(pairs),
            "label_agreement": float(np.mean((la > 0.5) == (lb > 0.5)))}


def tiny_two_token(n: int, n_threads: int | None = None) -> dict[str, object]:
    """P("10") from ``choice_probs`` against P(1) * P(0 | 1) with the prompt's last token decoded alone."""
    llm = make_llm("local:tiny", cache=False, **({"n_threads": n_threads} if n_threads else {}))
    model = llm.model
    one, zero = (model.tokenize(t.encode(), add_bos=False, special=False) for t in ("1", "0"))
    choices = [str(i) for i in range(1, 11)]
    digits = [model.tokenize(c.encode(), add_bos=False, special=False)[0] for c in choices[:9]]
    diffs = []
    for answer, context in list(zip(TINY_ANSWERS, TINY_CONTEXTS))[:n]:
        messages = ResponseScorePrompt().score(answer, context=context)
        model.reset()
        probs = llm.choice_probs(messages, choices)
        tokens = llm.tokens(messages)
        first = llm._next_token_probs(tokens)  # the KV cache holds tokens + "1": only the last token is decoded
        then = llm._next_token_probs(tokens + one)
        raw = {c: first[t] for c, t in zip(choices[:9], digits)}
        raw["10"] = first[one[0]] * then[zero[0]]
        raw["1"] = first[one[0]] * (1 - then[zero[0]])
        total = sum(raw.values())
        diffs.append(max(abs(probs[c] - raw[c] / total) for c in choices))
    return {"prompts": len(diffs), "n_threads": llm.n_threads, "max_abs_diff": float(max(diffs)),
            "mean_abs_diff": float(np.mean(diffs)),
            "per_prompt": [float(d) for d in diffs]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10 pairs instead of 50, no two-thread pass")
    parser.add_argument("--tiny-only", action="store_true", help="only the tiny model's two-token answer, one thread")
    args = parser.parse_args()
    if args.tiny_only:
        start = time.perf_counter()
        tiny = tiny_two_token(len(TINY_CONTEXTS), 1)
        emit("judge_reproducibility_tiny", {"tiny_two_token_answer": {"threads_1": tiny}, "machine": machine(),
                                            **stamp(wall_time_s=time.perf_counter() - start)})
        return
    pairs, goal = load_pairs(10 if args.quick else 50)
    captions = list(dict.fromkeys(c for pair in pairs for c in pair))
    start = time.perf_counter()
    result: dict[str, object] = {"env": ENV, "strategy": "pointwise_fewshot", "n_pairs": len(pairs),
                                 "n_captions": len(captions), "machine": machine()}
    judge = make_llm("local", cache=False, n_threads=1)
    judge.model.reset()
    paths = {"batched": dict(zip(captions, yes_probs(judge, captions, goal, cold=False)))}
    paths["unbatched"] = dict(zip(captions, yes_probs(judge, captions, goal, cold=True)))
    judge.model.reset()
    paths["batched_again"] = dict(zip(captions, yes_probs(judge, captions, goal, cold=False)))
    if not args.quick:
        two = make_llm("local", cache=False, n_threads=2)
        paths["threads_2"] = dict(zip(captions, yes_probs(two, captions, goal, cold=False)))
    result["versus_batched"] = {name: compare(paths["batched"], p, pairs) for name, p in paths.items()
                                if name != "batched"}
    result["tiny_two_token_answer"] = {f"threads_{t}": tiny_two_token(len(TINY_CONTEXTS), t) for t in (1, 2)}
    result.update(**stamp(wall_time_s=time.perf_counter() - start), load_after=machine()["load"])
    emit("judge_reproducibility_quick" if args.quick else "judge_reproducibility", result)


if __name__ == "__main__":
    main()
