"""``llm-reward-rlaif``: train a small language-model policy from AI feedback and evaluate it against its start.

    llm-reward-rlaif mode=direct train.steps=40
    llm-reward-rlaif mode=distilled policy=smollm2_lora heldout_judge=small
    llm-reward-rlaif judge.spec=openai/gpt-4o-mini judge.name=gpt4o-mini data.prompts=my_prompts.jsonl

A rerun with the same overrides resumes from the last checkpoint (Ctrl-C keeps it); more ``train.steps`` continue
the same run. Prints the run directory (metrics.json, curve.png, samples.jsonl, checkpoint/).
"""

from __future__ import annotations

import json

import hydra
from omegaconf import DictConfig

from llm_reward.apps._common import CONFIG_PATH, VERSION_BASE
from llm_reward.jsonio import json_safe
from llm_reward.rlaif.pipeline import run_rlaif


@hydra.main(config_path=CONFIG_PATH, config_name="rlaif", version_base=VERSION_BASE)
def main(cfg: DictConfig) -> None:
    try:
        metrics = run_rlaif(cfg)
    except ValueError as err:  # bad configuration or input: one clear line, no traceback
        raise SystemExit(f"llm-reward-rlaif: {err}") from None
    headline = {k: v for k, v in metrics.items() if not isinstance(v, dict)}
    print(json.dumps(json_safe(headline)))  # strict JSON: a NaN prints as null


if __name__ == "__main__":
    main()
