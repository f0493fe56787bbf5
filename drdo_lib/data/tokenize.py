"""Prompt formatting and tokenisation with prompt masking (preference pairs and SFT examples).

Conventions (shared with :func:`drdo_lib.losses.sequence_logps`): a tokenised response is
``input_ids = prompt_ids + response_ids + [eos]`` with a ``response_mask`` that is 1 exactly on ``response_ids``
and the EOS, 0 on the prompt; labels are the input ids themselves (not shifted; the loss shifts internally).

Length filter (paper App. D: "we filter for prompt and response pairs that are < 1024 tokens after tokenization"):
a pair is kept when the prompt has at most ``max_prompt_length`` tokens and *both* ``prompt + response + EOS`` have
at most ``max_length`` tokens (so the paper's "< 1024 tokens" before the EOS is ``max_length=1024`` here). Rows are
never truncated; dropped rows are counted by reason and logged.
"""
from __future__ import annotations

import logging
from collections import Counter
from typing import Any, Mapping

import torch

from drdo_lib.data.formats import TLDR_TEMPLATE, format_tldr_prompt

logger = logging.getLogger(__name__)

__all__ = [
    "TEMPLATES",
    "TLDR_TEMPLATE",
    "format_prompt",
    "tokenize_preference_dataset",
    "tokenize_sft_dataset",
    "collate_preference",
    "pad_sequences",
    "PREFERENCE_TOKEN_COLUMNS",
]

TEMPLATES = ("tldr", "chat", "raw")
PREFERENCE_TOKEN_COLUMNS = tuple(
    f"{side}_{kind}" for side in ("chosen", "rejected") for kind in ("input_ids", "attention_mask", "response_mask")
)


def spaced_response(prompt: str, response: str | None) -> str:
    """The response text as it is tokenised after ``prompt``: "TL;DR:" + " summary" — BPE tokenizers need the
    separating space on the response side, so one is added when neither side has it (empty stays empty)."""
    r = response or ""
    if r.strip() and prompt and not prompt[-1].isspace() and not r[0].isspace():
        r = " " + r
    return r


def format_prompt(row_or_prompt: str | Mapping[str, Any], tokenizer=None, template: str = "tldr") -> str:
    """The prompt text fed to the model.

    ``row_or_prompt`` is a prompt string or a row with ``prompt`` (already formatted by the data loaders) or with
    ``subreddit``/``title``/``post`` (or ``info`` holding them), formatted with the data stage's
    :func:`~drdo_lib.data.formats.format_tldr_prompt` (:data:`~drdo_lib.data.formats.TLDR_TEMPLATE`).

    - ``"tldr"``: the TL;DR template (a prompt string passes through unchanged);
    - ``"chat"``: the tokenizer's chat template with a single user turn and the generation prompt, when the
      tokenizer has one (instruct/chat models such as Phi-3-Instruct); otherwise the raw prompt;
    - ``"raw"``: the prompt string as is.
    """
    if template not in TEMPLATES:
        raise ValueError(f"template must be one of {TEMPLATES}, got {template!r}")
    if isinstance(row_or_prompt, str):
        prompt = row_or_prompt
    else:
        row = dict(row_or_prompt)
        info = row.get("info") if isinstance(row.get("info"), Mapping) else row
        if row.get("prompt") is not None:
            prompt = row["prompt"]
        elif all(info.get(k) is not None for k in ("title", "post")):
            prompt = format_tldr_prompt(info.get("subreddit") or "", info["title"], info["post"])
        else:
            raise ValueError(f"row has neither 'prompt' nor TL;DR fields (title, post): keys {sorted(row)}")
    if not isinstance(prompt, str):
        raise ValueError(f"prompt must be a string, got {type(prompt).__name__}")
    if template == "chat" and tokenizer is not None and getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
    return prompt


class _Encoder:
    """Tokenises prompt/response text consistently (BOS handling, leading space, EOS)."""

    def __init__(self, tokenizer, template: str):
        self.tok = tokenizer
        self.template = template
        if tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer needs an eos_token")
        self.eos = tokenizer.eos_token_id
        bos = tokenizer.bos_token_id
        with_special = tokenizer("a", add_special_tokens=True)["input_ids"]
        self.bos = bos if (bos is not None and with_special[:1] == [bos]) else None

    def prompts(self, rows: list) -> tuple[list[str], list[list[int]]]:
        texts = [format_prompt(r, self.tok, self.template) for r in rows]
        ids = self.tok(texts, add_special_tokens=False)["input_ids"]
        if self.bos is not None:
            ids = [x if x[:1] == [self.bos] else [self.bos] + x for x in ids]
        return texts, ids

    def responses(self, prompts: list[str], responses: list[str]) -> list[list[int]]:
        fixed = [spaced_response(p, r) for p, r in zip(prompts, responses)]
        ids = self.tok(fixed, add_special_tokens=False)["input_ids"]
        return [x + [self.eos] for x in ids]


