"""``llm-reward-fit``: distil the labels written by ``llm-reward-annotate`` into a reward-model artifact.

    llm-reward-annotate env=nethack/score feedback.goal=gold pairs.n=2000
    llm-reward-fit      env=nethack/score feedback.goal=gold pairs.n=2000 reward_model.encoder=sentence_embedding

Use the same overrides as the annotate run: they name the label store this reads.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from llm_reward.apps._common import (CONFIG_PATH, VERSION_BASE, ConfigError, collect_from_config, config_key,
                                     exit_on_config_error, fit_from_config, labeler_from_config, log,
                                     make_llm_from_config, use_env_adapter)
from llm_reward.motif.stages import load_labels


@hydra.main(config_path=CONFIG_PATH, config_name="fit", version_base=VERSION_BASE)
def main(cfg: DictConfig) -> None:
    try:
        use_env_adapter(cfg)
        labeler = labeler_from_config(cfg, make_llm_from_config(cfg))
        with config_key("paths.labels"):  # refuses labels made under another judge config
            labelled = load_labels(Path(cfg.paths.labels), labeler)
    except ConfigError as err:
        raise exit_on_config_error("llm-reward-fit", err) from None
    artifact = fit_from_config(cfg, labelled, collect_from_config(cfg), Path(cfg.paths.reward_model))
    log.info("reward model: %s  %s", cfg.paths.reward_model, artifact.metrics)
    print(Path(cfg.paths.reward_model).resolve())


if __name__ == "__main__":
    main()
