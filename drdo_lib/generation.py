"""Batched sampling from trained policies (paper Sec. 6: nucleus sampling, top-p 0.8, T ∈ {0.2, 0.5, 0.7, 0.9}).

:func:`generate` samples one completion per prompt from a causal LM: prompts are **left-padded** (so every row's
last prompt token sits in the last column and the new tokens line up), the KV cache is on (``use_cache=True``),
sampling is nucleus (top-p) at the given temperature (``temperature == 0`` means greedy), generation stops at EOS or
after ``max_new_tokens``. Randomness is seeded per batch from ``(seed, batch index)``, so a rerun with the same
settings reproduces the same text on the same hardware.

:func:`generate_policy_samples` runs the whole grid (temperatures × seeds × samples per prompt) for one policy (the
replicates of one temperature in one batched call) and writes it as JSON Lines, one record per completion, each
carrying the settings that produced it (temperature, top-p, max_new_tokens, seed, model fingerprint). A
``<name>.settings.json`` file beside it stores the resolved :class:`GenerationConfig` and a cache key (settings +
model fingerprint + prompts); when the key matches, the file is read back instead of sampling again, so re-executing
a notebook is cheap and reproducible.

Every policy produced by the training stages can be loaded with :func:`load_policy` (a plain causal LM directory or
a :class:`~drdo_lib.models.CausalLMWithRewardHead` directory, whose LM is used for generation).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
from tqdm.auto import tqdm

from drdo_lib.hf import model_fingerprint, resolve_device, resolve_dtype

logger = logging.getLogger(__name__)

__all__ = [
    "PAPER_TEMPERATURES",
    "GenerationConfig",
    "generate",
    "generate_policy_samples",
    "load_policy",
    "load_generations",
    "encode_prompts",
]

from drdo_lib.paper_numbers import PAPER_TEMPERATURES  # noqa: E402  (the paper's T grid; defined once there)


@dataclass(frozen=True)
class GenerationConfig:
    """Settings of one sampling run (saved beside its outputs)."""

    temperatures: tuple[float, ...] = PAPER_TEMPERATURES  # sampling temperatures; 0 means greedy decoding
    top_p: float = 0.8  # nucleus sampling mass (paper: 0.8)
    max_new_tokens: int = 256  # cap on generated tokens (paper: 256)
    max_prompt_length: int = 512  # prompts longer than this keep their LAST tokens (the instruction/"TL;DR:" end)
    batch_size: int = 16  # prompts per forward batch
    samples_per_prompt: int = 1  # completions per prompt and temperature (per seed)
    seeds: tuple[int, ...] = (0,)  # sampling seeds; each seed is an independent replicate of the whole grid
    device: str = "auto"  # "auto" (cuda when available, else cpu), "cpu", "cuda", "cuda:1", ...
    dtype: str = "auto"  # "auto" (bfloat16 on cuda, float32 on cpu), "float32", "bfloat16", "float16"

    def __post_init__(self) -> None:
        object.__setattr__(self, "temperatures", tuple(float(t) for t in self.temperatures))
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        if not self.temperatures:
            raise ValueError("GenerationConfig.temperatures must name at least one temperature")
        if any(t < 0 for t in self.temperatures):
            raise ValueError(f"GenerationConfig.temperatures must be >= 0, got {self.temperatures}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"GenerationConfig.top_p must be in (0, 1], got {self.top_p}")
        for name in ("max_new_tokens", "max_prompt_length", "batch_size", "samples_per_prompt"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"GenerationConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not self.seeds:
            raise ValueError("GenerationConfig.seeds must name at least one seed")
        if self.dtype not in {"auto", "float32", "bfloat16", "float16"}:
            raise ValueError(f"GenerationConfig.dtype must be auto|float32|bfloat16|float16, got {self.dtype!r}")


def _causal_lm(model):
    """The generating LM of a policy: ``model.lm`` for a reward-head wrapper, the model itself otherwise."""
    return getattr(model, "lm", model)


def load_policy(model_dir: str | Path, *, device: str = "auto", dtype: str = "auto"):
    """Load a trained policy and its tokenizer from a run directory (e.g. ``runs/mini/policy/drdo_D_all/final``).

    A directory holding ``reward_head.safetensors`` is a :class:`~drdo_lib.models.CausalLMWithRewardHead` (the DRDO
    student); its LM is returned. Otherwise the directory is loaded with ``AutoModelForCausalLM``. The tokenizer is
    read from the same directory. Returns ``(model, tokenizer)`` with the model in eval mode on the device.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"policy directory {model_dir} does not exist (train the policy first)")
    dev = resolve_device(device)
    if (model_dir / "reward_head.safetensors").exists():
        from drdo_lib.models import CausalLMWithRewardHead

        model = _causal_lm(CausalLMWithRewardHead.from_pretrained(model_dir))
    else:
        model = AutoModelForCausalLM.from_pretrained(model_dir, use_safetensors=True)
    model = model.to(device=dev, dtype=resolve_dtype(dtype, dev)).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return model, tokenizer