def _empty(text) -> bool:
    return text is None or not str(text).strip()


def tokenize_preference_dataset(
    ds,
    tokenizer,
    *,
    max_prompt_length: int,
    max_length: int,
    template: str = "tldr",
    num_proc: int | None = None,
):
    """Tokenise preference rows (``prompt``, ``chosen``, ``rejected``) and drop those over the length limits.

    Adds ``chosen_input_ids``, ``chosen_attention_mask``, ``chosen_response_mask``, ``rejected_*`` (the same),
    ``prompt_length`` (lists of ints; EOS appended to each response) and keeps every original column.

    Returns ``(dataset, counts)`` where ``counts`` has ``rows_in``, ``rows_kept`` and ``dropped_<reason>`` for
    ``empty_prompt``, ``empty_response``, ``prompt_too_long`` and ``too_long`` (the first reason that applies).
    """
    if max_prompt_length <= 0 or max_length <= 0 or max_prompt_length >= max_length:
        raise ValueError(f"need 0 < max_prompt_length < max_length, got {max_prompt_length}, {max_length}")
    missing = {"prompt", "chosen", "rejected"} - set(ds.column_names)
    if missing and not ({"chosen", "rejected"} <= set(ds.column_names) and {"title", "post"} <= set(ds.column_names)):
        raise ValueError(f"preference dataset is missing column(s) {sorted(missing)}; has {ds.column_names}")
    enc = _Encoder(tokenizer, template)

    def fn(batch):
        n = len(batch["chosen"])
        rows = [{k: batch[k][i] for k in batch} for i in range(n)]
        ptexts, pids = enc.prompts(rows)
        out: dict[str, list] = {c: [] for c in PREFERENCE_TOKEN_COLUMNS}
        out["prompt_length"], out["_drop"] = [], []
        cids = enc.responses(ptexts, batch["chosen"])
        rids = enc.responses(ptexts, batch["rejected"])
        for i in range(n):
            p = pids[i]
            reason = ""
            if _empty(ptexts[i]):
                reason = "empty_prompt"
            elif _empty(batch["chosen"][i]) or _empty(batch["rejected"][i]):
                reason = "empty_response"
            elif len(p) > max_prompt_length:
                reason = "prompt_too_long"
            elif len(p) + max(len(cids[i]), len(rids[i])) > max_length:
                reason = "too_long"
            out["_drop"].append(reason)
            out["prompt_length"].append(len(p))
            for side, r in (("chosen", cids[i]), ("rejected", rids[i])):
                out[f"{side}_input_ids"].append(p + r)
                out[f"{side}_attention_mask"].append([1] * (len(p) + len(r)))
                out[f"{side}_response_mask"].append([0] * len(p) + [1] * len(r))
        return out

    mapped = ds.map(fn, batched=True, num_proc=num_proc, desc="Tokenising preference pairs")
    return _apply_drops(mapped, "preference pairs")


def _apply_drops(mapped, what: str):
    reasons = Counter(mapped["_drop"])
    counts = {"rows_in": len(mapped), "rows_kept": reasons.get("", 0)}
    for reason in ("empty_prompt", "empty_response", "prompt_too_long", "too_long"):
        counts[f"dropped_{reason}"] = reasons.get(reason, 0)
    kept = mapped.filter(lambda r: [x == "" for x in r], input_columns="_drop", batched=True).remove_columns("_drop")
    dropped = {k: v for k, v in counts.items() if k.startswith("dropped_") and v}
    logger.info("tokenised %s: kept %d of %d; dropped %s", what, counts["rows_kept"], counts["rows_in"], dropped or "none")
    return kept, counts


