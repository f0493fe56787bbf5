"""Tests of drdo_lib.tables.write_table, the one writer of every CSV + Markdown table under figures/<profile>/."""
from __future__ import annotations

import pandas as pd

from drdo_lib import paper_numbers as pn
from drdo_lib.tables import write_table


def test_write_table_plain_frame(tmp_path):
    df = pd.DataFrame({"a": [1.23456, 2.0], "b": ["x", "y"]})
    csv, md = write_table(df, tmp_path / "t" / "tab")
    assert (csv.name, md.name) == ("tab.csv", "tab.md")
    back = pd.read_csv(csv)
    assert list(back.columns) == ["a", "b"]  # a RangeIndex is not written
    pd.testing.assert_frame_equal(back, df)
    text = md.read_text()
    assert text.startswith("|") and "1.235" in text and "1.23456" not in text  # floatfmt=".3f"
    _, md0 = write_table(df, tmp_path / "t" / "tab0", floatfmt=".0f")
    assert "|   1 | x" in md0.read_text() and "1.2" not in md0.read_text()


def test_write_table_index_and_multiindex_columns(tmp_path):
    csv, md = write_table(pn.TABLE2, tmp_path / "t2")  # index = model names, columns = (T, baseline)
    back = pd.read_csv(csv, index_col=0)
    assert list(back.index) == list(pn.PAPER_TABLE2_MODELS)
    assert list(back.columns[:3]) == ["0.2 sft", "0.2 dpo", "0.2 edpo"]
    assert back.loc["OPT-1.3B", "0.2 sft"] == 0.83 and "OPT-1.3B" in md.read_text()
    ct = pd.DataFrame({"x": [1, 2]}, index=pd.Index(["r0", "r1"], name="row"))
    csv, _ = write_table(ct, tmp_path / "ct", index=False)  # an explicit index=False wins over the default
    assert list(pd.read_csv(csv).columns) == ["x"]
