"""The Slurm batch templates (scripts/slurm/) against a real one-node Slurm cluster on this machine, not a mock.

scripts/install_slurm.sh installs Debian's slurmctld / slurmd / munge and writes a slurm.conf with this host as
controller and node; scripts/slurm/local_cluster.sh starts the daemons (and the test stops what it started). The
study is submitted the way a user submits it (scripts/slurm/submit_study.sh: an array of 2 shards of the `mini`
profile's reduced grid, shrunk further by overrides, plus the report job that depends on the array); its cell
records and report tables are compared with a serial run of the same settings into another runs folder. The
run_all.sh job (scripts/slurm/submit_run_all.sh) is run for real on a CPU profile with no notebook selected, and
with an unknown profile, whose failure must reach Slurm's job state.

Skipped when Slurm is not installed and cannot be installed here (no root / apt-get); DRDO_REQUIRE_SLURM=1 (CI)
turns that skip into a failure.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SLURM = ROOT / "scripts" / "slurm"
# The mini profile's reduced study grid (2 noise levels x {SFT, DRDO (head), DPO}, seed 0: 6 cells), shrunk to
# seconds per cell; the serial reference uses exactly these overrides.
OVERRIDES = ["data.n_train=200", "data.n_valid=50", "data.n_sft=200", "data.n_sft_test=40", "data.n_ood=10",
             "sft.max_steps=20", "sft.eval_prompts=0", "policy={max_steps: 4, logging_steps: 2}", "n_prompts=16",
             "n_train_prompts=16", "max_tie_pairs=8", "margin_every=2", "n_bootstrap=100"]
N_CELLS = 6
TIMING = {"train_seconds", "measure_seconds", "seconds", "s/cell"}  # wall-clock fields: not results
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE",
            "PREEMPTED"}
WAIT_S = float(os.environ.get("DRDO_SLURM_TEST_TIMEOUT", "1200"))
# Cell values may differ by float32 rounding: the SFT log-probs come from a row cache filled in batches whose
# padding depends on which rows an earlier cell (here: another shard) cached first. Generated texts, counts and
# keys must match exactly; measured values within RTOL/ATOL. The training summary (means over the logged training
# steps of batch statistics such as the share of pairs with p_w > 1/2) amplifies that rounding: each pair crossing
# 1/2 moves training.mean.bt_accuracy by 1/128 (measured: 1/128 and 2/128 in two runs under one thread), so its
# fields are compared within TRAINING_ATOL (six such pairs); every other measured value within 1e-4.
RTOL = ATOL = 1e-4
TRAINING_ATOL = 0.05


def _unavailable(msg: str):
    if os.environ.get("DRDO_REQUIRE_SLURM") == "1":
        pytest.fail(f"{msg} (DRDO_REQUIRE_SLURM=1)")
    pytest.skip(msg)


def _have(tool: str) -> bool:
    return shutil.which(tool) is not None or Path("/usr/sbin", tool).exists()


def _sh(*cmd, env=None, check=True, timeout=300) -> subprocess.CompletedProcess:
    res = subprocess.run([str(c) for c in cmd], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError(f"{cmd} exited {res.returncode}\nstdout:\n{res.stdout}\nstderr:\n{res.stderr}")
    return res


@pytest.fixture(scope="module")
def cluster():
    """The local one-node cluster: installed and configured (idempotent) when root can, started unless it already
    runs; the daemons this fixture started are stopped afterwards."""
    root = os.geteuid() == 0
    if root and shutil.which("apt-get"):
        res = _sh(ROOT / "scripts" / "install_slurm.sh", check=False, timeout=900)
        if res.returncode != 0:
            _unavailable(f"scripts/install_slurm.sh failed:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
    missing = [t for t in ("sbatch", "scontrol", "slurmctld", "slurmd", "munged") if not _have(t)]
    if missing:
        _unavailable(f"Slurm is not installed ({', '.join(missing)} missing) and cannot be installed here "
                     f"(needs root and apt-get): run scripts/install_slurm.sh as root")
    if not root and not shutil.which("sudo"):
        _unavailable("starting the local Slurm daemons needs root or sudo")
    ctl = SLURM / "local_cluster.sh"
    was_up = _sh(ctl, "status", check=False).returncode == 0
    if not was_up:
        res = _sh(ctl, "start", check=False, timeout=120)
        if res.returncode != 0:
            _sh(ctl, "stop", check=False)
            raise AssertionError(f"local_cluster.sh start failed:\n{res.stdout}\n{res.stderr}")
    try:
        yield
    finally:
        if not was_up:
            _sh(ctl, "stop", check=False)
            assert _sh(ctl, "status", check=False).returncode != 0, "the daemons the test started still run"


def _job_env(tmp_path: Path, name: str, **extra) -> dict[str, str]:
    """The environment of a submission: sbatch carries it into the jobs (this interpreter, this tree's code)."""
    env = dict(os.environ)
    bindir = str(Path(sys.executable).parent)
    env.update(PYTHONPATH=str(ROOT), DRDO_PYTHON=sys.executable, VIRTUAL_ENV=sys.prefix,
               PATH=bindir + os.pathsep + env.get("PATH", ""), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               DRDO_PROGRESS="0", DRDO_RUNS_DIR=str(tmp_path / name / "runs"),
               DRDO_FIGURES_DIR=str(tmp_path / name / "figures"), DRDO_SLURM_LOGS=str(tmp_path / name / "logs"),
               DRDO_SLURM_TIME="00:30:00", DRDO_SLURM_REPORT_TIME="00:30:00", **extra)
    for k in ("DRDO_SLURM_PARTITION", "DRDO_SLURM_ACCOUNT", "DRDO_SLURM_EXTRA", "DRDO_SLURM_GPUS"):
        if k not in extra:
            env.pop(k, None)
    return env


def _states(job: str) -> list[dict[str, str]]:
    """One dict per job (per array task) from `scontrol show job -o` (no accounting database here for sacct)."""
    out = _sh("scontrol", "show", "job", "-o", job).stdout
    recs = []
    for line in out.splitlines():
        rec = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
        if rec.get("JobId"):
            recs.append(rec)
    return recs


def _wait(jobs: list[str], logs: Path, timeout: float = WAIT_S) -> dict[str, list[dict]]:
    t0 = time.monotonic()
    while True:
        states = {j: _states(j) for j in jobs}
        if all(recs and all(r["JobState"] in TERMINAL for r in recs) for recs in states.values()):
            return states
        if time.monotonic() - t0 > timeout:
            _sh("scancel", *jobs, check=False)
            tails = "\n".join(f"== {p.name}\n{p.read_text()[-1500:]}" for p in sorted(logs.rglob("*.out")))
            raise AssertionError(f"Slurm jobs {jobs} not finished after {timeout:.0f}s: "
                                 f"{ {j: [r['JobState'] for r in s] for j, s in states.items()} }\n{tails}")
        time.sleep(2)


def _close(a, b, where: str, diffs: list[float]) -> None:
    """``a`` equals ``b`` (a cell record or part of one): numbers within RTOL/ATOL, everything else exactly."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{where}: keys {sorted(a)} != {sorted(b)}"
        for k in a:
            if k not in TIMING:
                _close(a[k], b[k], f"{where}.{k}", diffs)
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), f"{where}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, f"{where}[{i}]", diffs)
    elif isinstance(a, float) or isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            assert math.isnan(a) and math.isnan(b), f"{where}: {a} vs {b}"
            return
        diffs.append(abs(a - b))
        atol = TRAINING_ATOL if ".training." in where else ATOL
        assert math.isclose(a, b, rel_tol=RTOL, abs_tol=atol), f"{where}: {a} vs {b}"
    else:
        assert a == b, f"{where}: {a!r} vs {b!r}"


def _records(runs: Path) -> dict[str, dict]:
    cells = runs / "mini" / "study" / "cells"
    return {p.stem: json.loads(p.read_text()) for p in sorted(cells.glob("*.json"))}


def _table(figures: Path, name: str) -> pd.DataFrame:
    df = pd.read_csv(figures / "mini" / f"{name}.csv")
    return df.drop(columns=[c for c in df if c in TIMING])


def test_study_array_and_report_job_match_a_serial_run(cluster, tmp_path):
    t_start = time.monotonic()
    env = _job_env(tmp_path, "slurm", PROFILE="mini", DRDO_STUDY_SHARDS="2", DRDO_SLURM_CPUS="1",
                   DRDO_SLURM_MEM="1G", DRDO_SLURM_REPORT_MEM="1G")
    sub = _sh(SLURM / "submit_study.sh", *OVERRIDES, env=env)
    ids = dict(kv.split("=") for kv in sub.stdout.strip().splitlines()[-1].split())
    array_job, report_job = ids["array_job"], ids["report_job"]
    # the report job waits for the whole array
    rep = _states(report_job)[0]
    assert rep["JobState"] == "PENDING" and f"afterok:{array_job}" in rep["Dependency"], rep

    # the serial reference, meanwhile: the same profile and overrides, its own runs and figures folders
    serial_env = _job_env(tmp_path, "serial")
    serial = subprocess.Popen([sys.executable, "-m", "drdo_lib", "study", "--config", "configs/mini.yaml",
                               *OVERRIDES], cwd=ROOT, env=serial_env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    logs = tmp_path / "slurm" / "logs"
    states = _wait([array_job, report_job], logs)
    serial_out, _ = serial.communicate(timeout=WAIT_S)
    assert serial.returncode == 0, serial_out[-3000:]
    t_done = time.monotonic()

    tasks = states[array_job]
    assert sorted(int(r["ArrayTaskId"]) for r in tasks) == [0, 1]
    for r in tasks + states[report_job]:
        assert (r["JobState"], r["ExitCode"]) == ("COMPLETED", "0:0"), (r["JobId"], r["JobState"], r["ExitCode"])
    start = {r["ArrayTaskId"]: r["EndTime"] for r in tasks}
    assert states[report_job][0]["StartTime"] >= max(start.values())  # it ran after every shard ended

    # each shard computed its half of the grid; the report job computed nothing and found every cell
    for i in (0, 1):
        log = (logs / f"drdo-study-{array_job}_{i}.out").read_text()
        assert f"shard {i}/2 of configs/mini.yaml" in log
        assert f"study: {N_CELLS // 2} cells ({N_CELLS // 2} computed now, 0 read back)" in log, log[-3000:]
    rlog = (logs / f"drdo-study-report-{report_job}.out").read_text()
    assert f"{N_CELLS} finished cells under" in rlog and ", 0 missing" in rlog, rlog[-3000:]
    assert f"study: {N_CELLS} cells (0 computed now, {N_CELLS} read back)" in rlog, rlog[-3000:]

    # the cells: the same keys (same settings) and the same measured values as the serial run
    got, want = _records(tmp_path / "slurm" / "runs"), _records(tmp_path / "serial" / "runs")
    assert len(want) == N_CELLS and sorted(got) == sorted(want)
    diffs: list[float] = []
    for key in want:
        _close(got[key], want[key], f"cell {want[key]['cell']}", diffs)
    # the report: every table the serial run wrote, with the same rows and values (timing columns aside)
    sfig, rfig = tmp_path / "slurm" / "figures", tmp_path / "serial" / "figures"
    names = sorted(p.stem for p in (rfig / "mini").glob("study_*.csv"))
    assert {"study_cells", "study_summary", "study_reading_table", "study_pstar_bins"} <= set(names)
    assert sorted(p.stem for p in (sfig / "mini").glob("study_*.csv")) == names
    for name in names:
        a, b = _table(sfig, name), _table(rfig, name)
        assert list(a.columns) == list(b.columns) and a.shape == b.shape, name
        for col in a:
            if pd.api.types.is_float_dtype(a[col]) or pd.api.types.is_float_dtype(b[col]):
                _close([float(x) for x in a[col]], [float(x) for x in b[col]], f"{name}.{col}", diffs)
            else:
                assert a[col].tolist() == b[col].tolist(), f"{name}.{col}"
    assert (sfig / "mini" / "study_reading.md").exists()
    print(f"\nslurm study: {len(want)} cells, max |difference| to the serial run {max(diffs):.2e} over "
          f"{len(diffs)} values; jobs and serial run {t_done - t_start:.0f}s")


def test_run_all_job_runs_run_all_sh_and_reports_its_failure(cluster, tmp_path):
    """The one-node job runs ./run_all.sh in the submitting environment (--no-setup) for PROFILE: on a CPU profile
    with no notebook selected it registers the kernel and ends with run_all.sh's summary; an unknown profile makes
    run_all.sh exit 2, which Slurm records as the job's failure. DRDO_SLURM_GPUS=0 overrides the template's GPUs."""
    jobs = {}
    for profile in ("sample", "no_such_profile"):
        env = _job_env(tmp_path, profile, PROFILE=profile, DRDO_SLURM_GPUS="0", DRDO_SLURM_CPUS="1",
                       DRDO_SLURM_MEM="1G")
        out = _sh(SLURM / "submit_run_all.sh", "--only", "99", env=env).stdout
        jobs[profile] = out.strip().splitlines()[-1].removeprefix("job=")
    states = _wait(list(jobs.values()), tmp_path)
    ok, bad = states[jobs["sample"]][0], states[jobs["no_such_profile"]][0]
    ok_log = (tmp_path / "sample" / "logs" / f"drdo-run-all-{jobs['sample']}.out").read_text()
    assert (ok["JobState"], ok["ExitCode"]) == ("COMPLETED", "0:0"), ok_log[-3000:]
    assert "./run_all.sh --profile sample --no-setup --only 99" in ok_log
    assert "=== run_all.sh summary (profile sample, config configs/sample.yaml)" in ok_log
    bad_log = (tmp_path / "no_such_profile" / "logs" / f"drdo-run-all-{jobs['no_such_profile']}.out").read_text()
    assert (bad["JobState"], bad["ExitCode"]) == ("FAILED", "2:0"), bad_log[-3000:]
    assert "unknown profile 'no_such_profile'" in bad_log


def test_a_failed_shard_cancels_the_report_job(cluster, tmp_path):
    """A shard that fails (here: a study override of the wrong type, a user error: exit 2) fails its array task, and
    the report job, which waits for every shard's success, is cancelled instead of waiting forever."""
    env = _job_env(tmp_path, "bad", PROFILE="mini", DRDO_STUDY_SHARDS="2", DRDO_SLURM_CPUS="1", DRDO_SLURM_MEM="1G",
                   DRDO_SLURM_REPORT_MEM="1G")
    out = _sh(SLURM / "submit_study.sh", "n_prompts=abc", env=env).stdout
    ids = dict(kv.split("=") for kv in out.strip().splitlines()[-1].split())
    states = _wait([ids["array_job"], ids["report_job"]], tmp_path)
    tasks = states[ids["array_job"]]
    assert len(tasks) == 2 and all((r["JobState"], r["ExitCode"]) == ("FAILED", "2:0") for r in tasks), tasks
    for i in (0, 1):
        assert "drdo_lib study:" in (tmp_path / "bad" / "logs" / f"drdo-study-{ids['array_job']}_{i}.out").read_text()
    rep = states[ids["report_job"]][0]
    assert (rep["JobState"], rep["Reason"]) == ("CANCELLED", "DependencyNeverSatisfied"), rep
    assert not list((tmp_path / "bad" / "logs").glob("drdo-study-report-*.out"))  # it never ran