@torch.no_grad()
def generate(
    model,
    tokenizer,
    prompts: Sequence[str],
    *,
    temperature: float,
    top_p: float = 0.8,
    max_new_tokens: int = 256,
    max_prompt_length: int = 512,
    batch_size: int = 16,
    seed: int = 0,
    progress: bool = True,
    desc: str | None = None,
) -> list[dict[str, Any]]:
    """Sample one completion per prompt; returns ``[{response, n_new_tokens, finished}]`` in prompt order.

    ``response`` is the decoded new text (special tokens skipped, surrounding whitespace stripped),
    ``n_new_tokens`` the number of generated tokens up to and including EOS, ``finished`` whether EOS was produced
    before ``max_new_tokens``. ``temperature == 0`` decodes greedily.
    """
    lm = _causal_lm(model)
    device = next(lm.parameters()).device
    if tokenizer.pad_token_id is None or tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer needs a pad token and an eos token for batched generation")
    out: list[dict[str, Any]] = []
    was_training = lm.training
    lm.eval()
    try:
        starts = range(0, len(prompts), batch_size)
        for b, start in enumerate(tqdm(starts, desc=desc or f"generate T={temperature}", disable=not progress,
                                       leave=False)):
            ids = encode_prompts(tokenizer, prompts[start:start + batch_size], max_prompt_length)
            enc = _left_pad(ids, tokenizer.pad_token_id, device)
            # One seed per (run seed, batch): reruns reproduce, and batches do not share a random stream.
            torch.manual_seed(_batch_seed(seed, b))
            sample_kw = dict(do_sample=True, temperature=float(temperature), top_p=float(top_p), top_k=0) \
                if temperature > 0 else dict(do_sample=False)
            seqs = lm.generate(**enc, max_new_tokens=max_new_tokens, use_cache=True,
                               pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                               **sample_kw)
            new = seqs[:, enc["input_ids"].shape[1]:].cpu()
            for row in new.tolist():
                n, finished = len(row), False
                if tokenizer.eos_token_id in row:
                    n, finished = row.index(tokenizer.eos_token_id) + 1, True
                text = tokenizer.decode(row[:n], skip_special_tokens=True).strip()
                out.append({"response": text, "n_new_tokens": n, "finished": finished})
    finally:
        lm.train(was_training)
    return out


def encode_prompts(tokenizer, prompts: Sequence[str], max_prompt_length: int) -> list[list[int]]:
    """Token ids of prompts exactly as the training stages build them (:mod:`drdo_lib.data.tokenize`): the text
    without special tokens, with BOS prepended when the tokenizer adds one. Prompts longer than
    ``max_prompt_length`` keep their last tokens (the part that asks for the summary), after the BOS."""
    bos = tokenizer.bos_token_id
    adds_bos = bos is not None and tokenizer("a", add_special_tokens=True)["input_ids"][:1] == [bos]
    out = []
    for ids in tokenizer(list(prompts), add_special_tokens=False)["input_ids"]:
        if adds_bos and ids[:1] != [bos]:
            ids = [bos] + ids
        if len(ids) > max_prompt_length:
            ids = ([bos] if adds_bos else []) + ids[len(ids) - max_prompt_length + int(adds_bos):]
        out.append(ids)
    return out


