"""What produced a run: package versions, the git commit, the device and the thread count.

Every stage stores :func:`record` in its summary (``runs/<profile>/<stage>/…``), so a number can always be traced to
the code, the library versions and the arithmetic that produced it. Results of the one-seed ``mini`` profile are
exact only for one machine and one set of versions: another CPU, another thread count (which changes the order of
floating-point reductions) or another library patch release moves them within their noise. The record says which
of those a run had; :func:`differences` lists where two records disagree.
"""
from __future__ import annotations

import functools
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

__all__ = ["PACKAGES", "record", "differences", "git_commit", "package_versions"]

#: Packages whose versions change the arithmetic or the behaviour of a run.
PACKAGES = ("drdo_lib", "torch", "transformers", "trl", "datasets", "accelerate", "tokenizers", "safetensors",
            "numpy", "pandas", "deepspeed", "openai")

_REPO = Path(__file__).resolve().parent.parent
#: The tracked paths whose changes make a run's code differ from its commit (``git.dirty``).
CODE_PATHS = ("drdo_lib", "configs", "scripts", "run_all.sh", "pyproject.toml", "requirements")


def package_versions(packages=PACKAGES) -> dict[str, str | None]:
    """Installed version of each package (``None`` where it is not installed)."""
    out: dict[str, str | None] = {}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


@functools.lru_cache(maxsize=1)
def git_commit() -> dict[str, Any]:
    """The checkout's commit and whether its tracked code (:data:`CODE_PATHS`) differs from it (``None`` outside a
    git checkout)."""
    def git(*args: str) -> str | None:
        try:
            res = subprocess.run(["git", "-C", str(_REPO), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return res.stdout.strip() if res.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    # only what computes the numbers: executed notebooks and figures are rewritten by every run_all.sh itself
    status = git("status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS)
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def _device() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"torch_threads": torch.get_num_threads(),
                            "omp_num_threads_env": os.environ.get("OMP_NUM_THREADS"),
                            "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
                            "cuda": bool(torch.cuda.is_available())}
    if info["cuda"]:
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        info["cuda_version"] = torch.version.cuda
    return info


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def record() -> dict[str, Any]:
    """Provenance of the current process: versions, git commit, Python, platform, device and threads."""
    dev = _device()
    model = _cpu_model()
    if model:
        dev["cpu"] = model
    return {"packages": package_versions(), "git": git_commit(), "python": sys.version.split()[0],
            "platform": platform.platform(), "device": dev}


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{key: (a's value, b's value)}`` for every (dotted) key on which two records differ."""
    fa, fb = _flatten(a), _flatten(b)
    return {k: (fa.get(k), fb.get(k)) for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)}


#: Where each stage of a profile stores its record, relative to ``runs/<profile>/``.
STAGE_FILES = {"data": "data/stage/manifest.json", "sft": "sft/metrics.json", "oracle": "oracle/metrics.json",
               "policy": "policy/*/summary.json", "eval": "eval/summary.json"}


def stage_records(stage_root: str | Path) -> list[dict[str, Any]]:
    """The provenance record of every finished stage under ``runs/<profile>/`` (one row per artefact, flattened:
    ``stage``, ``artefact`` and the record's dotted keys); artefacts written before records existed are skipped."""
    import json

    root = Path(stage_root)
    rows = []
    for stage, pattern in STAGE_FILES.items():
        for path in sorted(root.glob(pattern)):
            try:
                rec = json.loads(path.read_text()).get("provenance")
            except (OSError, ValueError, AttributeError):
                rec = None
            if isinstance(rec, Mapping):
                rows.append({"stage": stage, "artefact": str(path.parent.relative_to(root)), **_flatten(rec)})
    return rows


def summary_table(stage_root: str | Path):
    """:func:`stage_records` as a table of the columns that matter when comparing runs (commit, versions,
    threads, CPU/GPU); a column whose value is the same in every row is shown once, in the table's ``attrs``."""
    import pandas as pd

    df = pd.DataFrame(stage_records(stage_root))
    if df.empty:
        return df
    keep = ["stage", "artefact", "git.commit", "git.dirty", "packages.torch", "packages.transformers", "packages.trl",
            "packages.numpy", "python", "device.torch_threads", "device.cpu", "device.cuda"]
    df = df[[c for c in keep if c in df.columns]]
    common = {c: df[c].iloc[0].item() if hasattr(df[c].iloc[0], "item") else df[c].iloc[0]
              for c in df.columns[2:] if df[c].astype(str).nunique() == 1}
    out = df.drop(columns=list(common))
    out.attrs["common"] = common
    return out
