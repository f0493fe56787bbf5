"""run_all.sh in an environment other than .venv (conda, a module-loaded Python): the kernel comes from the active
interpreter, and notebook 07 is skipped, with its reason, on profiles without the synthetic testbed."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _copy_tree(dst: Path) -> Path:
    """The checkout's files (as they are now) without .git, .venv, runs, caches or figures."""
    shutil.copytree(REPO, dst, ignore=shutil.ignore_patterns(".git", ".venv", "runs", ".cache", "figures",
                                                             "__pycache__", "*.egg-info", ".pytest_cache"))
    return dst


def _bare_env(tmp: Path) -> dict[str, str]:
    """A fresh virtualenv with no Jupyter kernel registered anywhere, whose interpreter sees this environment's
    packages (a .pth that adds its site-packages), and a HOME / Jupyter data dir of its own."""
    venv = tmp / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "outer.pth").write_text(f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "VIRTUAL_ENV", "PYTHONPATH"))}
    env.update(PATH=f"{venv / 'bin'}:{env['PATH']}", HOME=str(tmp / "home"), JUPYTER_DATA_DIR=str(tmp / "jdata"),
               JUPYTER_CONFIG_DIR=str(tmp / "jconf"), DRDO_RUNS_DIR=str(tmp / "runs"))
    (tmp / "home").mkdir()
    return env


@pytest.mark.slow
def test_run_all_no_setup_resolves_the_kernel_from_the_active_interpreter(tmp_path):
    tree = _copy_tree(tmp_path / "tree")
    env = _bare_env(tmp_path)
    listed = subprocess.run(["python", "-c", "import json; from jupyter_client.kernelspec import KernelSpecManager; "
                             "print(json.dumps(sorted(KernelSpecManager().find_kernel_specs())))"],
                            env=env, cwd=tree, capture_output=True, text=True)
    assert "drdo" not in json.loads(listed.stdout), listed.stdout  # nothing registered for this interpreter
    proc = subprocess.run(["./run_all.sh", "--no-setup", "--only", "00"], cwd=tree, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    spec = json.loads((tree / ".cache/jupyter/share/jupyter/kernels/drdo/kernel.json").read_text())
    assert spec["argv"][0] == str(tmp_path / "bare" / "bin" / "python")
    nb = json.loads((tree / "notebooks" / "00_theory_sanity_checks.ipynb").read_text())
    assert nb["metadata"]["papermill"]["exception"] in (None, False)
    # the executed notebook was cleaned (drdo_lib.notebook_outputs): its figures are stored with a palette
    assert "00_theory_sanity_checks.ipynb: " in proc.stdout and " KB -> " in proc.stdout
    import nbformat

    from drdo_lib.notebook_outputs import clean_notebook

    stored = json.loads(json.dumps(nbformat.reads(json.dumps(nb), as_version=4)))  # multi-line strings joined
    assert clean_notebook(stored) == stored


def test_run_all_skips_the_study_on_a_profile_without_the_testbed(tmp_path):
    tree = _copy_tree(tmp_path / "tree")
    proc = subprocess.run(["./run_all.sh", "--no-setup", "--profile", "sample", "--only", "07"], cwd=tree,
                          env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "07_robustness_study.ipynb skipped: the robustness study needs the synthetic testbed" in proc.stdout
    assert not (tree / "figures" / "sample" / "notebooks" / "07_robustness_study.ipynb").exists()
