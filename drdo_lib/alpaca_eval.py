"""AlpacaEval: ``model_outputs.json`` in the benchmark's format and head-to-head judging (paper Table 3).

File format (``alpaca_eval``'s ``model_outputs.json``, as its ``main.py`` writes it with
``DataFrame.to_json(orient="records", indent=2)``): a JSON list with one record per instruction,
``{"instruction": str, "output": str, "generator": str}`` plus optional extra keys (``dataset``, ...). The same file
is accepted by the upstream CLI (``alpaca_eval --model_outputs model_outputs.json``) on a machine where it runs.

Head-to-head (Table 3: "DRDO vs e-DPO", "DRDO vs DPO"): for each instruction the two policies' outputs are judged
with :func:`drdo_lib.judge.judge_pairs` (``template="alpaca"``: AlpacaEval 2.0's annotator prompt, GPT-4 Turbo in the
paper; ``model="gold"`` with a reward function on the synthetic testbed). Results are annotations in AlpacaEval's
encoding, where ``output_1`` is the baseline and ``output_2`` the model, and ``preference`` is 1 (baseline better),
2 (model better), 1.5 (tie) or NaN (the judge's answer was unreadable; dropped from the denominator and counted).
``weighted_preference`` is 1 + P(model better) from the judge's log-probs (AlpacaEval 2.0's weighted annotator;
equal to ``preference`` when no log-probs are available). :func:`alpaca_win_rate` reproduces AlpacaEval's
``describe_head2head`` (win rate in %, standard error, counts).

Length-controlled win rate (AlpacaEval 2.0's headline number): :func:`length_controlled_win_rate` hands the
annotations, unchanged, to the ``alpaca_eval`` package's own ``alpaca_eval.metrics.get_length_controlled_winrate``
(optional extra ``pip install -e '.[alpaca]'``: ``alpaca-eval`` 0.6.6 imports ``pkg_resources``, hence
``setuptools<81`` beside it). Its GLM reads AlpacaEval's per-instruction difficulties and gamed-model annotations
(``df_gamed.csv`` of the hub dataset ``tatsu-lab/alpaca_eval``, downloaded by the package and cached by
huggingface_hub), so offline it is available only when that file is already in the hub cache; otherwise the LC
columns of :func:`head_to_head_table` are NaN and a warning says why.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from drdo_lib.judge import judge_pairs
from drdo_lib.winrates import bootstrap_ci

log = logging.getLogger(__name__)

REQUIRED_KEYS = ("instruction", "output", "generator")


# ------------------------------------------------------------------------------------------- model outputs
def to_model_outputs(instructions: Sequence[str], outputs: Sequence[str], generator: str,
                     extra: Mapping[str, Sequence[Any]] | None = None) -> list[dict[str, Any]]:
    """AlpacaEval records ``{"instruction", "output", "generator", **extra}``, one per instruction.

    Instructions must be unique (AlpacaEval joins model and baseline outputs on the instruction text).
    """
    if len(instructions) != len(outputs):
        raise ValueError(f"{len(instructions)} instructions but {len(outputs)} outputs")
    if not generator:
        raise ValueError("generator (the model's name) must be a non-empty string")
    dup = pd.Series(list(instructions)).duplicated()
    if dup.any():
        raise ValueError(f"{int(dup.sum())} duplicated instructions; AlpacaEval needs one output per instruction")
    records = [{"instruction": str(i), "output": str(o), "generator": generator}
               for i, o in zip(instructions, outputs)]
    for key, values in (extra or {}).items():
        if key in REQUIRED_KEYS or len(values) != len(records):
            raise ValueError(f"extra column {key!r}: reserved name or wrong length")
        for r, v in zip(records, values):
            r[key] = v
    return records


def model_outputs_from_generations(generations: pd.DataFrame, generator: str, *, temperature: float,
                                   seed: int = 0, sample: int = 0, policy: str | None = None) -> list[dict]:
    """Pick one completion per prompt from :func:`drdo_lib.generation.load_generations` rows → AlpacaEval records.

    Rows are filtered to one ``policy`` (when given), ``temperature``, ``seed`` and ``sample``; ``prompt`` becomes
    ``instruction`` and ``response`` becomes ``output``.
    """
    df = generations
    if policy is not None:
        df = df[df["policy"] == policy]
    df = df[np.isclose(df["temperature"].astype(float), temperature) & (df["seed"] == seed)]
    if "sample" in df:
        df = df[df["sample"] == sample]
    if df.empty:
        raise ValueError(f"no generations for policy={policy!r} temperature={temperature} seed={seed}")
    return to_model_outputs(df["prompt"].tolist(), df["response"].tolist(), generator)


def write_model_outputs(records: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Write ``model_outputs.json`` (a JSON list, indent 2, UTF-8 text), atomically; returns the path."""
    _validate(records)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(list(records), indent=2, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_model_outputs(path: str | Path) -> list[dict[str, Any]]:
    """Read and validate a ``model_outputs.json``."""
    records = json.loads(Path(path).read_text(encoding="utf-8"))
    _validate(records)
    return records


def _validate(records: Sequence[Mapping[str, Any]]) -> None:
    if not isinstance(records, (list, tuple)) or not records:
        raise ValueError("model outputs must be a non-empty list of records")
    for k, r in enumerate(records):
        missing = [key for key in REQUIRED_KEYS if not isinstance(r.get(key), str)]
        if missing:
            raise ValueError(f"record {k}: missing or non-string {missing} (AlpacaEval needs {REQUIRED_KEYS})")
    if len({r["instruction"] for r in records}) != len(records):
        raise ValueError("duplicated instructions in model outputs")


# ------------------------------------------------------------------------------------------- head-to-head
def head_to_head(model_outputs: Sequence[Mapping[str, Any]], baseline_outputs: Sequence[Mapping[str, Any]], *,
                 model: str, cache_dir: str | Path | None, template: str = "alpaca", base_url: str | None = None,
                 seed: int = 0, order: str = "random", max_concurrency: int = 8,
                 reward_fn: Callable[[str, str], float] | None = None, **judge_settings: Any) -> pd.DataFrame:
    """Judge ``model_outputs`` against ``baseline_outputs`` on their common instructions → AlpacaEval annotations.

    ``model`` is the judge (``"gpt-4-turbo"``, ``"gpt-4-1106-preview"`` as AlpacaEval 2.0, a local model served
    at ``base_url``, or ``"gold"`` with ``reward_fn``); further settings go to :func:`~drdo_lib.judge.judge_pairs`.
    Returns one row per instruction: ``instruction``, ``output_1``/``generator_1`` (baseline),
    ``output_2``/``generator_2`` (model), ``annotator``, ``preference``, ``weighted_preference``, ``swapped``,
    ``raw_completion``.
    """
    _validate(model_outputs)
    _validate(baseline_outputs)
    base = {r["instruction"]: r for r in baseline_outputs}
    common = [r for r in model_outputs if r["instruction"] in base]
    n_lost = len(model_outputs) - len(common), len(baseline_outputs) - len(common)
    if not common:
        raise ValueError("model and baseline outputs share no instruction")
    if any(n_lost):
        log.warning("judging %d common instructions (%d only in the model's file, %d only in the baseline's)",
                    len(common), *n_lost)
    instr = [r["instruction"] for r in common]
    out_model = [r["output"] for r in common]
    out_base = [base[i]["output"] for i in instr]
    judged = judge_pairs(instr, out_model, out_base, template=template, model=model, base_url=base_url,
                         cache_dir=cache_dir, order=order, seed=seed, max_concurrency=max_concurrency,
                         reward_fn=reward_fn, **judge_settings)
    # judge side "a" is the model (AlpacaEval preference 2), "b" the baseline (preference 1)
    preference = judged["outcome"].map({"a": 2.0, "b": 1.0, "tie": 1.5, "discarded": float("nan")})
    p_model = 1.0 - judged["p_b"].astype(float)
    weighted = np.where(p_model.notna() & preference.notna(), 1.0 + p_model, preference)
    return pd.DataFrame({
        "instruction": instr,
        "output_1": out_base, "generator_1": [base[i]["generator"] for i in instr],
        "output_2": out_model, "generator_2": [r["generator"] for r in common],
        "annotator": model, "preference": preference.to_numpy(), "weighted_preference": weighted,
        "swapped": judged["swapped"].to_numpy(), "raw_completion": judged["raw"].to_numpy(),
    })


def alpaca_win_rate(preferences: Iterable[float]) -> dict[str, float]:
    """AlpacaEval's head-to-head metrics of the model (``output_2``) over the baseline.

    Same computation as ``alpaca_eval.metrics.helpers.AbsoluteScoringRule.describe_head2head`` (0 is read as a
    tie, NaN/unreadable annotations are dropped): ``win_rate`` = 100 · mean(preference − 1), ``standard_error``
    = 100 · s.e.m., ``n_wins``, ``n_wins_base``, ``n_draws``, ``n_total``; plus ``discrete_win_rate`` (each
    preference rounded to a win/loss/tie first, as its ``ZeroOneScoringRule``) and ``n_discarded``.
    """
    p = pd.Series(list(preferences), dtype=float).replace({0.0: 1.5})
    valid = p[(p >= 1) & (p <= 2)]
    x = valid - 1
    n_total = len(x)
    discrete = x.where(x == 0.5, x.round())  # rounding of exact halves never happens: those are ties
    wins_d, draws_d = int((discrete == 1).sum()), int((discrete == 0.5).sum())
    return {
        "win_rate": float(x.mean() * 100) if n_total else float("nan"),
        "standard_error": float(x.sem() * 100) if n_total > 1 else float("nan"),
        "n_wins": int((x > 0.5).sum()), "n_wins_base": int((x < 0.5).sum()),
        "n_draws": int((p == 1.5).sum()), "n_total": n_total,
        "discrete_win_rate": (wins_d + draws_d / 2) / n_total * 100 if n_total else float("nan"),
        "n_discarded": int(len(p) - n_total),
    }


class LengthControlUnavailable(RuntimeError):
    """The ``alpaca_eval`` package, or the hub file its length-control GLM reads, is not available here."""


#: The package's GLM for instructions of the AlpacaEval set (known difficulty; AlpacaEval 2.0's LC win rate).
LC_GLM_ALPACA = "length_controlled_v1"
#: The package's GLM with the length term only, for any other prompts (no per-instruction difficulty exists).
LC_GLM_OTHER = "length_controlled_minimal"


def _lc_implementation():
    """``(get_length_controlled_winrate, glm_winrate module)`` of the installed package, or raise."""
    import warnings

    try:
        with warnings.catch_warnings():  # alpaca-eval 0.6.6 imports pkg_resources, which warns on import
            warnings.simplefilter("ignore")
            from alpaca_eval.metrics import get_length_controlled_winrate
            from alpaca_eval.metrics import glm_winrate
    except ImportError as e:  # not installed, or setuptools >= 81 (no pkg_resources)
        raise LengthControlUnavailable(f"the alpaca_eval package does not import ({e}); install the extra: "
                                       "pip install -e '.[alpaca]' (alpaca-eval with setuptools<81)") from e
    return get_length_controlled_winrate, glm_winrate


def _check_lc_data(glm_winrate) -> None:
    """The package's GLM downloads ``df_gamed.csv``; check it can be had (hub or cache) before fitting."""
    from alpaca_eval import constants

    try:
        glm_winrate.hf_hub_download(repo_id="tatsu-lab/alpaca_eval", filename="df_gamed.csv", repo_type="dataset",
                                    token=constants.DATASETS_TOKEN, cache_dir=constants.DEFAULT_CACHE_DIR)
    except Exception as e:  # noqa: BLE001 - offline (LocalEntryNotFoundError), no network, hub errors
        raise LengthControlUnavailable("the length-control GLM reads df_gamed.csv of the hub dataset "
                                       f"tatsu-lab/alpaca_eval, which is not available here ({type(e).__name__})"
                                       ) from e


def length_controlled_win_rate(annotations: pd.DataFrame, *, weighted: bool = True,
                               instruction_index: Sequence[int] | None = None,
                               glm_name: str | None = None) -> dict[str, Any]:
    """AlpacaEval's length-controlled win rate (%) of the model (``output_2``) over the baseline (``output_1``),
    computed by the ``alpaca_eval`` package (``alpaca_eval.metrics.get_length_controlled_winrate``) on
    :func:`head_to_head` annotations. The annotations are passed as they are (the preference column is
    ``weighted_preference`` when ``weighted``, as AlpacaEval's weighted annotator stores it, else ``preference``);
    nothing is recomputed here.

    ``instruction_index``: each row's position in the AlpacaEval evaluation set (805 instructions); with it the
    package's AlpacaEval 2.0 GLM (``length_controlled_v1``: length, instruction difficulty, regularised towards its
    gamed baselines) is used, without it the length-only GLM (``length_controlled_minimal``), the only one defined
    for prompts outside AlpacaEval. Returns ``lc_win_rate``, ``lc_standard_error`` (both %; the package's s.e.m. of
    the per-instruction predictions, 0 for the length-only GLM, which predicts the same for every instruction: not
    an uncertainty of the LC win rate), ``lc_glm`` and the package's plain ``win_rate`` of the same preferences. Raises :class:`LengthControlUnavailable` when the package
    or its hub data is missing, and ``ValueError`` when all length differences are equal (the GLM is undefined).
    """
    missing = [c for c in ("output_1", "output_2", "generator_1", "generator_2", "annotator") if c not in annotations]
    if missing:
        raise ValueError(f"annotations without {missing}: the length-control GLM needs both outputs")
    get_lc, glm_winrate = _lc_implementation()
    glm = glm_name or (LC_GLM_ALPACA if instruction_index is not None else LC_GLM_OTHER)
    df = annotations.copy()
    df["preference"] = annotations["weighted_preference" if weighted else "preference"].astype(float)
    # the package reads each row's AlpacaEval instruction index from the frame's index (0 for every row where it is
    # unknown: the minimal GLM looks the difficulty up but does not use it)
    df.index = pd.Index(list(instruction_index) if instruction_index is not None else [0] * len(df))
    valid = df["preference"].between(1, 2) | (df["preference"] == 0)
    delta = (df["output_1"].str.len() - df["output_2"].str.len())[valid]
    if len(delta) < 2 or not delta.std() > 0:
        raise ValueError("length control is undefined: every judged pair has the same length difference")
    _check_lc_data(glm_winrate)
    m = get_lc(df, glm_name=glm, save_weights_dir=None, is_add_glm_preference_inplace=False)
    return {"lc_win_rate": float(m["length_controlled_winrate"]), "lc_standard_error": float(m["lc_standard_error"]),
            "lc_glm": glm, "win_rate": float(m["win_rate"])}


def head_to_head_table(results: Mapping[tuple[str, str], pd.DataFrame], *, weighted: bool = True,
                       n_boot: int = 2000, level: float = 0.95, seed: int = 0,
                       length_controlled: bool = True) -> pd.DataFrame:
    """Table 3 rows: ``{(model, baseline): annotations}`` → one row per comparison.

    Columns: ``model``, ``baseline``, ``win_rate`` (% of the model over the baseline; from
    ``weighted_preference`` when ``weighted``), a percentile-bootstrap CI at ``level`` over instructions
    (``ci_low``, ``ci_high``; :func:`drdo_lib.winrates.bootstrap_ci`, seeded with ``seed`` for every row, so a row's
    interval does not depend on the other rows), ``standard_error``, ``discrete_win_rate``, ``n_wins``,
    ``n_wins_base``, ``n_draws``, ``n_total``, ``n_discarded``; with ``length_controlled``, AlpacaEval's
    ``lc_win_rate`` and ``lc_standard_error`` (%) and ``lc_glm`` from :func:`length_controlled_win_rate` (an
    ``alpaca_eval_index`` column in the annotations selects the AlpacaEval 2.0 GLM), NaN with a warning where the
    package or its data is unavailable.
    """
    rows = []
    lc_reason = None
    for (name, baseline), ann in results.items():
        prefs = ann["weighted_preference" if weighted else "preference"].astype(float)
        m = alpaca_win_rate(prefs)
        x = prefs[(prefs >= 1) & (prefs <= 2)].to_numpy() - 1
        lo, hi = bootstrap_ci(x * 100, n_boot=n_boot, level=level, seed=seed)  # (nan, nan) when x is empty
        rows.append({"model": name, "baseline": baseline, "win_rate": m["win_rate"], "ci_low": lo,
                     "ci_high": hi, "standard_error": m["standard_error"],
                     "discrete_win_rate": alpaca_win_rate(ann["preference"])["discrete_win_rate"],
                     **{k: m[k] for k in ("n_wins", "n_wins_base", "n_draws", "n_total", "n_discarded")}})
        if length_controlled:
            lc = {"lc_win_rate": float("nan"), "lc_standard_error": float("nan"), "lc_glm": None}
            if lc_reason is None:
                try:
                    idx = ann["alpaca_eval_index"].tolist() if "alpaca_eval_index" in ann else None
                    got = length_controlled_win_rate(ann, weighted=weighted, instruction_index=idx)
                    lc.update({k: got[k] for k in lc})
                except LengthControlUnavailable as e:
                    lc_reason = str(e)  # the same for every row: say it once
                    log.warning("Table 3 without the length-controlled win rate: %s", e)
                except ValueError as e:
                    log.warning("%s vs %s: no length-controlled win rate (%s)", name, baseline, e)
            rows[-1].update(lc)
    return pd.DataFrame(rows)


def write_annotations(annotations: pd.DataFrame, path: str | Path) -> Path:
    """Write annotations as AlpacaEval's ``annotations.json`` (JSON list of records; NaN → null)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cols = ["instruction", "output_1", "generator_1", "output_2", "generator_2", "annotator", "preference",
            "weighted_preference", "raw_completion"]
    records = annotations[cols].astype(object).where(annotations[cols].notna(), None).to_dict(orient="records")
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(records, indent=2, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)
    return path
