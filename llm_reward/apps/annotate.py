"""``llm-reward-annotate``: caption rollouts, sample pairs, and label them with an LLM judge.

    llm-reward-annotate env=nethack/score llm=local feedback=motif feedback.goal=gold pairs.n=2000
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from llm_reward.apps._common import (CONFIG_PATH, VERSION_BASE, ConfigError, collect_from_config, config_key,
                                     exit_on_config_error, labeler_from_config, log, make_llm_from_config,
                                     recipe_from_config, use_env_adapter)
from llm_reward.jsonio import write_json
from llm_reward.motif.stages import annotate_stage, sample_pairs


@hydra.main(config_path=CONFIG_PATH, config_name="annotate", version_base=VERSION_BASE)
def main(cfg: DictConfig) -> None:
    try:
        use_env_adapter(cfg)
        with config_key("pairs.n"):
            if int(cfg.pairs.n) < 1:
                raise ValueError(f"the number of caption pairs to label must be >= 1, got {cfg.pairs.n}")
        # fails fast on a bad spec, missing key or missing model file
        labeler = labeler_from_config(cfg, make_llm_from_config(cfg))
        recipe = recipe_from_config(cfg)
        rollouts = collect_from_config(cfg)
        with config_key("reward_model.max_chars"):  # llm-reward-fit reads these labels: fail before the judge runs
            recipe.check_encodable(rollouts["caption"].tolist())
    except ConfigError as err:
        raise exit_on_config_error("llm-reward-annotate", err) from None
    pairs = sample_pairs(rollouts, cfg.pairs.n, unique_captions=cfg.pairs.unique_captions, seed=cfg.data_seed)
    store = Path(cfg.paths.labels)
    _, report = annotate_stage(pairs, labeler, store_path=store, batch_size=cfg.pairs.batch_size,
                               progress=cfg.progress)
    write_json(store.with_suffix(".report.json"), report.as_dict())
    log.info("labels: %s  %s", store, report.as_dict())
    print(store)


if __name__ == "__main__":
    main()
