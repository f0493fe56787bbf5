"""Precomputed oracle rewards and reference log-probabilities, as dataset columns, cached on disk.

No oracle, reward ensemble or reference model is in memory while a student trains: everything the
losses need from those models is computed once here and stored as columns of the tokenised preference dataset
(:func:`drdo_lib.data.tokenize.tokenize_preference_dataset`):

| function | columns | paper |
|---|---|---|
| :func:`precompute_rewards` (one model) | ``oracle_chosen_reward``, ``oracle_rejected_reward`` | r* of Eq. 6 |
| :func:`precompute_rewards` (K models) | ``ensemble_chosen_rewards``, ``ensemble_rejected_rewards`` (K floats) | Eq. 4 |
| :func:`precompute_ref_logps` | ``ref_chosen_logp``, ``ref_rejected_logp`` | z^ref of Eq. 3, 4 |

Cache. Values are cached per *row* under ``cache_dir``, in one ``.npz`` file per (model fingerprint, kind, dtype):
the model fingerprint (:func:`drdo_lib.hf.model_fingerprint`) is a SHA-256 of the model's ``*.safetensors``
weights and its JSON/tokenizer files (or of its parameters for an in-memory model); each row is keyed by a hash of its token ids and
response mask (the data fingerprint at row granularity). A rerun with the same model and data reads every value
back without loading the model; a changed model gets a new file; a changed or new row is computed and added.
Overlapping datasets (D_hc,he and D_lc,le are subsets of D_all) therefore share work. Reference log-probs are stored
as sums over response tokens; ``logp_reduction="mean"`` divides by the number of response tokens, exactly as
:func:`drdo_lib.losses.sequence_logps` does.
"""
from __future__ import annotations

import gc
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from drdo_lib.data.tokenize import collate_preference
from drdo_lib.hf import model_fingerprint, resolve_device
from drdo_lib.losses import LOGP_REDUCTIONS, reduce_logps

logger = logging.getLogger(__name__)

__all__ = [
    "precompute_rewards",
    "precompute_ref_logps",
    "score_rewards",
    "score_ref_logps",
    "row_keys",
    "response_logps_sum",
]

def row_keys(tokenized_ds, batch_size: int = 2048) -> list[bytes]:
    """A 16-byte hash per row of its chosen/rejected token ids and response masks (the row's data fingerprint)."""
    cols = ["chosen_input_ids", "chosen_response_mask", "rejected_input_ids", "rejected_response_mask"]
    keys: list[bytes] = []
    for batch in tokenized_ds.select_columns(cols).iter(batch_size=batch_size):
        for i in range(len(batch[cols[0]])):
            h = hashlib.blake2b(digest_size=16)
            for c in cols:
                a = np.asarray(batch[c][i], dtype=np.int64)
                h.update(len(a).to_bytes(8, "little"))
                h.update(a.tobytes())
            keys.append(h.digest())
    return keys