def _left_pad(ids: list[list[int]], pad_id: int, device) -> dict[str, torch.Tensor]:
    T = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), T), dtype=torch.long)
    for i, x in enumerate(ids):
        if x:
            input_ids[i, T - len(x):] = torch.as_tensor(x, dtype=torch.long)
            mask[i, T - len(x):] = 1
    return {"input_ids": input_ids.to(device), "attention_mask": mask.to(device)}


def _batch_seed(seed: int, batch_index: int) -> int:
    return (int(seed) * 1_000_003 + int(batch_index) * 7919) % (2**31 - 1)


def _cache_key(cfg: GenerationConfig, fingerprint: str, prompts: Sequence[str]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(dataclasses.asdict(cfg), sort_keys=True, default=str).encode())
    h.update(fingerprint.encode())
    for p in prompts:
        h.update(p.encode())
        h.update(b"\x00")
    return h.hexdigest()[:20]


def generate_policy_samples(
    name: str,
    model,
    tokenizer,
    prompts: Sequence[str],
    prompt_ids: Sequence[Any],
    cfg: GenerationConfig,
    out_dir: str | Path,
    *,
    extra: dict[str, Any] | None = None,
    fingerprint: str | None = None,
    progress: bool = True,
) -> Path:
    """Sample ``cfg.seeds × cfg.temperatures × cfg.samples_per_prompt`` for one policy → ``<out_dir>/<name>.jsonl``.

    ``extra`` (e.g. ``{"method": "drdo", "split": "D_all", "model": "runs/.../final"}``) is copied into every record.
    If ``<name>.settings.json`` holds the same cache key (settings, model fingerprint, prompts) the existing file is
    reused. Returns the JSONL path.
    """
    if len(prompts) != len(prompt_ids):
        raise ValueError(f"{len(prompts)} prompts but {len(prompt_ids)} prompt ids")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path, settings_path = out_dir / f"{name}.jsonl", out_dir / f"{name}.settings.json"
    fp = fingerprint or model_fingerprint(model)
    key = _cache_key(cfg, fp, prompts)
    if path.exists() and settings_path.exists():
        try:
            if json.loads(settings_path.read_text()).get("cache_key") == key:
                logger.info("generation cache hit for %s (%s)", name, path)
                return path
        except json.JSONDecodeError:
            pass
    records: list[dict[str, Any]] = []
    # All replicates (seed × sample) of one temperature are sampled in one batched call over the tiled prompts,
    # which keeps batches full; the random stream is seeded from (first seed, temperature), so each replicate is an
    # independent, reproducible draw ("seed" labels the replicate).
    reps = [(sd, k) for sd in cfg.seeds for k in range(cfg.samples_per_prompt)]
    for ti, temp in enumerate(tqdm(cfg.temperatures, desc=f"sample {name}", disable=not progress)):
        outs = generate(model, tokenizer, list(prompts) * len(reps), temperature=temp, top_p=cfg.top_p,
                        max_new_tokens=cfg.max_new_tokens, max_prompt_length=cfg.max_prompt_length,
                        batch_size=cfg.batch_size, seed=cfg.seeds[0] * 1000 + ti, progress=False)
        for r, (sd, k) in enumerate(reps):
            block = outs[r * len(prompts):(r + 1) * len(prompts)]
            for pid, prompt, o in zip(prompt_ids, prompts, block):
                records.append({"policy": name, **(extra or {}), "prompt_id": pid, "prompt": prompt,
                                "temperature": temp, "seed": sd, "sample": k, **o, "top_p": cfg.top_p,
                                "max_new_tokens": cfg.max_new_tokens, "model_fingerprint": fp})
    tmp = path.with_suffix(".jsonl.tmp")
    with open(tmp, "w") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    settings_path.write_text(json.dumps({"cache_key": key, "model_fingerprint": fp, "n_prompts": len(prompts),
                                         "n_records": len(records), "extra": extra or {},
                                         "generation_config": dataclasses.asdict(cfg)}, indent=2, default=str))
    logger.info("wrote %d completions of %s to %s", len(records), name, path)
    return path


def load_generations(paths: Iterable[str | Path]):
    """Read generation JSONL files into one pandas DataFrame (one row per completion)."""
    import pandas as pd

    rows = []
    for p in paths:
        with open(p) as f:
            rows.extend(json.loads(line) for line in f if line.strip())
    return pd.DataFrame(rows)
