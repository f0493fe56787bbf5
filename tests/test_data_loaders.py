"""Loaders on tiny fixtures written here (every bad-input case), on ../shared/data when present, and the hub route."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from drdo_lib.data import (
    dropped_counts,
    edit_distance,
    load_alpaca_eval,
    load_cnn_dailymail,
    load_tldr_comparisons,
    load_tldr_sft,
    load_ultrafeedback,
)
from drdo_lib.data.loaders import BadRowError

REPO = Path(__file__).resolve().parent.parent


def shared_data() -> Path:
    p = Path(os.environ.get("DRDO_DATA_DIR") or REPO.parent / "shared" / "data")
    if not p.is_dir():
        pytest.skip(f"real data samples not found at {p} (set DRDO_DATA_DIR to a copy of ../shared/data)")
    return p


def levenshtein(a, b):
    """Independent reference: textbook dynamic programme."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def write_jsonl(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for r in rows:
            f.write((r if isinstance(r, str) else json.dumps(r)) + "\n")
    return path


def comparison(pid="t3_a", choice=0, conf=2, texts=(" the cat sat", " a dog ran far"), split="train", worker="w1",
               **info_over):
    info = {"id": pid, "post": "My cat and my dog.", "title": "Pets", "subreddit": "pets"}
    info.update(info_over)
    return {"info": info, "summaries": [{"text": texts[0], "policy": "ref", "note": None},
                                        {"text": texts[1], "policy": "sup4", "note": None}],
            "choice": choice, "worker": worker, "batch": "b1", "split": split, "extra": {"confidence": conf}}


# ------------------------------------------------------------------------------------------- edit distance
@pytest.mark.parametrize("a,b", [("the cat sat", "the cat sat down"), ("a b c d", "d c b a"), ("", "x y"),
                                 ("one two", "three four five six")])
def test_edit_distance_word_and_char(a, b):
    wa, wb = a.split(), b.split()
    assert edit_distance(a, b) == pytest.approx(levenshtein(wa, wb) / max(len(wa), len(wb)))
    assert edit_distance(a, b, "char") == pytest.approx(levenshtein(a, b) / max(len(a), len(b)))
    assert edit_distance("", "") == 0.0


def test_edit_distance_token_unit():
    class Tok:
        def encode(self, text):
            return [ord(c) % 7 for c in text]

    a, b = "hello there", "help here"
    ta, tb = Tok().encode(a), Tok().encode(b)
    assert edit_distance(a, b, "token", Tok()) == pytest.approx(levenshtein(ta, tb) / max(len(ta), len(tb)))
    with pytest.raises(ValueError, match="tokenizer"):
        edit_distance(a, b, "token")
    with pytest.raises(ValueError, match="unit"):
        edit_distance(a, b, "sentence")


# ------------------------------------------------------------------------------------------- TL;DR comparisons
def test_comparisons_normalised_row(tmp_path):
    f = write_jsonl(tmp_path / "c.jsonl", [comparison(choice=1, conf=8, subreddit="r/pets")])
    ds = load_tldr_comparisons(f)
    assert len(ds) == 1 and dropped_counts(ds) == {}
    r = ds[0]
    assert r["prompt"] == "SUBREDDIT: r/pets\nTITLE: Pets\nPOST: My cat and my dog.\nTL;DR:"
    assert r["chosen"] == " a dog ran far" and r["rejected"] == " the cat sat"
    assert r["confidence"] == 8 and r["strength"] == 3.0 and r["choice"] == 1
    assert r["edit_distance"] == pytest.approx(levenshtein("a dog ran far".split(), "the cat sat".split()) / 4)
    assert r["split"] == "train" and r["worker"] == "w1" and r["post_id"] == "t3_a"
    assert r["chosen_policy"] == "sup4" and r["rejected_policy"] == "ref" and r["subreddit"] == "pets"
    assert r["source"] == "summarize_from_feedback" and r["origin"] == "c.jsonl"