# ----------------------------------------------------------------------------------------------------------------
# The row-level cache
# ----------------------------------------------------------------------------------------------------------------
class _RowCache:
    """``{row key: float64 vector}`` in one ``.npz`` per (kind, model fingerprint, settings); atomic writes."""

    def __init__(self, cache_dir: str | Path, kind: str, fingerprint: str, settings: dict):
        self.dir = Path(cache_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        tag = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
        self.path = self.dir / f"{kind}-{fingerprint}-{tag}.npz"
        self.values: dict[bytes, np.ndarray] = {}
        if self.path.exists():
            try:
                with np.load(self.path, allow_pickle=False) as z:
                    ks, vs = z["keys"], z["values"]  # keys: (N, 16) uint8 (an "S16" array would strip NULs)
                    if ks.ndim != 2 or vs.ndim != 2 or len(ks) != len(vs):
                        raise ValueError(f"keys {ks.shape} and values {vs.shape} do not match")
                    bad = int((~np.isfinite(vs)).any(axis=1).sum())
                    if bad:
                        raise ValueError(f"{bad} of {len(vs)} rows hold non-finite values (NaN/inf)")
                    for k, v in zip(ks, vs):
                        self.values[k.tobytes()] = v
            except Exception as e:  # truncated / corrupt zip, missing arrays, NaN/inf: quarantine and recompute
                self.values = {}
                self._quarantine(f"{type(e).__name__}: {e}")
        self.settings = settings

    def _quarantine(self, reason: str) -> None:
        """Rename the unusable cache file aside (``<name>.bad-<UTC timestamp>``) so that it is recomputed."""
        import time

        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        bad = self.path.with_name(f"{self.path.name}.bad-{stamp}-{os.getpid()}")
        try:
            os.replace(self.path, bad)
        except FileNotFoundError:  # another process quarantined it first
            pass
        logger.warning("precompute cache %s is unusable (%s): moved aside to %s; its rows are recomputed",
                       self.path, reason, bad.name)

    def missing(self, keys: Sequence[bytes]) -> list[int]:
        return [i for i, k in enumerate(keys) if k not in self.values]

    def update(self, keys: Sequence[bytes], values: np.ndarray) -> None:
        for k, v in zip(keys, values):
            self.values[k] = np.asarray(v, dtype=np.float64)
        ks = np.frombuffer(b"".join(self.values), dtype=np.uint8).reshape(len(self.values), -1)
        vs = np.stack(list(self.values.values()))
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp.npz")
        np.savez(tmp, keys=ks, values=vs)
        os.replace(tmp, self.path)
        (self.dir / f"{self.path.stem}.json").write_text(json.dumps(self.settings, indent=2, sort_keys=True))

    def get(self, keys: Sequence[bytes]) -> np.ndarray:
        return np.stack([self.values[k] for k in keys]) if keys else np.zeros((0, 2))


# ----------------------------------------------------------------------------------------------------------------
# Scoring (no grad, batches sorted by length)
# ----------------------------------------------------------------------------------------------------------------
def _device_of(model) -> torch.device:
    return next(model.parameters()).device


def _batches(tokenized_ds, indices: Sequence[int], batch_size: int, pad_token_id: int, desc: str):
    lengths = tokenized_ds.select_columns(["chosen_input_ids", "rejected_input_ids"])
    lens = [max(len(a), len(b)) for a, b in zip(lengths["chosen_input_ids"], lengths["rejected_input_ids"])]
    order = sorted(indices, key=lambda i: lens[i])
    cols = ["chosen_input_ids", "chosen_attention_mask", "chosen_response_mask",
            "rejected_input_ids", "rejected_attention_mask", "rejected_response_mask"]
    sub = tokenized_ds.select_columns(cols)
    for start in tqdm(range(0, len(order), batch_size), desc=desc, leave=False):
        idx = order[start:start + batch_size]
        rows = sub.select(idx)
        batch = collate_preference([rows[i] for i in range(len(idx))], pad_token_id)
        ids = torch.cat([batch["chosen_input_ids"], batch["rejected_input_ids"]])
        att = torch.cat([batch["chosen_attention_mask"], batch["rejected_attention_mask"]])
        resp = torch.cat([batch["chosen_response_mask"], batch["rejected_response_mask"]])
        yield idx, ids, att, resp


@torch.no_grad()
def score_rewards(model, tokenized_ds, *, batch_size: int = 32, pad_token_id: int = 0,
                  indices: Sequence[int] | None = None) -> np.ndarray:
    """``(N, 2)`` rewards (chosen, rejected) of a :class:`~drdo_lib.models.CausalLMWithRewardHead` for the rows
    ``indices`` (default all), in that order."""
    indices = list(range(len(tokenized_ds))) if indices is None else list(indices)
    out = np.zeros((len(indices), 2))
    pos = {i: j for j, i in enumerate(indices)}
    was_training = model.training
    model.eval()
    dev = _device_of(model)
    try:
        for idx, ids, att, _ in _batches(tokenized_ds, indices, batch_size, pad_token_id, "reward precompute"):
            r = model(ids.to(dev), att.to(dev), return_logits=False)["rewards"].float().cpu().numpy()
            B = len(idx)
            for b, i in enumerate(idx):
                out[pos[i]] = (r[b], r[B + b])
    finally:
        model.train(was_training)
    return out


def response_logps_sum(lm, input_ids, attention_mask, response_mask, chunk_tokens: int = 4096) -> torch.Tensor:
    """``(B,)`` sums of response-token log-probs, equal to ``sequence_logps(logits, input_ids, response_mask, "sum")``.

    Only the hidden states of the scored positions go through the LM head (in chunks), so the ``(B, T, V)`` logits
    are never materialised; models whose logits are not ``lm_head(last hidden state)`` use the full forward.
    """
    from drdo_lib.losses import sequence_logps
    from drdo_lib.models import position_ids_from_mask

    fast = not any(getattr(lm.config, a, None) for a in ("final_logit_softcapping", "logit_scale"))
    if not fast:
        logits = lm(input_ids=input_ids, attention_mask=attention_mask).logits
        return sequence_logps(logits, input_ids, response_mask, "sum")
    kw = {"position_ids": position_ids_from_mask(attention_mask)}
    import inspect

    if "position_ids" not in inspect.signature(lm.base_model.forward).parameters:
        kw = {}
    hidden = lm.base_model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False, **kw).last_hidden_state
    m = response_mask[:, 1:].bool()
    h = hidden[:, :-1][m]  # (N, H): states that predict the response tokens
    targets = input_ids[:, 1:][m]
    head = lm.get_output_embeddings()
    token_lp = torch.empty(h.shape[0], dtype=torch.float32, device=h.device)
    for s in range(0, h.shape[0], chunk_tokens):
        logits = head(h[s:s + chunk_tokens]).float()
        token_lp[s:s + chunk_tokens] = logits.gather(1, targets[s:s + chunk_tokens, None]).squeeze(1) - logits.logsumexp(-1)
    rows = torch.arange(input_ids.shape[0], device=h.device)[:, None].expand_as(m)[m]
    return torch.zeros(input_ids.shape[0], dtype=torch.float32, device=h.device).index_add_(0, rows, token_lp)


