"""``llm-reward-annotate``: caption rollouts, sample pairs, and label them with an LLM judge.

    llm-reward-annotate env=nethack/score llm=local feedback=motif feedback.goal=gold pairs.n=2000
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from llm_reward.apps._common import CONFIG_PATH, VERSION_BASE, log, make_llm_from_config
from llm_reward.jsonio import write_json
from llm_reward.motif.stages import (annotate_stage, check_encodable, collect_from_config, encoder_settings, make_labeler,
                                 sample_pairs)


@hydra.main(config_path=CONFIG_PATH, config_name="annotate", version_base=VERSION_BASE)
def main(cfg: DictConfig) -> None:
    llm = make_llm_from_config(cfg)  # fails fast on a bad spec, missing key or missing model file
    labeler = make_labeler(cfg.feedback, llm, env_id=cfg.env.id)
    rollouts = collect_from_config(cfg)
    check_encodable(rollouts, *encoder_settings(cfg))  # llm-reward-fit reads these labels: fail before the judge runs
    pairs = sample_pairs(rollouts, cfg.pairs.n, unique_captions=cfg.pairs.unique_captions, seed=cfg.data_seed)
    store = Path(cfg.paths.labels)
    _, report = annotate_stage(pairs, labeler, store_path=store, batch_size=cfg.pairs.batch_size,
                               progress=cfg.progress)
    write_json(store.with_suffix(".report.json"), report.as_dict())
    log.info("labels: %s  %s", store, report.as_dict())
    print(store)


if __name__ == "__main__":
    main()