def tokenize_sft_dataset(
    ds,
    tokenizer,
    *,
    max_length: int,
    max_prompt_length: int | None = None,
    template: str = "tldr",
    completion_column: str | None = None,
    num_proc: int | None = None,
):
    """Tokenise SFT rows (``prompt`` + ``completion``, ``response`` or ``label``) for TRL's ``SFTTrainer``.

    Returns ``(dataset, counts)``; the dataset has exactly ``input_ids`` (prompt + completion + EOS) and
    ``completion_mask`` (1 on the completion and EOS), which ``SFTTrainer(completion_only_loss=True)`` turns into
    labels with the prompt masked (-100). Rows over the limits are dropped and counted as for preference pairs.
    """
    cols = set(ds.column_names)
    if completion_column is None:
        completion_column = next((c for c in ("completion", "response", "label", "chosen") if c in cols), None)
    if completion_column is None or completion_column not in cols:
        raise ValueError(f"SFT dataset needs a completion column (completion, response or label); has {sorted(cols)}")
    if max_prompt_length is None:
        max_prompt_length = max_length - 1
    enc = _Encoder(tokenizer, template)

    def fn(batch):
        n = len(batch[completion_column])
        rows = [{k: batch[k][i] for k in batch} for i in range(n)]
        ptexts, pids = enc.prompts(rows)
        cids = enc.responses(ptexts, batch[completion_column])
        out = {"input_ids": [], "completion_mask": [], "_drop": []}
        for i in range(n):
            reason = ""
            if _empty(ptexts[i]):
                reason = "empty_prompt"
            elif _empty(batch[completion_column][i]):
                reason = "empty_response"
            elif len(pids[i]) > max_prompt_length:
                reason = "prompt_too_long"
            elif len(pids[i]) + len(cids[i]) > max_length:
                reason = "too_long"
            out["_drop"].append(reason)
            out["input_ids"].append(pids[i] + cids[i])
            out["completion_mask"].append([0] * len(pids[i]) + [1] * len(cids[i]))
        return out

    mapped = ds.map(fn, batched=True, num_proc=num_proc, remove_columns=ds.column_names, desc="Tokenising SFT rows")
    return _apply_drops(mapped, "SFT rows")


def pad_sequences(seqs: list[list[int]], value: int, length: int | None = None, side: str = "right") -> torch.Tensor:
    """Pad lists of ints to ``(B, length)`` (default: the longest) on the given side."""
    if side not in ("left", "right"):
        raise ValueError(f"padding side must be 'left' or 'right', got {side!r}")
    T = max(len(s) for s in seqs) if length is None else length
    out = torch.full((len(seqs), T), value, dtype=torch.long)
    for i, s in enumerate(seqs):
        if len(s) > T:
            raise ValueError(f"sequence of length {len(s)} does not fit in {T}")
        if s:
            t = torch.as_tensor(s, dtype=torch.long)
            if side == "right":
                out[i, : len(s)] = t
            else:
                out[i, T - len(s):] = t
    return out


def collate_preference(batch: list[dict], pad_token_id: int, padding_side: str = "right") -> dict[str, torch.Tensor]:
    """Collate tokenised preference rows into padded ``LongTensor``\\ s.

    Chosen and rejected sequences are padded to one common length ``T`` (so a trainer can concatenate them into a
    single ``(2B, T)`` forward): ``*_input_ids`` with ``pad_token_id``, ``*_attention_mask`` and
    ``*_response_mask`` with 0. Numeric columns become tensors: ``prompt_length`` (long), float scalars such as
    ``ref_chosen_logp`` / ``oracle_chosen_reward`` (float32, ``(B,)``) and lists of floats such as
    ``ensemble_chosen_rewards`` (float32, ``(B, K)``). Text and other columns are dropped.
    """
    if not batch:
        raise ValueError("empty batch")
    T = max(len(row[f"{s}_input_ids"]) for row in batch for s in ("chosen", "rejected"))
    out: dict[str, torch.Tensor] = {}
    for col in PREFERENCE_TOKEN_COLUMNS:
        value = pad_token_id if col.endswith("input_ids") else 0
        out[col] = pad_sequences([row[col] for row in batch], value, T, padding_side)
    for key, v in batch[0].items():
        if key in out:
            continue
        if isinstance(v, bool) or any(row.get(key) is None for row in batch):
            continue
        if isinstance(v, int):
            out[key] = torch.tensor([row[key] for row in batch], dtype=torch.long)
        elif isinstance(v, float):
            out[key] = torch.tensor([row[key] for row in batch], dtype=torch.float32)
        elif isinstance(v, (list, tuple)) and v and all(isinstance(x, float) for x in v):
            out[key] = torch.tensor([list(row[key]) for row in batch], dtype=torch.float32)
    return out
