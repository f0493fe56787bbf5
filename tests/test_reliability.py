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

from openai_stub_server import StubServer  # noqa: E402

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


def _pairs(n, marker=""):
    prompts = [f"Post number {i}: something happened." for i in range(n)]
    a = [("GOOD" if i % 2 == 0 else "BAD") + f" summary a{i} {marker}" for i in range(n)]
    b = [("BAD" if i % 2 == 0 else "GOOD") + f" summary b{i} {marker}" for i in range(n)]
    refs = [f"human summary {i}" for i in range(n)]
    return prompts, a, b, refs, ["a" if i % 2 == 0 else "b" for i in range(n)]


# ------------------------------------------------------------------------------------------------ the judge
def _with_credentials(base_url: str, secret: str) -> str:
    return base_url.replace("http://", f"http://judgeuser:{secret}@")


def test_credentials_in_the_judge_url_are_never_logged_cached_or_shown(tmp_path, caplog, capsys):
    from drdo_lib.evaluation import EvalConfig, save_eval_config
    from drdo_lib.judge import JudgeSettings, judge_pairs

    secret = "pw-DO-NOT-LEAK-81c3"
    prompts, a, b, refs, truth = _pairs(3)
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

    prompts, a, b, refs, truth = _pairs(3)
    a[1] += f" {marker}"
    with StubServer() as srv:
        df = judge_pairs(prompts, a, b, refs, template="tldr_reference", model="stub", base_url=srv.base_url,
                         cache_dir=tmp_path, **FAST)
        attempts = sorted(srv.state.attempts.values())
    assert df["winner"].tolist() == truth
    assert attempts == [1, 1, 2]


def test_a_server_that_keeps_answering_without_choices_is_named(tmp_path):
    from drdo_lib.judge import JudgeServerError, judge_pairs

    prompts, a, b, refs, _ = _pairs(1)
    a[0] += " [alwaysnochoices]"
    with StubServer() as srv:
        with pytest.raises(JudgeServerError, match=r"answered without a choice: .*choices=\[\]"):
            judge_pairs(prompts, a, b, refs, template="tldr_reference", model="stub", base_url=srv.base_url,
                        cache_dir=tmp_path, **{**FAST, "max_retries": 2})
        assert len(srv.state.requests) == 3  # the first try and two retries
