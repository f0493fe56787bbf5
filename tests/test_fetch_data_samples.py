"""scripts/fetch_data_samples.py: the files it writes are read by the loaders (sample and smol settings), hub errors
are one line each, and a missing data folder names the script. No network: ``datasets.load_dataset`` is replaced by
tiny in-memory datasets in the published schemas."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
import yaml

from drdo_lib.data import load_alpaca_eval
from drdo_lib.data.loaders import DataNotFound
from drdo_lib.data.pipeline import FETCH_SCRIPT, LOCAL_LAYOUT, DataConfig, load_sources
from drdo_lib.data.splits import build_splits
from drdo_lib.errors import UserError

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "fetch_data_samples.py"
REAL = Path(os.environ.get("DRDO_DATA_DIR") or REPO.parent / "shared" / "data")


def _script():
    spec = importlib.util.spec_from_file_location("fetch_data_samples", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(autouse=True)
def _no_data_dir_env(monkeypatch):
    """DRDO_DATA_DIR would win over the data_dir of every DataConfig here (REAL has read it already)."""
    monkeypatch.delenv("DRDO_DATA_DIR", raising=False)


@pytest.fixture(scope="module")
def fetch():
    return _script()


def _data_settings(profile: str) -> dict:
    return yaml.safe_load((REPO / "configs" / f"{profile}.yaml").read_text())["data"]


# ------------------------------------------------------------------------ tiny data sets in the published schemas
_S = datasets.Value("string")
COMPARISON_FEATURES = datasets.Features({
    "info": {"id": _S, "post": _S, "title": _S, "subreddit": _S, "site": _S, "article": _S},
    "summaries": [{"text": _S, "policy": _S, "note": _S}],
    "choice": datasets.Value("int32"), "worker": _S, "batch": _S, "split": _S,
    "extra": {"confidence": datasets.Value("int32")}})
MESSAGES = [{"content": _S, "role": _S}]


def _comparisons(n_tldr: int = 12, cnn_at: int = 3) -> datasets.Dataset:
    """``n_tldr`` TL;DR comparisons with directional confidences, and one CNN/DM comparison at row ``cnn_at``
    (the published validation split holds both)."""
    rows = []
    for i in range(n_tldr):
        choice = i % 2
        conf = (1 + i % 4) if choice == 0 else (6 + i % 4)
        rows.append({"info": {"id": f"t3_{i}", "post": f"post number {i} about the cat and the dog",
                              "title": f"title {i}", "subreddit": "relationships", "site": None, "article": None},
                     "summaries": [{"text": f" summary a{i} of the post", "policy": "ref", "note": None},
                                   {"text": f" the b{i} summary here", "policy": "sup4_6b", "note": None}],
                     "choice": choice, "worker": f"w{i % 3}", "batch": "batch18",
                     "split": "valid1" if i % 3 == 0 else "valid2", "extra": {"confidence": conf}})
    cnn = {"info": {"id": "abc", "post": None, "title": "news", "subreddit": None, "site": "cnn",
                    "article": "An article."},
           "summaries": [{"text": " one", "policy": "ref", "note": None},
                         {"text": " two", "policy": "ref", "note": None}],
           "choice": 0, "worker": "w9", "batch": "cnndm1", "split": "valid2", "extra": {"confidence": 2}}
    rows.insert(cnn_at, cnn)
    return datasets.Dataset.from_list(rows, features=COMPARISON_FEATURES)


def _sft(n: int = 8) -> datasets.Dataset:
    return datasets.Dataset.from_list(
        [{"prompt": f"SUBREDDIT: r/AskReddit\nTITLE: question {i}\nPOST: my post {i} text\nTL;DR: ",
          "label": f"short summary {i}"} for i in range(n)])


def _cnn(n: int = 5) -> datasets.Dataset:
    return datasets.Dataset.from_list([{"article": f"Article {i} body text.", "highlights": f"Point {i} .",
                                        "id": f"{i:040x}"} for i in range(n)])


def _ultrafeedback(n: int = 6) -> datasets.Dataset:
    feats = datasets.Features({"source": _S, "prompt": _S, "chosen": MESSAGES, "chosen-rating":
                               datasets.Value("float64"), "chosen-model": _S, "rejected": MESSAGES,
                               "rejected-rating": datasets.Value("float64"), "rejected-model": _S})
    rows = [{"source": "evol_instruct", "prompt": f"Question {i}?",
             "chosen": [{"role": "user", "content": f"Question {i}?"},
                        {"role": "assistant", "content": f"A careful answer {i}."}],
             "chosen-rating": 4.5 - 0.25 * i, "chosen-model": "gpt-4",
             "rejected": [{"role": "user", "content": f"Question {i}?"},
                          {"role": "assistant", "content": f"nope {i}"}],
             "rejected-rating": 1.0, "rejected-model": "pythia-12b"} for i in range(n)]
    return datasets.Dataset.from_list(rows, features=feats)


def _alpaca(n: int = 5) -> datasets.Dataset:
    return datasets.Dataset.from_list([{"instruction": f"Explain thing {i}.", "output": f"Thing {i} is ...",
                                        "generator": "text_davinci_003", "dataset": "helpful_base"}
                                       for i in range(n)])


HUB = {("openai/summarize_from_feedback", "comparisons", "validation"): _comparisons,
       ("CarperAI/openai_summarize_tldr", None, "test"): _sft,
       ("cnn_dailymail", "3.0.0", "test"): _cnn,
       ("argilla/ultrafeedback-binarized-preferences-cleaned", None, "train"): _ultrafeedback,
       ("tatsu-lab/alpaca_eval", "alpaca_eval", "eval"): _alpaca}


@pytest.fixture
def hub(monkeypatch, fetch):
    """``datasets.load_dataset`` answering the five hub ids (streamed or not); the calls are recorded."""
    calls: list[dict] = []
    failing: dict[str, BaseException] = {}

    def load_dataset(path, name=None, split=None, streaming=False, **kw):
        calls.append(dict(path=path, name=name, split=split, streaming=streaming, **kw))
        if path in failing:
            raise failing[path]
        if path == "json":  # AlpacaEval's JSON file, read when its loading script is refused
            assert kw["data_files"] == "hf://datasets/tatsu-lab/alpaca_eval/alpaca_eval.json"
            ds = _alpaca()
        else:
            ds = HUB[(path, name, split)]()
        return ds.to_iterable_dataset() if streaming else ds

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    monkeypatch.setattr(fetch, "hub_revision", lambda hub_id: "0123abcd")
    return calls, failing


# ------------------------------------------------------------------------------------------------ the files
def test_hub_ids_are_the_library_defaults(fetch):
    from drdo_lib.evaluation import EvalConfig

    cfg, table = DataConfig(), fetch.samples()
    assert [table[n].hub_id for n in ("comparisons", "sft", "ood", "ultrafeedback")] == \
        [cfg.comparisons_id, cfg.sft_id, cfg.ood_id, cfg.ultrafeedback_id]
    assert table["alpaca_eval"].hub_id == EvalConfig().alpaca_source
    assert {s.folder for s in table.values()} == set(LOCAL_LAYOUT.values())


def test_sample_profile_reads_the_fetched_files(fetch, hub, tmp_path, capsys):
    calls, _ = hub
    assert fetch.main(["--out", str(tmp_path), "--only", "sample"]) == 0
    assert {c["path"] for c in calls} == {"openai/summarize_from_feedback", "CarperAI/openai_summarize_tldr",
                                          "cnn_dailymail", "tatsu-lab/alpaca_eval"}
    assert all(c["streaming"] for c in calls)
    assert not (tmp_path / "ultrafeedback").exists()  # not read by `sample`
    settings = _data_settings("sample")
    assert settings["source"] == "local"
    data = load_sources(DataConfig(**{**settings, "data_dir": str(tmp_path)}), seed=0)
    # an independent count: the TL;DR rows of the published rows (the CNN/DM comparison is not a TL;DR row)
    raw = _comparisons()
    tldr = [r for r in raw if r["info"]["post"] is not None]
    assert len(data.preferences) == len(tldr) == 12
    assert data.preferences["strength"] == [float(abs(r["extra"]["confidence"] - 5)) for r in tldr]
    assert data.preferences["chosen"] == [r["summaries"][r["choice"]]["text"] for r in tldr]
    assert sorted(set(data.preferences["split"])) == ["valid1", "valid2"]  # what policy.row_splits reads
    assert set(data.preferences["split"]) <= set(yaml.safe_load(
        (REPO / "configs" / "sample.yaml").read_text())["policy"]["row_splits"])
    splits, _ = build_splits(data.preferences)
    assert len(splits["D_all"]) == 12  # the confidence splits form (the data stage's next step)
    assert len(data.sft) == 8 and set(data.sft["split"]) == {"test"}
    assert data.sft["response"][0] == " short summary 0" and data.sft["prompt"][0].endswith("TL;DR:")
    assert len(data.ood) == 5 and set(data.ood["split"]) == {"test"}
    al = load_alpaca_eval(tmp_path / LOCAL_LAYOUT["alpaca_eval"])
    assert al["reference_output"] == _alpaca()["output"]
    for name in ("comparisons", "sft", "ood", "alpaca_eval"):
        prov = (tmp_path / LOCAL_LAYOUT[name] / "PROVENANCE.md").read_text()
        s = fetch.samples()[name]
        n = {"comparisons": 13, "sft": 8, "ood": 5, "alpaca_eval": 5}[name]
        assert s.hub_id in prov and f"`{s.split}`" in prov and f"| rows | {n} |" in prov and "0123abcd" in prov
        assert f"`{s.config or 'default'}`" in prov
    assert "DRDO_DATA_DIR=" in capsys.readouterr().out


def test_smol_profile_reads_the_fetched_files(fetch, hub, tmp_path):
    assert fetch.main(["--out", str(tmp_path), "--only", "smol"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alpaca_eval", "ultrafeedback"]
    settings = _data_settings("smol")
    data = load_sources(DataConfig(**{**settings, "data_dir": str(tmp_path)}), seed=0)
    raw = _ultrafeedback()
    assert len(data.preferences) == len(raw)
    assert data.preferences["strength"] == [c - r for c, r in zip(raw["chosen-rating"], raw["rejected-rating"])]
    assert data.preferences["chosen"] == [m[-1]["content"] for m in raw["chosen"]]
    assert set(data.preferences["split"]) <= {"train", "test"} and "train" in set(data.preferences["split"])
    assert len(data.sft) == len(set(raw["prompt"]))


def test_rows_only_and_the_loading_script_fallback(fetch, hub, tmp_path):
    calls, failing = hub
    failing["tatsu-lab/alpaca_eval"] = RuntimeError("Dataset scripts are no longer supported, but found "
                                                    "alpaca_eval.py")
    assert fetch.main(["--out", str(tmp_path), "--only", "comparisons,alpaca_eval", "--rows", "4",
                       "--no-streaming"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([LOCAL_LAYOUT["comparisons"], "alpaca_eval"])
    lines = (tmp_path / LOCAL_LAYOUT["comparisons"] / "comparisons_validation.jsonl").read_text().splitlines()
    assert [json.loads(ln) for ln in lines] == _comparisons().select(range(4)).to_list()  # the published rows
    assert not any(c["streaming"] for c in calls)
    assert [c["path"] for c in calls if "alpaca" in str(c)] == ["tatsu-lab/alpaca_eval", "json"]
    written = json.loads((tmp_path / "alpaca_eval" / "alpaca_eval.json").read_text())
    assert written == _alpaca().select(range(4)).to_list()
    assert "data_files" in (tmp_path / "alpaca_eval" / "PROVENANCE.md").read_text()
    data = load_sources(DataConfig(source="local", data_dir=str(tmp_path)), seed=0) \
        if (tmp_path / LOCAL_LAYOUT["sft"]).exists() else None
    assert data is None  # no SFT folder was asked for
    with pytest.raises(SystemExit):
        fetch.main(["--out", str(tmp_path), "--only", "nope"])
    with pytest.raises(SystemExit):
        fetch.main(["--out", str(tmp_path), "--rows", "0"])


def test_an_unreachable_hub_is_one_line_per_data_set(fetch, hub, tmp_path, capsys):
    _, failing = hub
    failing["cnn_dailymail"] = ValueError("something the hub said\nsecond line")
    assert fetch.main(["--out", str(tmp_path), "--only", "ood,sft"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0] == "fetch_data_samples: ood (cnn_dailymail): not fetched: ValueError: something the hub said"
    assert err[-1].startswith("fetch_data_samples: 1 of 2 data set(s) written") and len(err) == 2
    assert (tmp_path / LOCAL_LAYOUT["sft"] / "carperai_test.jsonl").exists()  # the others are still written
    failing["openai/summarize_from_feedback"] = ConnectionError("Couldn't reach 'openai/summarize_from_feedback' "
                                                                "on the Hub (LocalEntryNotFoundError)")
    assert fetch.main(["--out", str(tmp_path / "b"), "--only", "comparisons,alpaca_eval"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and "Couldn't reach" in err[0] and "not tried" in err[1]
    assert not (tmp_path / "b").exists()


def test_offline_run_of_the_script_prints_one_line_per_data_set(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"),
           "HF_DATASETS_CACHE": str(tmp_path / "hf" / "datasets")}
    env.pop("DRDO_DATA_DIR", None)
    proc = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path / "out"), "--only", "sft,ood"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 3 and all(ln.startswith("fetch_data_samples: ") for ln in lines), proc.stderr
    assert "sft (CarperAI/openai_summarize_tldr): not fetched" in lines[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_default_out_is_ignored_by_git():
    proc = subprocess.run(["git", "check-ignore", "-q", "data/x.jsonl"], cwd=REPO)
    assert proc.returncode == 0
    assert subprocess.run(["git", "check-ignore", "-q", "drdo_lib/data/loaders.py"], cwd=REPO).returncode == 1


# ------------------------------------------------------------------------ against the real samples, when present
def test_same_layout_and_splits_as_the_real_samples(fetch, hub, tmp_path):
    if not REAL.is_dir():
        pytest.skip(f"real data samples not found at {REAL} (set DRDO_DATA_DIR)")
    assert fetch.main(["--out", str(tmp_path)]) == 0
    real_dirs = {p.name for p in REAL.iterdir() if p.is_dir()}
    assert {s.folder for s in fetch.samples().values()} <= real_dirs
    # the real comparison rows have the published fields that the fake rows here have
    first = json.loads((REAL / LOCAL_LAYOUT["comparisons"] / "batch18.jsonl").open().readline())
    assert set(first) == set(COMPARISON_FEATURES)
    for task in ("sample", "smol"):
        settings = _data_settings(task)
        real = load_sources(DataConfig(**{**settings, "data_dir": str(REAL)}), seed=0)
        got = load_sources(DataConfig(**{**settings, "data_dir": str(tmp_path)}), seed=0)
        for part in ("preferences", "sft", "ood"):
            a, b = getattr(real, part), getattr(got, part)
            assert (a is None) == (b is None), (task, part)
            if a is not None:
                assert a.features == b.features, (task, part)
                assert set(b["split"]) <= set(a["split"]) | {"test"}, (task, part, set(a["split"]))
                assert set(a["split"]) - {"test"} <= set(b["split"]), (task, part)
    assert load_alpaca_eval(REAL / "alpaca_eval").features == load_alpaca_eval(tmp_path / "alpaca_eval").features


# ------------------------------------------------------------------------ a missing data folder names the script
def test_a_missing_folder_names_the_fetch_script(tmp_path, monkeypatch):
    monkeypatch.delenv("DRDO_DATA_DIR", raising=False)
    assert (REPO / FETCH_SCRIPT).is_file()
    with pytest.raises(UserError) as e:
        load_sources(DataConfig(source="local", data_dir=str(tmp_path / "nope")), seed=0)
    msg = str(e.value)
    assert isinstance(e.value, DataNotFound) and "\n" not in msg
    assert f"python {FETCH_SCRIPT} --out DIR" in msg and "DRDO_DATA_DIR=DIR" in msg and "nope" in msg
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataNotFound, match=f"{LOCAL_LAYOUT['comparisons']}.*--only comparisons"):
        load_sources(DataConfig(source="local", data_dir=str(tmp_path / "empty")), seed=0)
    with pytest.raises(DataNotFound, match="ultrafeedback.*--only ultrafeedback.*DRDO_DATA_DIR=DIR"):
        load_sources(DataConfig(source="local", task="ultrafeedback", data_dir=str(tmp_path / "empty")), seed=0)


@pytest.mark.parametrize("profile", ["sample", "smol"])
def test_cli_without_the_data_folder_is_one_line_exit_2(profile, tmp_path):
    env = {**os.environ, "DRDO_DATA_DIR": str(tmp_path / "nope"), "DRDO_RUNS_DIR": str(tmp_path / "runs"),
           "DRDO_PROGRESS": "0"}
    proc = subprocess.run([sys.executable, "-m", "drdo_lib", "train", "--config", f"configs/{profile}.yaml",
                           "--stage", "data"], capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("drdo_lib train:"), proc.stderr
    assert f"python {FETCH_SCRIPT} --out DIR" in lines[0] and "DRDO_DATA_DIR=DIR" in lines[0]
