"""The paper's reported numbers (arXiv 2410.08458), shown beside ours in notebook 06.

Transcribed from the paper text (arXiv 2410.08458): Table 1 (TL;DR → CNN/DailyMail OOD, GPT-4o judge,
1,000 prompts), Table 2 (oracle win rates on UltraFeedback at T ∈ {0.2, 0.5, 0.7, 0.9}, top-p 0.8), Table 3
(AlpacaEval, GPT-4 Turbo judge, N = 805) and Table 5 (TL;DR split statistics; the same frame as
:data:`drdo_lib.data.splits.PAPER_TABLE5`, re-exported here so all the paper's numbers sit in one place).
Win rates are fractions in [0, 1] (Tables 1 and 3 print percentages in the paper).
"""
from __future__ import annotations

import pandas as pd

from drdo_lib.data.splits import PAPER_TABLE5

__all__ = ["TABLE1", "TABLE2", "TABLE3", "TABLE5", "table2_long", "PAPER_TEMPERATURES", "PAPER_TABLE2_MODELS",
           "METHOD_NAMES"]

#: Sampling temperatures of the paper (Sec. 6, Table 2, Fig. 3); the default grid of generation and evaluation.
PAPER_TEMPERATURES: tuple[float, ...] = (0.2, 0.5, 0.7, 0.9)
#: The methods as the paper names them (and "Gold" for the human reference summary, as in Table 1's "Gold vs." rows):
#: every table label, comparison name ("DRDO vs. e-DPO", matching TABLE1/TABLE3) and figure legend uses these.
METHOD_NAMES = {"drdo": "DRDO", "dpo": "DPO", "edpo": "e-DPO", "ipo": "IPO", "sft": "SFT", "reference": "Gold"}
PAPER_TABLE2_MODELS = ("OPT-125M", "OPT-350M", "OPT-1.3B", "OPT-2.7B", "Phi-3")

#: Table 1: "# Wins" and "Win Rate" per comparison; ``split`` is the TL;DR training split of both policies
#: (None for the "Gold vs." rows, where wins and the rate are the *gold* (human) summaries').
TABLE1 = pd.DataFrame(
    [
        ("DRDO vs. e-DPO", "drdo", "edpo", "D_all", 731, 0.7827),
        ("DRDO vs. e-DPO", "drdo", "edpo", "D_hc_he", 759, 0.8092),
        ("DRDO vs. e-DPO", "drdo", "edpo", "D_lc_le", 738, 0.7901),
        ("DRDO vs. DPO", "drdo", "dpo", "D_all", 748, 0.8078),
        ("DRDO vs. DPO", "drdo", "dpo", "D_hc_he", 746, 0.7911),
        ("DRDO vs. DPO", "drdo", "dpo", "D_lc_le", 746, 0.7979),
        ("Gold vs. DRDO", "reference", "drdo", None, 525, 0.5282),
        ("Gold vs. e-DPO", "reference", "edpo", None, 540, 0.5438),
        ("Gold vs. DPO", "reference", "dpo", None, 579, 0.5854),
    ],
    columns=["comparison", "a", "b", "split", "wins", "win_rate"],
)

#: Table 3: AlpacaEval head-to-head, GPT-4 Turbo judge, N = 805.
TABLE3 = pd.DataFrame(
    [("DRDO vs. e-DPO", "drdo", "edpo", 495, 0.6203), ("DRDO vs. DPO", "drdo", "dpo", 491, 0.6161)],
    columns=["comparison", "a", "b", "wins", "win_rate"],
)

_T2 = {  # model: {T: (SFT, DPO, e-DPO)} — DRDO's oracle win rate against each baseline
    "OPT-125M": {0.2: (0.47, 0.61, 0.51), 0.5: (0.52, 0.63, 0.50), 0.7: (0.57, 0.58, 0.54), 0.9: (0.57, 0.64, 0.61)},
    "OPT-350M": {0.2: (0.58, 0.63, 0.60), 0.5: (0.61, 0.70, 0.65), 0.7: (0.60, 0.70, 0.69), 0.9: (0.66, 0.70, 0.68)},
    "OPT-1.3B": {0.2: (0.83, 0.70, 0.83), 0.5: (0.82, 0.65, 0.81), 0.7: (0.83, 0.63, 0.75), 0.9: (0.81, 0.59, 0.78)},
    "OPT-2.7B": {0.2: (0.81, 0.68, 0.83), 0.5: (0.80, 0.64, 0.80), 0.7: (0.79, 0.62, 0.78), 0.9: (0.79, 0.60, 0.75)},
    "Phi-3": {0.2: (0.66, 0.80, 0.57), 0.5: (0.71, 0.83, 0.58), 0.7: (0.75, 0.86, 0.60), 0.9: (0.76, 0.88, 0.66)},
}


def table2_long() -> pd.DataFrame:
    """Table 2 in long form: ``model``, ``temperature``, ``baseline`` (sft | dpo | edpo), ``win_rate``."""
    rows = [(m, t, b, v) for m, by_t in _T2.items() for t, vals in by_t.items()
            for b, v in zip(("sft", "dpo", "edpo"), vals)]
    return pd.DataFrame(rows, columns=["model", "temperature", "baseline", "win_rate"])


#: Table 2 in the paper's layout: rows = student model, columns = (T, baseline).
TABLE2 = table2_long().pivot_table(index="model", columns=["temperature", "baseline"], values="win_rate",
                                   sort=False).reindex(
    index=list(PAPER_TABLE2_MODELS),
    columns=pd.MultiIndex.from_tuples([(t, b) for t in PAPER_TEMPERATURES for b in ("sft", "dpo", "edpo")],
                                      names=["T", "baseline"]))

#: Table 5: split statistics (mean raw confidence, mean normalised edit distance, train / validation counts).
TABLE5 = PAPER_TABLE5.copy()