@torch.no_grad()
def score_ref_logps(lm, tokenized_ds, *, batch_size: int = 32, pad_token_id: int = 0,
                    indices: Sequence[int] | None = None) -> np.ndarray:
    """``(N, 2)`` summed response log-probs (chosen, rejected) under a causal LM for the rows ``indices``."""
    lm = getattr(lm, "lm", lm)
    indices = list(range(len(tokenized_ds))) if indices is None else list(indices)
    out = np.zeros((len(indices), 2))
    pos = {i: j for j, i in enumerate(indices)}
    was_training = lm.training
    lm.eval()
    dev = _device_of(lm)
    try:
        for idx, ids, att, resp in _batches(tokenized_ds, indices, batch_size, pad_token_id, "reference log-probs"):
            z = response_logps_sum(lm, ids.to(dev), att.to(dev), resp.to(dev)).cpu().numpy()
            B = len(idx)
            for b, i in enumerate(idx):
                out[pos[i]] = (z[b], z[B + b])
    finally:
        lm.train(was_training)
    return out


# ----------------------------------------------------------------------------------------------------------------
# Public entry points
# ----------------------------------------------------------------------------------------------------------------
def _dtype_name(model) -> str:
    return str(next(model.parameters()).dtype).replace("torch.", "")


def _load(model_or_dir, kind: str, device: torch.device, dtype):
    """Return ``(model, loaded_here)``; a directory is loaded as a reward model or a causal LM."""
    if not isinstance(model_or_dir, (str, os.PathLike)):
        return model_or_dir, False
    from transformers import AutoModelForCausalLM

    from drdo_lib.models import CausalLMWithRewardHead

    kw = {"dtype": dtype} if dtype is not None else {}
    if kind == "reward":
        m = CausalLMWithRewardHead.from_pretrained(model_or_dir, **kw)
    else:
        m = AutoModelForCausalLM.from_pretrained(model_or_dir, use_safetensors=True, **kw)
    return m.to(device).eval(), True


def _free(model):
    del model
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _cached_scores(model_or_dir, tokenized_ds, keys, *, kind, cache_dir, batch_size, device, dtype, pad_token_id):
    fp = model_fingerprint(model_or_dir)
    dev = resolve_device(device)
    dtype_name = str(dtype).replace("torch.", "") if dtype is not None else (
        _dtype_name(model_or_dir) if not isinstance(model_or_dir, (str, os.PathLike)) else "float32")
    cache = _RowCache(cache_dir, kind, fp, {"kind": kind, "model_fingerprint": fp, "dtype": dtype_name,
                                            "device_type": dev.type if isinstance(model_or_dir, (str, os.PathLike))
                                            else _device_of(model_or_dir).type})
    todo = cache.missing(keys)
    if todo:
        logger.info("%s: computing %d of %d rows (model %s); cache %s", kind, len(todo), len(keys), fp, cache.path)
        model, loaded = _load(model_or_dir, kind, dev, dtype)
        try:
            fn = score_rewards if kind == "reward" else score_ref_logps
            vals = fn(model, tokenized_ds, batch_size=batch_size, pad_token_id=pad_token_id, indices=todo)
        finally:
            if loaded:
                _free(model)
        finite = np.isfinite(vals).all(axis=1)
        if not finite.all():  # never cached, never a training column
            name = model_or_dir if isinstance(model_or_dir, (str, os.PathLike)) else type(model_or_dir).__name__
            raise FloatingPointError(
                f"{kind}: model {name} (fingerprint {fp}) scored {int((~finite).sum())} of {len(todo)} rows as "
                f"NaN/inf (first row index {todo[int(np.argmin(finite))]}); nothing was cached. Check the model's "
                "weights (a diverged training run?) and its dtype")
        cache.update([keys[i] for i in todo], vals)
    else:
        logger.info("%s: all %d rows cached (model %s)", kind, len(keys), fp)
    return cache.get(keys)


