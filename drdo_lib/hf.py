"""Hugging Face plumbing shared by the three training stages (SFT, Oracle/ensemble, policy) and the scoring code.

One place for: the ``TrainingArguments`` builder (:func:`training_arguments`; the SFT stage passes TRL's
``SFTConfig`` class), device / dtype / optimizer / bf16 / DeepSpeed resolution, the ``metrics.jsonl`` callback,
dropout switching, the model fingerprint that keys every cache (precompute, generations), and the validation rules
the three stage configs share (:func:`training_checks`).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import TrainerCallback

logger = logging.getLogger(__name__)

__all__ = ["METRICS_FILE", "MetricsJsonlCallback", "read_metrics", "resolve_optim", "resolve_bf16",
           "resolve_deepspeed", "resolve_device", "resolve_dtype", "training_arguments", "training_checks",
           "disable_dropout", "model_fingerprint", "progress_disabled_by_env", "quiet_batch_progress",
           "drop_printed_logs"]

METRICS_FILE = "metrics.jsonl"


def progress_disabled_by_env() -> bool:
    """True when ``DRDO_PROGRESS=0``: batch runs (run_all.sh, scripts/test.sh) turn off the trainers' live progress
    displays, whose thousands of display updates flood a notebook kernel's output channel under papermill/nbval."""
    return os.environ.get("DRDO_PROGRESS", "1") == "0"


def quiet_batch_progress() -> None:
    """In batch runs (``DRDO_PROGRESS=0``) turn off the progress bars of ``datasets`` and ``transformers`` (maps,
    saves, weight loading): a notebook cell that runs many stages (the study grid) otherwise sends thousands of
    display updates, more than the kernel's output channel holds, and nbval loses the cell's end."""
    if progress_disabled_by_env():
        import datasets

        datasets.disable_progress_bars()
        transformers.utils.logging.disable_progress_bar()


def drop_printed_logs(trainer) -> None:
    """Without a progress bar (``disable_tqdm``: ``progress=False`` or ``DRDO_PROGRESS=0``) transformers prints every
    training log as a dict on stdout (its ``PrinterCallback``); the same logs are in ``metrics.jsonl``, so a quiet
    run drops the printer and an executed notebook keeps only the stage's own summary lines."""
    if trainer.args.disable_tqdm:
        trainer.remove_callback(transformers.trainer_callback.PrinterCallback)


# ---------------------------------------------------------------------------------------------- metrics.jsonl
class MetricsJsonlCallback(TrainerCallback):
    """Appends every training log (step, loss, metrics) as one JSON line to ``<output_dir>/metrics.jsonl``.

    On resume, lines past the resumed step are dropped first, so the file holds one uninterrupted trajectory; a
    line that is not a JSON object with a ``step`` (torn by a kill mid-write) is dropped with a warning.
    """

    def on_train_begin(self, args, state, control, **kwargs):
        path = Path(args.output_dir) / METRICS_FILE
        if state.is_world_process_zero and path.exists():
            rows = _parse_metrics(path)
            kept = [ln for ln, row in rows if row["step"] <= state.global_step]
            path.write_text("".join(ln + "\n" for ln in kept))

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs or "loss" not in logs:
            return
        path = Path(args.output_dir) / METRICS_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:
            f.write(json.dumps({"step": state.global_step, "epoch": state.epoch, **logs}, sort_keys=True) + "\n")


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The rows of ``<run_dir>/metrics.jsonl`` (one dict per logging step)."""
    return [row for _, row in _parse_metrics(Path(run_dir) / METRICS_FILE)]


def _parse_metrics(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """``(line, row)`` of each readable line of a ``metrics.jsonl``; unreadable lines are skipped with a warning."""
    out = []
    for i, ln in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not ln.strip():
            continue
        try:
            row = json.loads(ln)
            if not isinstance(row, dict) or not isinstance(row.get("step"), int):
                raise ValueError("not an object with an integer 'step'")
        except ValueError as e:
            logger.warning("%s line %d is unreadable (torn by a killed job?), skipped: %s", path, i, e)
            continue
        out.append((ln, row))
    return out


# ---------------------------------------------------------------------------------------------- resolution
def resolve_optim(name: str) -> str:
    """``paged_*`` optimizers need bitsandbytes and CUDA; otherwise fall back to ``adamw_torch`` (logged)."""
    if not name.startswith("paged_"):
        return name
    try:
        import bitsandbytes  # noqa: F401
        ok = torch.cuda.is_available()
    except ImportError:
        ok = False
    if not ok:
        logger.warning("optim=%s needs bitsandbytes and a CUDA device; using adamw_torch instead", name)
        return "adamw_torch"
    return name


def resolve_bf16(value: str | bool) -> bool:
    """``"auto"``: bf16 exactly when a CUDA device supports it."""
    if value == "auto":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if value and not torch.cuda.is_available():
        logger.warning("bf16=True on a machine without CUDA: bfloat16 autocast on CPU is slow and lossy")
    return bool(value)


def resolve_deepspeed(path: str | None) -> str | None:
    """The DeepSpeed JSON to use, or None.

    ZeRO-2 shards optimizer states and gradients across *processes*; a single-process run (a notebook, a plain
    ``python -m drdo_lib``) trains without DeepSpeed (logged). A relative path is resolved against the working
    directory, then the repository root (notebooks run with ``--cwd notebooks``).
    """
    if not path:
        return None
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        logger.warning("deepspeed=%s ignored: single-process run (launch with deepspeed/torchrun/accelerate to use it)",
                       path)
        return None
    from drdo_lib.config import REPO_ROOT

    p = Path(path)
    if not p.is_absolute() and not p.exists() and (REPO_ROOT / p).exists():
        p = REPO_ROOT / p
    if not p.exists():
        raise FileNotFoundError(f"DeepSpeed config {path} not found")
    return str(p)


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` → cuda when available, else cpu; anything else is passed to :class:`torch.device`."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``"auto"`` → bfloat16 on CUDA, float32 elsewhere; else ``torch.<dtype>``."""
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, dtype)


