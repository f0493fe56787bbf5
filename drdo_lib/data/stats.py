"""Statistics of preference rows shown in notebook 01: Table 5 in both confidence modes beside the paper's, the
choice × raw-confidence contingency table (the confound), agreement between workers, and (synthetic testbed) how
often labels agree with the true reward r*. Tables are written as CSV + Markdown with
:func:`drdo_lib.tables.write_table`.
"""
from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pandas as pd

from drdo_lib.data.splits import PAPER_TABLE5, build_splits

__all__ = ["table5_comparison", "choice_confidence_table", "worker_agreement", "true_reward_agreement",
           "reference_rewards"]


def table5_comparison(rows: Any) -> pd.DataFrame:
    """Table 5 for the paper, our rows in ``strength`` mode and in ``raw`` mode, side by side (one row per split).

    Columns: ``split``, then for each of ``paper``, ``strength``, ``raw``: ``<who>_conf`` (mean raw 1–9 confidence,
    as the paper reports it), ``<who>_edit``, ``<who>_train``, ``<who>_valid``; plus ``strength_mean_strength`` and
    ``raw_mean_strength`` (mean |confidence − 5|).
    """
    out = PAPER_TABLE5.rename(columns={"mean_confidence": "paper_conf", "mean_edit_distance": "paper_edit",
                                       "n_train": "paper_train", "n_valid": "paper_valid"}).set_index("split")
    for mode in ("strength", "raw"):
        _, rep = build_splits(rows, confidence_mode=mode)
        rep = rep.set_index("split")
        out[f"{mode}_conf"] = rep["mean_confidence"]
        out[f"{mode}_mean_strength"] = rep["mean_strength"]
        out[f"{mode}_edit"] = rep["mean_edit_distance"]
        out[f"{mode}_train"] = rep["n_train"]
        out[f"{mode}_valid"] = rep["n_valid"]
    return out.reset_index()


def choice_confidence_table(rows: Any) -> pd.DataFrame:
    """Contingency table: rows = ``choice`` (index of the preferred summary), columns = raw confidence 1–9 (+ null).

    In the published data (and the testbed) 1–4 only occur with choice 0 and 6–9 only with choice 1, so a median
    split on the raw value separates pairs by *which* summary won.
    """
    df = pd.DataFrame({"choice": rows["choice"], "confidence": rows["confidence"]})
    df["confidence"] = df["confidence"].map(lambda v: "null" if v is None or pd.isna(v) else str(int(v)))
    cols = [str(c) for c in range(1, 10)] + ["null"]
    tab = pd.crosstab(df["choice"], df["confidence"]).reindex(columns=cols, fill_value=0)
    tab.index.name, tab.columns.name = "choice", "confidence"
    return tab


def worker_agreement(rows: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Agreement between different workers who labelled the same pair (same ``pair_id``).

    Every two labels of one pair by two *different* workers form a comparison; they agree when both chose the same
    summary text. Returns ``(summary, by_strength)``: ``summary`` has the number of pairs with ≥ 2 workers, label
    comparisons, agreements and the agreement rate; ``by_strength`` gives the rate by the smaller strength of the two
    labels (does a confident label agree more often?). Labels repeated by the same worker are not compared.
    """
    df = pd.DataFrame({"pair_id": rows["pair_id"], "worker": rows["worker"], "chosen": rows["chosen"],
                       "strength": rows["strength"]})
    comps = []
    for _, g in df.groupby("pair_id", sort=False):
        if g["worker"].nunique() < 2:
            continue
        recs = g.to_dict("records")
        for a, b in itertools.combinations(recs, 2):
            if a["worker"] == b["worker"]:
                continue
            sa, sb = a["strength"], b["strength"]
            min_s = np.nan if sa is None or sb is None or pd.isna(sa) or pd.isna(sb) else min(sa, sb)
            comps.append({"pair_id": a["pair_id"], "agree": a["chosen"] == b["chosen"], "min_strength": min_s})
    c = pd.DataFrame(comps, columns=["pair_id", "agree", "min_strength"])
    summary = pd.DataFrame([{
        "pairs_with_2plus_workers": int(c["pair_id"].nunique()) if len(c) else 0,
        "label_comparisons": len(c),
        "agreements": int(c["agree"].sum()) if len(c) else 0,
        "agreement_rate": float(c["agree"].mean()) if len(c) else float("nan"),
    }])
    by = (c.dropna(subset=["min_strength"]).groupby("min_strength")["agree"].agg(["count", "mean"])
          .rename(columns={"count": "label_comparisons", "mean": "agreement_rate"}).reset_index())
    return summary, by


def true_reward_agreement(rows: Any, testbed: Any) -> pd.DataFrame:
    """Synthetic testbed only: by strength, how often the chosen summary has the higher true reward r*.

    Columns: ``strength``, ``n``, ``ties`` (r* equal), ``agree_rate`` (over non-tied pairs), ``mean_abs_reward_gap``.
    With Bradley–Terry labels, high-strength rows (p* far from ½) agree almost always, strength-1 rows near chance.
    """
    rc = testbed.true_rewards(rows["prompt"], rows["chosen"])
    rr = testbed.true_rewards(rows["prompt"], rows["rejected"])
    df = pd.DataFrame({"strength": rows["strength"], "gap": rc - rr})
    df = df.dropna(subset=["strength"])
    out = []
    for s, g in df.groupby("strength"):
        nt = g[g["gap"] != 0]
        out.append({"strength": int(s), "n": len(g), "ties": int((g["gap"] == 0).sum()),
                    "agree_rate": float((nt["gap"] > 0).mean()) if len(nt) else float("nan"),
                    "mean_abs_reward_gap": float(g["gap"].abs().mean())})
    return pd.DataFrame(out)


def reference_rewards(sft: Any, testbed: Any, split: str = "train") -> dict[str, float]:
    """Synthetic testbed only: mean r* of the SFT references of ``split`` and of the ideal summaries of the same
    prompts (the ceiling), plus the vocabulary size: the room preference learning has above SFT."""
    df = pd.DataFrame({"prompt": sft["prompt"], "response": sft["response"], "split": sft["split"]})
    df = df[df["split"] == split]
    ref = testbed.true_rewards(list(df["prompt"]), list(df["response"]))
    ideal = testbed.true_rewards(list(df["prompt"]), [testbed.ideal_summary(p) for p in df["prompt"]])
    return {"n": int(len(df)), "reference_mean_reward": float(ref.mean()) if len(df) else float("nan"),
            "ideal_mean_reward": float(ideal.mean()) if len(df) else float("nan"),
            "vocabulary_size": len(testbed.vocabulary)}
