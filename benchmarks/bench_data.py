"""Benchmark: generate, load + normalise, and split 100k synthetic TL;DR comparison rows (target < 60 s on 2 cores).

    python benchmarks/bench_data.py [--rows 100000] [--seed 0]

Prints the seconds of each phase and the total. Files go to a temporary folder that is removed afterwards.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from drdo_lib.data import SyntheticConfig, SyntheticTestbed, build_splits, load_tldr_comparisons


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000, help="number of comparison rows")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    tb = SyntheticTestbed(SyntheticConfig(seed=args.seed))
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        n_valid = args.rows // 10
        paths = tb.write(Path(tmp), n_train=args.rows - n_valid, n_valid=n_valid, n_sft=1, n_sft_test=0, n_ood=0)
        t1 = time.perf_counter()
        rows = load_tldr_comparisons(paths["comparisons_train"].parent)
        t2 = time.perf_counter()
        _, report_strength = build_splits(rows, "strength")
        _, report_raw = build_splits(rows, "raw")
        t3 = time.perf_counter()
    print(f"rows: {args.rows} written, {len(rows)} loaded")
    print(f"generate + write JSONL : {t1 - t0:6.1f} s")
    print(f"load + normalise       : {t2 - t1:6.1f} s")
    print(f"build_splits (2 modes) : {t3 - t2:6.1f} s")
    print(f"load + normalise + split: {t3 - t1:6.1f} s   (target < 60 s)")
    print(f"total                  : {t3 - t0:6.1f} s")
    cols = ["split", "n_train", "n_valid", "mean_confidence", "mean_edit_distance"]
    print(report_strength[cols].to_string(index=False))


if __name__ == "__main__":
    main()