def test_comparisons_json_parquet_folder(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [comparison(pid=f"t3_{i}", worker=f"w{i}") for i in range(4)]
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.json").write_text(json.dumps(rows[:2]))  # JSON array
    pq.write_table(pa.Table.from_pylist(rows[2:]), tmp_path / "d" / "b.parquet")
    (tmp_path / "d" / "README.md").write_text("not data")
    ds = load_tldr_comparisons(tmp_path / "d")
    assert sorted(ds["post_id"]) == ["t3_0", "t3_1", "t3_2", "t3_3"]
    assert sorted(set(ds["origin"])) == ["a.json", "b.parquet"]


def test_pair_id_shared_across_workers(tmp_path):
    rows = [comparison(worker="w1"), comparison(worker="w2", choice=1, conf=7)]
    ds = load_tldr_comparisons(write_jsonl(tmp_path / "c.jsonl", rows))
    assert len(ds) == 2 and ds[0]["pair_id"] == ds[1]["pair_id"] and ds[0]["id"] != ds[1]["id"]


BAD_COMPARISONS = {
    "missing_field": [
        {k: v for k, v in comparison().items() if k != "summaries"},  # missing
        {**{k: v for k, v in comparison().items() if k != "choice"}, "preferred": 0},  # renamed
        {**comparison(), "info": None},
    ],
    "no_tldr_fields": [
        {**comparison(), "info": {"id": "x", "article": "News text.", "title": "T", "site": "cnn"}},
        {**comparison(), "info": {"id": "x", "title": "T", "subreddit": "pets"}},
    ],
    "bad_summaries": [{**comparison(), "summaries": [{"text": " only one"}]}],
    "bad_choice": [comparison(choice=2), {**comparison(), "choice": True}],
    "empty_response": [comparison(texts=(" ", " fine text"))],
    "identical_responses": [comparison(texts=(" same text", "same text "))],
    "confidence_out_of_range": [comparison(conf=5), comparison(conf=0), comparison(conf=10),
                                comparison(conf="high"), comparison(conf=2.5)],
    "confidence_direction_mismatch": [comparison(choice=0, conf=7), comparison(choice=1, conf=3)],
    "not_a_record": [[1, 2, 3]],
}


def test_each_bad_comparison_is_dropped_and_counted(tmp_path):
    good = comparison(pid="t3_good")
    rows = [good] + [r for rs in BAD_COMPARISONS.values() for r in rs] + ["{not json"]
    ds = load_tldr_comparisons(write_jsonl(tmp_path / "bad.jsonl", rows))
    assert ds["post_id"] == ["t3_good"]
    expected = {k: len(v) for k, v in BAD_COMPARISONS.items()}
    expected["invalid_json"] = 1
    assert dropped_counts(ds) == expected


@pytest.mark.parametrize("reason", sorted(BAD_COMPARISONS))
def test_strict_mode_names_file_row_and_field(tmp_path, reason):
    bad = BAD_COMPARISONS[reason][0]
    f = write_jsonl(tmp_path / "strict.jsonl", [comparison(), bad])
    with pytest.raises(BadRowError) as e:
        load_tldr_comparisons(f, strict=True)
    msg = str(e.value)
    assert "strict.jsonl" in msg and "row 2" in msg and reason in msg and "field" in msg


def test_strict_invalid_json(tmp_path):
    f = write_jsonl(tmp_path / "j.jsonl", [comparison(), "{oops"])
    with pytest.raises(BadRowError, match=r"j\.jsonl: row 2"):
        load_tldr_comparisons(f, strict=True)


def test_null_confidence_is_kept_without_strength(tmp_path):
    rows = [comparison(conf=None), {**comparison(pid="t3_b"), "extra": {}}, {**comparison(pid="t3_c"), "extra": None}]
    ds = load_tldr_comparisons(write_jsonl(tmp_path / "n.jsonl", rows))
    assert len(ds) == 3 and ds["confidence"] == [None] * 3 and ds["strength"] == [None] * 3


def test_file_not_in_schema_raises_naming_file(tmp_path):
    d = tmp_path / "d"
    write_jsonl(d / "good.jsonl", [comparison()])
    write_jsonl(d / "other.jsonl", [{"question": "q", "answer": "a"}] * 3)
    with pytest.raises(ValueError, match="other.jsonl.*not in the expected schema"):
        load_tldr_comparisons(d)


def test_no_usable_rows_raises(tmp_path):
    with pytest.raises(ValueError, match="no usable rows"):
        load_tldr_comparisons(write_jsonl(tmp_path / "c.jsonl", [comparison(conf=5)]))


def test_empty_folder_raises(tmp_path):
    with pytest.raises(ValueError, match="no .*files"):
        load_tldr_comparisons(tmp_path)


def test_token_unit_needs_tokenizer(tmp_path):
    with pytest.raises(ValueError, match="tokenizer"):
        load_tldr_comparisons(tmp_path, edit_distance_unit="token")
    with pytest.raises(ValueError, match="edit_distance_unit"):
        load_tldr_comparisons(tmp_path, edit_distance_unit="line")


def test_char_unit(tmp_path):
    ds = load_tldr_comparisons(write_jsonl(tmp_path / "c.jsonl", [comparison()]), edit_distance_unit="char")
    a, b = " the cat sat", " a dog ran far"
    assert ds[0]["edit_distance"] == pytest.approx(levenshtein(a, b) / max(len(a), len(b)))


def test_hub_route_uses_load_dataset(monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(hub_id, config=None, **kw):
        calls.append((hub_id, config))
        rows = [comparison(pid="t3_h1", split="train"), comparison(pid="t3_h2", split="valid1")]
        return datasets.DatasetDict({"train": datasets.Dataset.from_list(rows[:1]),
                                     "validation": datasets.Dataset.from_list(rows[1:])})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    ds = load_tldr_comparisons("someone/not-a-local-path")
    assert calls == [("someone/not-a-local-path", "comparisons")]
    assert sorted(ds["split"]) == ["train", "valid1"]
    assert sorted(set(ds["origin"])) == ["someone/not-a-local-path[train]", "someone/not-a-local-path[validation]"]
    ds = load_tldr_comparisons("someone/not-a-local-path", hub_splits=["validation"])
    assert ds["split"] == ["valid1"]


# ------------------------------------------------------------------------------------------- TL;DR SFT
def test_sft_both_layouts_give_the_same_prompt(tmp_path):
    carper = {"id": "t3_x", "prompt": "SUBREDDIT: r/pets\nTITLE: Dog\nPOST: My dog barks.\nTL;DR: ",
              "label": "dog barks"}
    dove = {"instruction_id": "t3_y", "subreddit": "pets", "title": "Dog", "instruction": "My dog barks.",
            "gold_response": "dog barks"}
    openai = {"id": "t3_z", "subreddit": "pets", "title": "Dog", "post": "My dog barks.", "summary": " dog barks"}
    write_jsonl(tmp_path / "sft" / "carperai_train.jsonl", [carper])
    write_jsonl(tmp_path / "sft" / "dove_test.jsonl", [dove, openai])
    ds = load_tldr_sft(tmp_path / "sft")
    assert len(ds) == 3 and len(set(ds["prompt"])) == 1
    assert ds[0]["prompt"].endswith("TL;DR:") and set(ds["response"]) == {" dog barks"}
    assert dict(zip(ds["id"], ds["split"])) == {"t3_x": "train", "t3_y": "test", "t3_z": "test"}


def test_sft_bad_rows(tmp_path):
    rows = [
        {"id": "1", "prompt": "SUBREDDIT: r/a\nTITLE: b\nPOST: c\nTL;DR: ", "label": "ok"},
        {"id": "2", "prompt": "SUBREDDIT: r/a\nTITLE: b\nPOST: c\nTL;DR: ", "label": "  "},  # empty
        {"id": "3", "prompt": "no template here", "label": "x"},  # no TL;DR fields
        {"id": "4", "prompt": "SUBREDDIT: r/a\nTL;DR:"},  # missing label
        {"id": "5", "subreddit": "a", "post": "p", "summary": "s"},  # dove/openai layout without title
        {"id": "1", "prompt": "SUBREDDIT: r/a\nTITLE: b\nPOST: d\nTL;DR: ", "label": "dup"},  # duplicate id
    ]
    ds = load_tldr_sft(write_jsonl(tmp_path / "s.jsonl", rows))
    assert ds["id"] == ["1"]
    assert dropped_counts(ds) == {"empty_response": 1, "no_tldr_fields": 2, "missing_field": 1, "duplicate_id": 1}
    with pytest.raises(BadRowError, match=r"s\.jsonl: row 2: field 'label': empty_response"):
        load_tldr_sft(tmp_path / "s.jsonl", strict=True)


# ------------------------------------------------------------------------------------------- CNN/DM, UF, AlpacaEval
def test_cnn_dailymail(tmp_path):
    rows = [{"id": "abc", "article": "Some news.", "highlights": "News happened ."},
            {"id": "def", "article": "", "highlights": "x ."},
            {"id": "ghi", "article": "Text."}]
    ds = load_cnn_dailymail(write_jsonl(tmp_path / "cnn.jsonl", rows))
    assert ds["id"] == ["abc"] and ds[0]["split"] == "test"
    assert dropped_counts(ds) == {"empty_response": 1, "missing_field": 1}


def test_ultrafeedback_strings_messages_and_ratings(tmp_path):
    msgs = lambda p, a: [{"role": "user", "content": p}, {"role": "assistant", "content": a}]  # noqa: E731
    rows = [
        {"prompt": "Q1", "chosen": msgs("Q1", "good"), "rejected": msgs("Q1", "bad"), "chosen-rating": 5.0,
         "rejected-rating": 1.25, "chosen-model": "m1", "rejected-model": "m2", "source": "evol"},
        {"row_idx": 7, "prompt": "Q2", "chosen": "fine answer", "rejected": "poor answer"},
        {"prompt": "Q3", "chosen": "a", "rejected": "b", "chosen-rating": float("nan"), "rejected-rating": 1.0},
        {"prompt": "Q4", "chosen": "a", "rejected": "b", "chosen-rating": 4.0, "rejected-rating": float("inf")},
        {"prompt": "Q5", "chosen": "same", "rejected": "same"},
        {"prompt": "Q6", "chosen": [{"role": "user", "content": "Q6"}], "rejected": "b"},
    ]
    ds = load_ultrafeedback(write_jsonl(tmp_path / "uf.jsonl", rows))
    assert ds["prompt"] == ["Q1", "Q2"]
    assert ds[0]["chosen"] == "good" and ds[0]["rejected"] == "bad" and ds[0]["strength"] == pytest.approx(3.75)
    assert ds[0]["chosen_policy"] == "m1" and ds[1]["strength"] is None and ds[1]["id"] == "uf:7"
    assert dropped_counts(ds) == {"non_finite_rating": 2, "identical_responses": 1, "missing_field": 1}


def test_alpaca_eval(tmp_path):
    rows = [{"dataset": "helpful_base", "instruction": "Say hi", "output": "Hi", "generator": "gpt4"},
            {"dataset": "x", "instruction": "", "output": "", "generator": "g"}]
    (tmp_path / "ae.json").write_text(json.dumps(rows))
    ds = load_alpaca_eval(tmp_path / "ae.json")
    assert ds["instruction"] == ["Say hi"] and ds[0]["reference_generator"] == "gpt4"
    assert dropped_counts(ds) == {"missing_field": 1}


# ------------------------------------------------------------------------------------------- real samples
def test_real_comparisons():
    d = shared_data() / "summarize_from_feedback_comparisons"
    ds = load_tldr_comparisons(d)
    assert len(ds) == 674 + 5 and dropped_counts(ds) == {}
    for r in ds:
        assert r["prompt"].startswith("SUBREDDIT: r/") and r["prompt"].endswith("\nTL;DR:")
        assert (r["confidence"] < 5) == (r["choice"] == 0) and r["strength"] == abs(r["confidence"] - 5)
        assert 0 <= r["edit_distance"] <= 1
    assert "SUBREDDIT: r/r/" not in "".join(ds["prompt"])  # edit_b2 rows write "r/relationships"
    assert sum(ds["post_id"][i] == "" for i in range(len(ds))) == 5  # edit_b2 rows have no info.id
    raw = [json.loads(line) for line in open(d / "batch18.jsonl")]
    for src, r in zip(raw, ds.select(range(len(raw)))):  # files are read in name order, rows in file order
        assert r["origin"] == "batch18.jsonl" and r["worker"] == src["worker"]
        assert r["chosen"] == src["summaries"][src["choice"]]["text"]
        assert r["rejected"] == src["summaries"][1 - src["choice"]]["text"]
        assert src["extra"]["confidence"] == r["confidence"] and src["split"] == r["split"]


def test_real_sft_cnn_uf_alpaca():
    d = shared_data()
    sft = load_tldr_sft(d / "openai_summarize_tldr")
    assert len(sft) == 500 and dropped_counts(sft) == {"duplicate_id": 500}  # dove file = CarperAI rendering
    carper = load_tldr_sft(d / "openai_summarize_tldr" / "carperai_format_test500.jsonl")
    dove = load_tldr_sft(d / "openai_summarize_tldr" / "dove_tldr_test500.jsonl")
    assert carper["prompt"] == dove["prompt"] and carper["response"] == dove["response"]
    cnn = load_cnn_dailymail(d / "cnn_dailymail")
    assert len(cnn) == 250 and dropped_counts(cnn) == {}
    uf = load_ultrafeedback(d / "ultrafeedback")
    assert len(uf) == 1000 and all(s is None for s in uf["strength"])
    ae = load_alpaca_eval(d / "alpaca_eval" / "alpaca_eval_gpt4_1106_preview_reference.json")
    assert len(ae) == 805 and dropped_counts(ae) == {}
    assert not any(math.isnan(x) for x in uf["edit_distance"])


# ------------------------------------------------------------------------------------------- hub route (cached map)
def fake_hub(monkeypatch, splits: dict):
    import datasets

    def fake_load_dataset(hub_id, config=None, **kw):
        return datasets.DatasetDict({k: datasets.Dataset.from_list(v) for k, v in splits.items()})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)


def test_hub_route_drops_and_strict(monkeypatch):
    rows = [comparison(pid="t3_1"), comparison(pid="t3_2", conf=5), comparison(pid="t3_3", texts=(" a", " a")),
            comparison(pid="t3_1")]  # the last one repeats the first row exactly (same id)
    fake_hub(monkeypatch, {"train": rows})
    ds = load_tldr_comparisons("org/comparisons")
    assert ds["post_id"] == ["t3_1"]
    assert dropped_counts(ds) == {"confidence_out_of_range": 1, "identical_responses": 1, "duplicate_id": 1}
    assert ds.features["confidence"].dtype == "int64" and ds.features["strength"].dtype == "float64"
    with pytest.raises(BadRowError, match=r"org/comparisons\[train\]: row 2: field 'extra.confidence'"):
        load_tldr_comparisons("org/comparisons", strict=True)
    with pytest.raises(ValueError, match="no split"):
        load_tldr_comparisons("org/comparisons", hub_splits=["validation"])


def test_hub_and_local_routes_agree_on_real_data(monkeypatch):
    d = shared_data()
    raw = [json.loads(line) for line in open(d / "summarize_from_feedback_comparisons" / "batch18.jsonl")]
    local = load_tldr_comparisons(d / "summarize_from_feedback_comparisons" / "batch18.jsonl")
    fake_hub(monkeypatch, {"validation": raw})
    hub = load_tldr_comparisons("openai/summarize_from_feedback")
    cols = [c for c in local.column_names if c != "origin"]
    assert hub.select_columns(cols).to_list() == local.select_columns(cols).to_list()
    for name, mod_loader, sub in [("sft", load_tldr_sft, "openai_summarize_tldr/carperai_format_test500.jsonl"),
                                  ("cnn", load_cnn_dailymail, "cnn_dailymail/cnn_dailymail_hf_schema_250.jsonl")]:
        recs = [json.loads(line) for line in open(d / sub)]
        loc = mod_loader(d / sub)
        fake_hub(monkeypatch, {"test": recs})
        via_hub = mod_loader("org/" + name, hub_splits=["test"])
        assert via_hub["prompt" if name == "sft" else "article"] == loc["prompt" if name == "sft" else "article"]
        assert set(via_hub["split"]) == {"test"}


# ------------------------------------------------------------------------------- hostile inputs ---------------
def test_non_utf8_row_is_dropped_and_strict_names_file_and_row(tmp_path):
    f = tmp_path / "latin1.jsonl"
    bad = json.dumps(comparison(pid="t3_bad", texts=(" caf\u00e9 cat", " a dog ran far")), ensure_ascii=False)
    f.write_bytes(b"\n".join([json.dumps(comparison(pid="t3_a")).encode(), bad.encode("latin-1"),
                              json.dumps(comparison(pid="t3_c")).encode()]) + b"\n")
    ds = load_tldr_comparisons(f)
    assert ds["post_id"] == ["t3_a", "t3_c"] and dropped_counts(ds) == {"invalid_encoding": 1}
    with pytest.raises(BadRowError, match=r"latin1\.jsonl: row 2: .*UTF-8"):
        load_tldr_comparisons(f, strict=True)


def test_non_utf8_json_array_names_file_and_line(tmp_path):
    f = tmp_path / "arr.json"
    text = json.dumps([{"instruction": "Say hi", "output": "Hi"}, {"instruction": "Say caf\u00e9", "output": "x"}],
                      indent=1, ensure_ascii=False)
    f.write_bytes(text.encode("latin-1"))
    line = text[:text.index("\u00e9")].count("\n") + 1
    with pytest.raises(ValueError, match=rf"arr\.json: line {line}: not valid UTF-8"):
        load_alpaca_eval(f)


def test_bom_does_not_cost_the_first_row(tmp_path):
    f = tmp_path / "bom.jsonl"
    f.write_bytes(b"\xef\xbb\xbf" + b"\n".join(json.dumps(comparison(pid=p)).encode() for p in ("t3_a", "t3_b")))
    ds = load_tldr_comparisons(f)
    assert ds["post_id"] == ["t3_a", "t3_b"] and dropped_counts(ds) == {}
    g = tmp_path / "bom.json"
    g.write_bytes(b"\xef\xbb\xbf" + json.dumps([{"instruction": "a", "output": "b"}]).encode())
    assert load_alpaca_eval(g)["instruction"] == ["a"]


def test_float_choice_from_a_parquet_column_with_a_null(tmp_path, monkeypatch):
    import pandas as pd

    rows = [comparison(pid="t3_a", choice=0, conf=2), comparison(pid="t3_b", choice=1, conf=8),
            comparison(pid="t3_c", choice=0, conf=3)]
    rows[2]["choice"] = None
    frame = pd.DataFrame(rows)
    assert frame["choice"].dtype == float  # pandas turns the int column with one null into floats (NaN)
    frame.to_parquet(tmp_path / "c.parquet")
    ds = load_tldr_comparisons(tmp_path / "c.parquet")  # 0.0, 1.0 and a null (Arrow stores the NaN as null)
    assert ds["post_id"] == ["t3_a", "t3_b"] and ds["choice"] == [0, 1]
    assert dropped_counts(ds) == {"missing_field": 1}
    assert ds[1]["chosen"] == " a dog ran far"
    with pytest.raises(BadRowError, match=r"c\.parquet: row 3: field 'choice': missing_field"):
        load_tldr_comparisons(tmp_path / "c.parquet", strict=True)
    f = write_jsonl(tmp_path / "nan.jsonl", [{**rows[0], "choice": 0.0}, {**rows[1], "choice": float("nan")}])
    ds = load_tldr_comparisons(f)
    assert ds["post_id"] == ["t3_a"] and dropped_counts(ds) == {"bad_choice": 1}
    rows[2]["choice"] = 0.5
    fake_hub(monkeypatch, {"train": [{**r, "choice": float(r["choice"])} for r in rows]})
    ds = load_tldr_comparisons("org/float-choice")
    assert ds["choice"] == [0, 1] and dropped_counts(ds) == {"bad_choice": 1}


def test_wrong_typed_extra_is_dropped_not_read_as_null_confidence(tmp_path):
    rows = [comparison(pid="t3_ok"), {**comparison(pid="t3_s"), "extra": "confidence: 2"},
            {**comparison(pid="t3_l"), "extra": [2]}, {**comparison(pid="t3_n"), "extra": 2},
            {**comparison(pid="t3_e"), "extra": ""}]
    f = write_jsonl(tmp_path / "x.jsonl", rows)
    ds = load_tldr_comparisons(f)
    assert ds["post_id"] == ["t3_ok"] and dropped_counts(ds) == {"missing_field": 4}
    with pytest.raises(BadRowError, match=r"x\.jsonl: row 2: field 'extra': missing_field"):
        load_tldr_comparisons(f, strict=True)


def test_missing_local_path_is_file_not_found_without_the_hub(tmp_path, monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(hub_id, config=None, **kw):
        calls.append(hub_id)
        return datasets.DatasetDict({"train": datasets.Dataset.from_list([comparison()])})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    missing = [tmp_path / "nope.jsonl", tmp_path / "nope", str(tmp_path / "nope"), "./nope", "../nope",
               "~/drdo-no-such-folder-xyz", "comparisons.jsonl", "comparisons.PARQUET", "data/tldr",
               "data/tldr/comparisons", Path("nope")]
    for src in missing:
        with pytest.raises(FileNotFoundError, match="nope|drdo-no-such|comparisons|tldr"):
            load_tldr_comparisons(src)
    with pytest.raises(FileNotFoundError):
        load_alpaca_eval(tmp_path / "alpaca_eval")
    assert calls == []
    for hub_id in ("openai/summarize_from_feedback", "someone/not-a-local-path", "cnn_dailymail"):
        load_tldr_comparisons(hub_id)
    assert calls == ["openai/summarize_from_feedback", "someone/not-a-local-path", "cnn_dailymail"]


def test_home_relative_path_is_read_locally(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    write_jsonl(tmp_path / "c.jsonl", [comparison()])
    assert len(load_tldr_comparisons("~/c.jsonl")) == 1


def test_alpaca_non_string_fields_are_dropped(tmp_path):
    rows = [{"dataset": "d", "instruction": "Say hi", "output": "Hi", "generator": "g"},
            {"dataset": "d", "instruction": "Say nan", "output": float("nan"), "generator": "g"},
            {"dataset": "d", "instruction": "Say list", "output": ["a", "b"], "generator": "g"},
            {"dataset": "d", "instruction": "Say number", "output": 3, "generator": "g"},
            {"dataset": "d", "instruction": "Say gen", "output": "x", "generator": {"name": "g"}},
            {"dataset": "d", "instruction": "No output"}]
    f = write_jsonl(tmp_path / "ae.jsonl", rows)
    ds = load_alpaca_eval(f)
    assert ds["instruction"] == ["Say hi", "No output"] and ds["reference_output"] == ["Hi", ""]
    assert dropped_counts(ds) == {"missing_field": 4}
    assert not any(o in ("nan", "['a', 'b']", "3") for o in ds["reference_output"])
    with pytest.raises(BadRowError, match=r"ae\.jsonl: row 2: field 'output': missing_field"):
        load_alpaca_eval(f, strict=True)


def test_alpaca_refuses_tldr_rows(tmp_path):
    dove = {"instruction_id": "t3_y", "subreddit": "pets", "title": "Dog", "instruction": "My dog barks.",
            "gold_response": "dog barks"}
    f = write_jsonl(tmp_path / "dove_tldr.jsonl", [{**dove, "instruction_id": f"t3_{i}"} for i in range(3)])
    with pytest.raises(ValueError, match=r"dove_tldr\.jsonl.*not in the expected schema"):
        load_alpaca_eval(f)
    mixed = write_jsonl(tmp_path / "mixed.jsonl", [{"instruction": "Say hi", "output": "Hi"}, dove])
    ds = load_alpaca_eval(mixed)
    assert ds["instruction"] == ["Say hi"] and dropped_counts(ds) == {"not_alpaca_eval": 1}
    msg = r"mixed\.jsonl: row 2: field '(subreddit|title|gold_response)': not_alpaca_eval"
    with pytest.raises(BadRowError, match=msg):
        load_alpaca_eval(mixed, strict=True)


def test_real_dove_file_is_not_read_as_alpaca_eval():
    f = shared_data() / "openai_summarize_tldr" / "dove_tldr_test500.jsonl"
    with pytest.raises(ValueError, match="dove_tldr_test500.jsonl.*not in the expected schema"):
        load_alpaca_eval(f)


def test_corrupted_real_sample_latin1_and_bom(tmp_path):
    src = shared_data() / "summarize_from_feedback_comparisons" / "batch18.jsonl"
    lines = src.read_bytes().splitlines()[:20]
    ok = load_tldr_comparisons(src)
    want = list(ok.select(range(20))["id"])
    f = tmp_path / "batch18_bom.jsonl"
    f.write_bytes(b"\xef\xbb\xbf" + b"\n".join(lines) + b"\n")
    assert list(load_tldr_comparisons(f)["id"]) == want
    g = tmp_path / "batch18_latin1.jsonl"
    g.write_bytes(b"\n".join(lines[:5] + [lines[5].replace(b"}", b"\xe9}", 1)] + lines[6:]) + b"\n")
    ds = load_tldr_comparisons(g)
    assert list(ds["id"]) == want[:5] + want[6:] and dropped_counts(ds) == {"invalid_encoding": 1}