# ---------------------------------------------------------------------------------------------- arguments
#: Experiment trackers a training stage can report to (``report_to``): TensorBoard works offline (``pip install
#: tensorboard``, in the ``dev`` and ``gpu`` extras); ``wandb`` needs its package and an account.
REPORT_TO = ("none", "tensorboard", "wandb", "all")

def training_arguments(cfg: Any, output_dir: str | Path, seed: int, *, progress: bool = True,
                       args_class: type = transformers.TrainingArguments, **overrides: Any):
    """The ``TrainingArguments`` (or ``args_class``, e.g. TRL's ``SFTConfig``) of one training stage.

    Reads the fields the stage configs share (``learning_rate``, ``lr_scheduler_type``, ``warmup_steps``,
    ``weight_decay``, ``optim``, ``max_grad_norm``, batch sizes, ``logging_steps``, ``bf16``, ``max_steps`` and,
    where present, ``num_train_epochs`` and ``deepspeed``); no checkpoints, evaluation or external loggers unless
    ``overrides`` say so; explicit seeds; non-finite losses are logged as they are (never filtered).
    """
    kw: dict[str, Any] = dict(
        output_dir=str(output_dir), seed=seed, data_seed=seed, learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler_type, warmup_steps=cfg.warmup_steps, weight_decay=cfg.weight_decay,
        optim=resolve_optim(cfg.optim), max_grad_norm=cfg.max_grad_norm, max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.per_device_train_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps, logging_steps=cfg.logging_steps,
        bf16=resolve_bf16(cfg.bf16), deepspeed=resolve_deepspeed(getattr(cfg, "deepspeed", None)),
        save_strategy="no", report_to=getattr(cfg, "report_to", "none"), dataloader_num_workers=0,
        dataloader_pin_memory=False,
        disable_tqdm=not progress or progress_disabled_by_env(), logging_nan_inf_filter=False,
        # On a machine without CUDA, use_cpu makes accelerate treat a torchrun/accelerate launch as MULTI_CPU (gloo).
        use_cpu=not torch.cuda.is_available(), ddp_find_unused_parameters=False,
    )
    if hasattr(cfg, "num_train_epochs"):
        kw["num_train_epochs"] = cfg.num_train_epochs
    kw.update(overrides)
    return args_class(**kw)


def training_checks(cfg: Any) -> list[tuple[bool, str]]:
    """The validation rules every training-stage config shares, as ``(ok, message)`` pairs."""
    from drdo_lib.data.tokenize import TEMPLATES

    return [
        (getattr(cfg, "report_to", "none") in REPORT_TO, f"report_to must be one of {REPORT_TO}"),
        (cfg.template in TEMPLATES, f"template must be one of {TEMPLATES}"),
        (0 < cfg.max_prompt_length < cfg.max_length, "need 0 < max_prompt_length < max_length"),
        (cfg.max_train_rows is None or cfg.max_train_rows > 0, "max_train_rows must be > 0 or null"),
        (cfg.learning_rate > 0 and cfg.weight_decay >= 0, "learning_rate must be > 0, weight_decay >= 0"),
        (cfg.warmup_steps >= 0 and cfg.max_grad_norm >= 0, "warmup_steps and max_grad_norm must be >= 0"),
        (cfg.per_device_train_batch_size > 0 and cfg.gradient_accumulation_steps > 0, "batch sizes must be > 0"),
        (cfg.logging_steps > 0, "logging_steps must be > 0"),
        (cfg.bf16 in ("auto", True, False), "bf16 must be 'auto', true or false"),
    ]


def disable_dropout(model: torch.nn.Module) -> None:
    """Zero every dropout probability in ``model`` (as TRL's DPO does): deterministic preference training."""
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0


# ---------------------------------------------------------------------------------------------- fingerprints
#: Files of a model directory that enter its fingerprint: weights, configs (model, reward head, generation) and the
#: tokenizer (generated text depends on it).
_FINGERPRINT_SUFFIXES = (".safetensors", ".json", ".model", ".txt")
_FP_MEMO: dict[tuple, str] = {}


def model_fingerprint(model_or_dir) -> str:
    """SHA-256 (24 hex chars) of a model: for a directory, its ``*.safetensors`` weights and its JSON/tokenizer
    files (memoised on path, size and mtime); for an in-memory module, its model type and its parameters (name,
    shape, dtype, bytes), so a model and its saved-and-reloaded copy agree. It keys every cache: precomputed rewards / reference log-probs and generations."""
    h = hashlib.sha256()
    if isinstance(model_or_dir, (str, os.PathLike)):
        root = Path(model_or_dir)
        files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix in _FINGERPRINT_SUFFIXES) \
            if root.is_dir() else []
        if not any(p.suffix == ".safetensors" for p in files):
            raise FileNotFoundError(f"no *.safetensors weights in {root}")
        memo_key = tuple((str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
        if memo_key in _FP_MEMO:
            return _FP_MEMO[memo_key]
        for p in files:
            h.update(p.name.encode())
            with open(p, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 22), b""):
                    h.update(chunk)
        _FP_MEMO[memo_key] = fp = h.hexdigest()[:24]
        return fp
    cfg = getattr(model_or_dir, "config", None)
    h.update(str(getattr(cfg, "model_type", type(model_or_dir).__name__)).encode())
    for name, t in sorted(model_or_dir.state_dict().items()):
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:24]