def _set_column(ds, name, values):
    if name in ds.column_names:
        ds = ds.remove_columns(name)
    return ds.add_column(name, values)


def precompute_rewards(
    model_dir_or_model,
    tokenized_ds,
    *,
    cache_dir: str | Path,
    batch_size: int = 32,
    column_prefix: str | None = None,
    pad_token_id: int | None = 0,
    device: str = "auto",
    dtype=None,
):
    """Add reward columns computed by one reward model or an ensemble (list/tuple of models or directories).

    One model: ``<prefix>_chosen_reward`` / ``<prefix>_rejected_reward`` (floats; prefix default ``"oracle"``).
    K models: ``<prefix>_chosen_rewards`` / ``<prefix>_rejected_rewards`` (lists of K floats; default
    ``"ensemble"``). Returns a new dataset; values come from the cache where possible (see the module docstring).
    """
    keys = row_keys(tokenized_ds)
    pad = 0 if pad_token_id is None else pad_token_id
    kw = dict(kind="reward", cache_dir=cache_dir, batch_size=batch_size, device=device, dtype=dtype, pad_token_id=pad)
    if isinstance(model_dir_or_model, (list, tuple)):
        if not model_dir_or_model:
            raise ValueError("an ensemble needs at least one reward model")
        prefix = column_prefix or "ensemble"
        per = [_cached_scores(m, tokenized_ds, keys, **kw) for m in model_dir_or_model]  # K × (N, 2)
        stacked = np.stack(per, axis=1)  # (N, K, 2)
        ds = _set_column(tokenized_ds, f"{prefix}_chosen_rewards", stacked[:, :, 0].tolist())
        return _set_column(ds, f"{prefix}_rejected_rewards", stacked[:, :, 1].tolist())
    prefix = column_prefix or "oracle"
    vals = _cached_scores(model_dir_or_model, tokenized_ds, keys, **kw)
    ds = _set_column(tokenized_ds, f"{prefix}_chosen_reward", vals[:, 0].tolist())
    return _set_column(ds, f"{prefix}_rejected_reward", vals[:, 1].tolist())


def precompute_ref_logps(
    ref_model_dir_or_model,
    tokenized_ds,
    *,
    cache_dir: str | Path,
    batch_size: int = 32,
    logp_reduction: str = "sum",
    pad_token_id: int | None = 0,
    device: str = "auto",
    dtype=None,
):
    """Add ``ref_chosen_logp`` / ``ref_rejected_logp``: z^ref under the reference policy (the SFT model).

    ``logp_reduction`` as in :func:`drdo_lib.losses.sequence_logps` (``"sum"`` or ``"mean"`` over response tokens).
    """
    if logp_reduction not in LOGP_REDUCTIONS:
        raise ValueError(f"logp_reduction must be one of {LOGP_REDUCTIONS}, got {logp_reduction!r}")
    keys = row_keys(tokenized_ds)
    vals = _cached_scores(ref_model_dir_or_model, tokenized_ds, keys, kind="ref_logp", cache_dir=cache_dir,
                          batch_size=batch_size, device=device, dtype=dtype,
                          pad_token_id=0 if pad_token_id is None else pad_token_id)
    if logp_reduction == "mean":
        from drdo_lib.data.tokenize import pad_sequences

        for j, col in enumerate(("chosen_response_mask", "rejected_response_mask")):
            mask = pad_sequences(tokenized_ds[col], 0)
            vals[:, j] = reduce_logps(torch.as_tensor(vals[:, j]), mask, "mean").numpy()
    ds = _set_column(tokenized_ds, "ref_chosen_logp", vals[:, 0].tolist())
    return _set_column(ds, "ref_rejected_logp", vals[:, 1].tolist())
