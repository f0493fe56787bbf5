"""Datasets of the DRDO companion: loaders, the paper's splits and the synthetic testbed.

Public API (see each submodule's docstring)::

    from drdo_lib.data import load_tldr_comparisons, build_splits
    rows = load_tldr_comparisons("openai/summarize_from_feedback" or a local file/folder)   # datasets.Dataset
    splits, report = build_splits(rows, confidence_mode="strength")   # {"D_all", "D_hc_he", "D_lc_le"}, DataFrame

    load_tldr_sft, load_cnn_dailymail, load_ultrafeedback, load_alpaca_eval   # the other datasets
    DataConfig, load_sources             # the data stage (drdo_lib.data.pipeline: run/load) reads sources with these
    SyntheticConfig, SyntheticTestbed    # the synthetic testbed with its true reward r*
    format_tldr_prompt                   # the TL;DR template

Submodules: :mod:`~drdo_lib.data.loaders`, :mod:`~drdo_lib.data.splits`, :mod:`~drdo_lib.data.synthetic`,
:mod:`~drdo_lib.data.pipeline`, :mod:`~drdo_lib.data.formats`, :mod:`~drdo_lib.data.stats` (notebook-01 tables).
Importing this package reads no files and touches no network.
"""
from drdo_lib.data.formats import format_tldr_prompt
from drdo_lib.data.loaders import (
    dropped_counts,
    edit_distance,
    load_alpaca_eval,
    load_cnn_dailymail,
    load_tldr_comparisons,
    load_tldr_sft,
    load_ultrafeedback,
)
from drdo_lib.data.pipeline import DataConfig, ProfileData, load_sources
from drdo_lib.data.splits import PAPER_TABLE5, build_splits
from drdo_lib.data.synthetic import SyntheticConfig, SyntheticTestbed

__all__ = [
    "format_tldr_prompt",
    "load_tldr_comparisons",
    "load_tldr_sft",
    "load_cnn_dailymail",
    "load_ultrafeedback",
    "load_alpaca_eval",
    "dropped_counts",
    "edit_distance",
    "build_splits",
    "PAPER_TABLE5",
    "DataConfig",
    "ProfileData",
    "load_sources",
    "SyntheticConfig",
    "SyntheticTestbed",
]
