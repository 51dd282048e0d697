"""``llm-reward-train``: the main job. Collect -> annotate -> fit -> train -> evaluate, one run directory.

    llm-reward-train                                   # DoorKey-6x6, Motif reward from the embedded judge
    llm-reward-train experiment=smoke                  # the same path in about a minute and a half
    llm-reward-train env=minigrid/keycorridor_s3r3 reward=oracle seed=1
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from llm_reward.apps._common import CONFIG_PATH, VERSION_BASE
from llm_reward.apps.experiment import run_experiment


@hydra.main(config_path=CONFIG_PATH, config_name="train", version_base=VERSION_BASE)
def main(cfg: DictConfig) -> None:
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    run_experiment(cfg, run_dir)
    print(run_dir.resolve())


if __name__ == "__main__":
    main()
