"""``llm-reward-fit``: distil the labels written by ``llm-reward-annotate`` into a reward-model artifact.

    llm-reward-annotate env=nethack/score feedback.goal=gold pairs.n=2000
    llm-reward-fit      env=nethack/score feedback.goal=gold pairs.n=2000 reward_model.encoder=sentence_embedding

Use the same overrides as the annotate run: they name the label store this reads.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from llm_reward.apps._common import CONFIG_PATH, VERSION_BASE, log, make_llm_from_config
from llm_reward.feedback.store import LabelStore
from llm_reward.motif.stages import collect_from_config, encoder_settings, fit_stage, make_labeler


@hydra.main(config_path=CONFIG_PATH, config_name="fit", version_base=VERSION_BASE)
def main(cfg: DictConfig) -> None:
    from llm_reward.envs import captioner_name

    store_path = Path(cfg.paths.labels)
    if not store_path.exists():
        raise SystemExit(f"no labels at {store_path}: run llm-reward-annotate with the same overrides first")
    labeler = make_labeler(cfg.feedback, make_llm_from_config(cfg), env_id=cfg.env.id)
    store = LabelStore(store_path, labeler.fingerprint)  # refuses labels made under another judge config
    try:
        labelled = store.load()
    finally:
        store.close()
    rollouts = collect_from_config(cfg)
    encoder, encoder_kwargs = encoder_settings(cfg)
    artifact = fit_stage(labelled, rollouts, captioner=captioner_name(cfg.env.id), path=Path(cfg.paths.reward_model),
                         encoder=encoder, encoder_kwargs=encoder_kwargs, epochs=cfg.reward_model.epochs,
                         n_members=cfg.reward_model.n_members, seed=cfg.data_seed,
                         targets=cfg.reward_model.targets, progress=cfg.progress)
    log.info("reward model: %s  %s", cfg.paths.reward_model, artifact.metrics)
    print(Path(cfg.paths.reward_model).resolve())


if __name__ == "__main__":
    main()
