"""Throughput of the embedded judges in choice-probability (RLAIF) mode.

    python benchmarks/llm_throughput.py --quick     # default judge only, <= 2 minutes
    python benchmarks/llm_throughput.py             # default judge and the tiny model, more prompts

Measures, in one run per model: prompts/s on distinct ~100-130-token pair prompts through ``choice_probs_batch``
(the batch is evaluated in sorted token order, so neighbours share their longest KV prefix), the same kind of
prompts sent one at a time (plain llama-cpp-python calls: only the previous prompt's prefix is reused) and decoded
cold (empty KV cache), pairs/s when each pair (drawn from a caption pool, so captions recur as in a Motif
dataset) is judged in both orders, and the speedup of a fully cached rerun.
Prompt decoding is compute-bound on 2 cores, so tokens decoded per prompt is what the batching saves.
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, machine  # noqa: E402

from llm_reward.feedback.labelers import LLMPreferenceLabeler  # noqa: E402
from llm_reward.feedback.prompts import PairPrompt, goal_sentence  # noqa: E402
from llm_reward.llm import make_llm  # noqa: E402

EVENTS = ["You kill the {m}!", "You find {n} gold pieces.", "The {m} bites!", "You see here a {o}.",
          "There is a staircase down here.", "You hear the footsteps of a guard on patrol.", "It's a wall.",
          "You feel hungry.", "The {m} misses!", "You descend to dungeon level {n}."]
MONSTERS = ["newt", "jackal", "grid bug", "kobold", "sewer rat", "gnome lord", "hill orc"]
OBJECTS = ["dagger", "scroll labeled FOOBIE BLETCH", "potion", "food ration", "wand"]


def captions(n: int) -> list[str]:
    """``n`` distinct NetHack-style captions of two events each (pair prompts come out around 100-130 tokens)."""
    out, seen = [], set()
    for k in itertools.count():
        a, b = EVENTS[k % len(EVENTS)], EVENTS[(k * 7 + 3) % len(EVENTS)]
        text = " ".join(e.format(m=MONSTERS[(k + j) % len(MONSTERS)], n=k + 2 * j, o=OBJECTS[(k + j) % len(OBJECTS)])
                        for j, e in enumerate((a, b)))
        if text not in seen:
            seen.add(text)
            out.append(text)
        if len(out) == n:
            return out
    return out


def measure(spec: str, n_prompts: int, n_reference: int, n_pairs: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        llm = make_llm(spec, cache=Path(tmp) / "cache.sqlite")
        start = time.perf_counter()
        llm.model  # load (and on first use assemble) the GGUF outside the timed parts
        load_s = time.perf_counter() - start
        prompt = PairPrompt(domain="nethack", goal=goal_sentence("nethack", "default"))
        caps = captions(2 * (n_prompts + 2 * n_reference) + n_pairs)
        pairs = list(zip(caps[0::2], caps[1::2]))
        timed = pairs[:n_prompts]
        sequential = pairs[n_prompts:n_prompts + n_reference]
        cold = pairs[n_prompts + n_reference:n_prompts + 2 * n_reference]
        # As in a Motif dataset, pairs are drawn from a pool of captions, so captions recur across pairs.
        pool = caps[-n_pairs:]
        rng = random.Random(0)
        judged = [tuple(rng.sample(pool, 2)) for _ in range(n_pairs)]
        token_counts = [len(llm.tokens(prompt.rlaif(a, b))) for a, b in timed]

        decoded_before = llm.stats.prompt_tokens
        start = time.perf_counter()
        llm.choice_probs_batch([prompt.rlaif(a, b) for a, b in timed], ["1", "2"])
        prompts_per_s = len(timed) / (time.perf_counter() - start)
        decoded = (llm.stats.prompt_tokens - decoded_before) / len(timed)

        # Plain llama-cpp-python calls, one prompt at a time: llama.cpp keeps the previous prompt's prefix only.
        start = time.perf_counter()
        for a, b in sequential:
            llm.choice_probs_batch([prompt.rlaif(a, b)], ["1", "2"])
        sequential_per_s = len(sequential) / (time.perf_counter() - start)

        # Cold: every prompt decoded from an empty KV cache.
        start = time.perf_counter()
        for a, b in cold:
            llm.model.reset()
            llm.choice_probs_batch([prompt.rlaif(a, b)], ["1", "2"])
        cold_per_s = len(cold) / (time.perf_counter() - start)

        labeler = LLMPreferenceLabeler(llm, prompt, mode="rlaif", both_orders=True)
        start = time.perf_counter()
        labeler(judged)
        cold_s = time.perf_counter() - start
        start = time.perf_counter()
        labeler(judged)
        warm_s = time.perf_counter() - start
        return {
            "model": llm.name, "load_s": round(load_s, 2), "prompt_tokens_mean": sum(token_counts) / len(token_counts),
            "decoded_tokens_per_prompt": decoded, "prompts_per_s": prompts_per_s,
            "prompts_per_s_sequential_plain": sequential_per_s, "prompts_per_s_cold": cold_per_s,
            "speedup_vs_sequential_plain": prompts_per_s / sequential_per_s,
            "speedup_vs_cold": prompts_per_s / cold_per_s,
            "pairs_per_s_both_orders": len(judged) / cold_s, "cache_speedup": cold_s / max(warm_s, 1e-9),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="default judge only, small sample (<= 2 minutes)")
    args = parser.parse_args()
    sizes = (24, 6, 12) if args.quick else (96, 16, 48)
    default = measure("local", *sizes)
    result = {**default, "machine": machine(), "quick": args.quick}
    if not args.quick:
        result["tiny"] = measure("local:tiny", *sizes)
    emit("llm_throughput_quick" if args.quick else "llm_throughput", result)


if __name__ == "__main__":
    main()
