"""Throughput of the embedded judges in choice-probability (RLAIF) mode.

    python benchmarks/llm_throughput.py --quick     # default judge only, <= 3 minutes
    python benchmarks/llm_throughput.py             # default judge and the tiny model, more prompts

Measures, in one run per model: prompts/s on distinct ~100-130-token pair prompts through ``choice_probs_batch``
(the batch is evaluated in sorted token order, so neighbours share their longest KV prefix), the same kind of
prompts sent one at a time (plain llama-cpp-python calls: only the previous prompt's prefix is reused) and decoded
cold (empty KV cache), pairs/s when each pair (drawn from a caption pool, so captions recur as in a Motif
dataset) is judged in both orders, and the speedup of a fully cached rerun.
Prompt decoding is compute-bound on 2 cores, so tokens decoded per prompt is what the batching saves.

The three ways of sending prompts are timed as a side-by-side comparison on a shared machine should be: after a
warm-up of each (the first calls after loading a model run slower), in ``--rounds`` rounds that alternate them
(batched, one at a time, cold, then the reverse order in the next round; each round on new prompts), so a change of
machine load hits all three alike. The result lists every round and reports the speedups as the median over rounds
with the lowest and highest round.
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
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


def measure(spec: str, n_prompts: int, n_reference: int, n_pairs: int, rounds: int = 3,
            warmup: int = 2) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        llm = make_llm(spec, cache=Path(tmp) / "cache.sqlite")
        start = time.perf_counter()
        llm.model  # load (and on first use assemble) the GGUF outside the timed parts
        load_s = time.perf_counter() - start
        prompt = PairPrompt(domain="nethack", goal=goal_sentence("nethack", "default"))
        per_round = n_prompts + 2 * n_reference
        caps = captions(2 * (3 * warmup + rounds * per_round) + n_pairs)
        pairs = list(zip(caps[0::2], caps[1::2]))
        fresh = iter(pairs)  # every timed or warm-up prompt is new: no result-cache hit anywhere
        # As in a Motif dataset, pairs are drawn from a pool of captions, so captions recur across pairs.
        pool = caps[-n_pairs:]
        rng = random.Random(0)
        judged = [tuple(rng.sample(pool, 2)) for _ in range(n_pairs)]

        def batched(chunk: list[tuple[str, str]]) -> None:
            llm.choice_probs_batch([prompt.rlaif(a, b) for a, b in chunk], ["1", "2"])

        def one_at_a_time(chunk: list[tuple[str, str]]) -> None:
            # Plain llama-cpp-python calls, one prompt at a time: llama.cpp keeps the previous prompt's prefix only.
            for a, b in chunk:
                llm.choice_probs_batch([prompt.rlaif(a, b)], ["1", "2"])

        def cold(chunk: list[tuple[str, str]]) -> None:
            for a, b in chunk:  # every prompt decoded from an empty KV cache
                llm.model.reset()
                llm.choice_probs_batch([prompt.rlaif(a, b)], ["1", "2"])

        ways = {"batched": (batched, n_prompts), "sequential_plain": (one_at_a_time, n_reference),
                "cold": (cold, n_reference)}
        for run, _ in ways.values():  # warm-up, untimed
            run([next(fresh) for _ in range(warmup)])
        timed = [next(fresh) for _ in range(n_prompts)]
        token_counts = [len(llm.tokens(prompt.rlaif(a, b))) for a, b in timed]
        table: list[dict[str, float]] = []
        decoded = []
        for i in range(rounds):
            row: dict[str, float] = {"round": i}
            # the order turns every round (ABC, CBA, ...), so no way always runs first after the previous one
            for name, (run, n) in (list(ways.items()) if i % 2 == 0 else list(reversed(ways.items()))):
                chunk = timed if (name == "batched" and i == 0) else [next(fresh) for _ in range(n)]
                before, start = llm.stats.prompt_tokens, time.perf_counter()
                run(chunk)
                row[f"prompts_per_s_{name}"] = len(chunk) / (time.perf_counter() - start)
                if name == "batched":
                    decoded.append((llm.stats.prompt_tokens - before) / len(chunk))
            row["speedup_vs_sequential_plain"] = row["prompts_per_s_batched"] / row["prompts_per_s_sequential_plain"]
            row["speedup_vs_cold"] = row["prompts_per_s_batched"] / row["prompts_per_s_cold"]
            table.append(row)

        labeler = LLMPreferenceLabeler(llm, prompt, mode="rlaif", both_orders=True)
        start = time.perf_counter()
        labeler(judged)
        cold_s = time.perf_counter() - start
        start = time.perf_counter()
        labeler(judged)
        warm_s = time.perf_counter() - start

        def spread(key: str) -> dict[str, float]:
            values = [row[key] for row in table]
            return {"median": float(statistics.median(values)), "min": min(values), "max": max(values)}

        return {
            "model": llm.name, "load_s": round(load_s, 2), "prompt_tokens_mean": sum(token_counts) / len(token_counts),
            "decoded_tokens_per_prompt": sum(decoded) / len(decoded), "rounds": table, "warmup_prompts": warmup,
            **{key: spread(key)["median"] for key in table[0] if key != "round"},
            "speedup_vs_sequential_plain_rounds": spread("speedup_vs_sequential_plain"),
            "speedup_vs_cold_rounds": spread("speedup_vs_cold"),
            "prompts_per_s": spread("prompts_per_s_batched")["median"],
            "pairs_per_s_both_orders": len(judged) / cold_s, "cache_speedup": cold_s / max(warm_s, 1e-9),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="default judge only, small sample (<= 3 minutes)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of the three ways (default 3)")
    args = parser.parse_args()
    sizes = (12, 4, 12) if args.quick else (48, 12, 48)
    start = machine()
    default = measure("local", *sizes, rounds=args.rounds)
    result = {**default, "machine": start, "load_after": machine()["load"], "quick": args.quick}
    if not args.quick:
        result["tiny"] = measure("local:tiny", *sizes, rounds=args.rounds)
    emit("llm_throughput_quick" if args.quick else "llm_throughput", result)


if __name__ == "__main__":
    main()
