"""Helpers for the JupyterLab browser test: a headless JupyterLab server and a headless Chromium driven by selenium.

Everything stays on loopback and offline: JupyterLab runs with its news feed, update check and PyPI extension
manager off, with ``JUPYTER_CONFIG_DIR`` / ``JUPYTER_DATA_DIR`` / runtime / workspaces / settings in a temporary
folder (so no user state leaks in or out) while the project's kernel ``drdo`` stays findable in the virtualenv's
``share/jupyter/kernels``. Chromium is Debian's ``/usr/bin/chromium`` with ``/usr/bin/chromedriver`` (override with
``DRDO_CHROMIUM`` / ``DRDO_CHROMEDRIVER``); nothing is downloaded at run time.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

log = logging.getLogger(__name__)

KERNEL_NAME = "drdo"
KERNEL_DISPLAY_NAME = "Python (drdo)"
CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--disable-extensions", "--disable-default-apps", "--mute-audio",
    "--hide-scrollbars", "--force-device-scale-factor=1",
)
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def browser_paths() -> tuple[str, str] | str:
    """``(chromium, chromedriver)`` when both are installed and selenium imports, else the reason to skip."""
    chromium = os.environ.get("DRDO_CHROMIUM", "/usr/bin/chromium")
    driver = os.environ.get("DRDO_CHROMEDRIVER", "/usr/bin/chromedriver")
    missing = [p for p in (chromium, driver) if not (os.path.isfile(p) and os.access(p, os.X_OK))]
    if missing:
        return (f"browser test needs Chromium and chromedriver; not found: {missing} "
                "(run ./scripts/install_browser_deps.sh, or set DRDO_CHROMIUM / DRDO_CHROMEDRIVER)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "browser test needs the selenium package (dev extra; ./scripts/install_browser_deps.sh installs it)"
    return chromium, driver


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WaitAborted(RuntimeError):
    """Raised inside a :func:`wait_for` predicate to stop waiting at once (e.g. the server process died)."""


def wait_for(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.25) -> object:
    """Poll ``predicate`` until it returns something truthy; raise ``TimeoutError`` naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except WaitAborted:
            raise
        except Exception as exc:  # stale elements and the like: retry until the deadline
            last_exc = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}" + (f" (last error: {last_exc!r})"
                                                                                 if last_exc else ""))


@dataclass
class LabServer:
    """A running JupyterLab subprocess; ``url(path)`` gives an authenticated URL."""

    proc: subprocess.Popen
    port: int
    token: str
    root_dir: Path
    state_dir: Path
    log_path: Path

    def url(self, path: str = "lab") -> str:
        sep = "&" if "?" in path else "?"
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}{sep}token={self.token}"

    def api(self, path: str):
        with urllib.request.urlopen(self.url(f"api/{path}"), timeout=10) as r:
            return json.loads(r.read().decode())

    def shutdown_sessions(self) -> None:
        """Shut down every open session and its kernel (so each notebook in a test starts alone)."""
        for sess in self.api("sessions"):
            req = urllib.request.Request(self.url(f"api/sessions/{sess['id']}"), method="DELETE")
            with urllib.request.urlopen(req, timeout=30):
                pass

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "<no server log>"


def lab_environment(state_dir: Path) -> dict[str, str]:
    """Environment for the server (and the kernels it starts): user state in ``state_dir``, widgets live."""
    env = dict(os.environ)
    for key, sub in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"),
                     ("JUPYTER_RUNTIME_DIR", "runtime"), ("JUPYTERLAB_WORKSPACES_DIR", "workspaces"),
                     ("JUPYTERLAB_SETTINGS_DIR", "settings"), ("IPYTHONDIR", "ipython")):
        d = state_dir / sub
        d.mkdir(parents=True, exist_ok=True)
        env[key] = str(d)
    # Batch runs set DRDO_STATIC=1 (static figures instead of widgets) and may force a non-inline matplotlib
    # backend; a user in JupyterLab has neither.
    for key in ("DRDO_STATIC", "MPLBACKEND", "JUPYTER_PATH", "JUPYTER_PREFER_ENV_PATH"):
        env.pop(key, None)
    # Answer JupyterLab's "get notified about official Jupyter news?" toast with "never" up front: no request to
    # the news feed or the update check, and no toast over the notebook in the screenshot.
    notif = state_dir / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notif.parent.mkdir(parents=True, exist_ok=True)
    notif.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    # Kernels started by this server write figures and run artefacts under state_dir, not into the repository:
    # drdo_lib.run.Run resolves its default runs/ and figures/ roots against drdo_lib.config.REPO_ROOT at call time. An IPython
    # startup file (in this test's own IPYTHONDIR) points it here; the notebook itself is not modified.
    startup = state_dir / "ipython" / "profile_default" / "startup" / "00-drdo-browser-test.py"
    startup.parent.mkdir(parents=True, exist_ok=True)
    startup.write_text(
        "import pathlib\nimport drdo_lib.config\n"
        f"drdo_lib.config.REPO_ROOT = pathlib.Path({str(output_root(state_dir))!r})\n")
    return env


def output_root(state_dir: Path) -> Path:
    """Where the test's kernels write ``figures/`` and ``runs/`` (instead of the repository root)."""
    return state_dir / "outputs"


def wait_until_serving(server: LabServer, timeout: float) -> None:
    """Wait until ``server`` answers ``/api/status``; raise with its log if the process exits first."""
    def ready() -> bool:
        if server.proc.poll() is not None:
            raise WaitAborted(f"JupyterLab exited with {server.proc.returncode}:\n{server.log_tail()}")
        try:
            return bool(server.api("status"))
        except (urllib.error.URLError, ConnectionError, OSError):
            return False
    try:
        wait_for(ready, timeout, "JupyterLab to answer /api/status", interval=0.5)
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}\n{server.log_tail()}") from exc


@contextlib.contextmanager
def jupyterlab_server(root_dir: Path, state_dir: Path, timeout: float = 90.0) -> Iterator[LabServer]:
    """Start JupyterLab (this interpreter's, i.e. the project's .venv) on a free loopback port; stop it on exit."""
    port, token = free_port(), secrets.token_hex(16)
    log_path = state_dir / "jupyterlab.log"
    state_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, "-m", "jupyterlab", "--no-browser",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root_dir}", f"--IdentityProvider.token={token}",
        f"--MultiKernelManager.default_kernel_name={KERNEL_NAME}",
        # offline: no announcements feed, no update check, no PyPI queries from the extension manager
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
        # as scripts/jupyterlab.sh: jupytext reads a paired notebook's inputs from its .py even when the
        # papermill-executed .ipynb is newer (see the comment there)
        "--JupytextConfiguration.outdated_text_notebook_margin=inf",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    with open(log_path, "wb") as logf:
        proc = subprocess.Popen(cmd, cwd=root_dir, env=lab_environment(state_dir), stdout=logf,
                                stderr=subprocess.STDOUT, start_new_session=True)
    server = LabServer(proc, port, token, root_dir, state_dir, log_path)
    try:
        wait_until_serving(server, timeout)
        yield server
    finally:
        stop_process(proc)


def stop_process(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """Terminate ``proc`` (and its kernels, same session group), then kill after ``grace`` seconds."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, 15)
    except (ProcessLookupError, PermissionError):
        proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, 9)
        proc.wait(timeout=grace)


@contextlib.contextmanager
def headless_chromium(chromium: str, driver: str, user_data_dir: Path, size: tuple[int, int] = (1600, 1100)):
    """A selenium Chrome driver on Debian's Chromium with the flags this closed, root-run machine needs."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={user_data_dir}")
    opts.add_argument(f"--window-size={size[0]},{size[1]}")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    user_data_dir.mkdir(parents=True, exist_ok=True)
    service = Service(executable_path=driver, log_output=str(user_data_dir.parent / "chromedriver.log"))
    drv = webdriver.Chrome(service=service, options=opts)
    try:
        drv.set_page_load_timeout(60)
        yield drv
    finally:
        with contextlib.suppress(Exception):
            drv.quit()


# --- driving JupyterLab -------------------------------------------------------------------------------------------

@dataclass
class NotebookRun:
    """What one Run All in the browser produced, read from the page (DOM) and from the saved notebook file."""

    kernel_display_name: str = ""
    kernel_dialog: bool = False           # a "Select Kernel" dialog appeared
    session_kernels: list[str] = field(default_factory=list)  # kernel names of the server's sessions on it
    n_code_cells: int = 0
    prompts: list[str] = field(default_factory=list)   # input prompts after the run, e.g. "[3]:"
    dom_errors: list[str] = field(default_factory=list)  # traceback texts rendered in output areas
    dom_stderr: list[str] = field(default_factory=list)  # other stderr outputs (warnings, progress bars)
    n_images: int = 0                     # <img> elements inside output areas
    n_widget_images: int = 0              # ... of which inside ipywidgets Output widgets
    n_sliders: int = 0
    n_dropdowns: int = 0
    widget_labels: list[str] = field(default_factory=list)  # descriptions of the sliders and dropdowns
    saved_errors: list[str] = field(default_factory=list)  # "error" outputs in the saved .ipynb
    saved_unexecuted: int = 0             # code cells without an execution count in the saved .ipynb
    saved_images: int = 0                 # image/png outputs in the saved .ipynb
    seconds: float = 0.0                  # Run All until the kernel settled idle


def _js(drv, script: str, *args):
    return drv.execute_script(script, *args)


def kernel_status(drv) -> str:
    """``data-status`` of the active notebook's execution indicator (idle, busy, starting, ...), or ''."""
    return _js(drv, """
        const el = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator');
        return el ? (el.getAttribute('data-status') || '') : '';""") or ""


def select_kernel_dialog_open(drv) -> bool:
    return bool(_js(drv, """
        return Array.from(document.querySelectorAll('.jp-Dialog')).some(
            d => /select kernel/i.test(d.innerText || ''));"""))


def run_menu_command(drv, menu: str, label: str, timeout: float = 20.0) -> None:
    """Click ``menu`` in the main menu bar, then its item labelled ``label`` (e.g. Run → "Run All Cells")."""
    from selenium.webdriver.common.by import By

    def open_menu():
        for item in drv.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-item"):
            if item.text.strip() == menu:
                item.click()
                return True
        return False
    wait_for(open_menu, timeout, f"the '{menu}' menu")

    def click_item():
        for it in drv.find_elements(By.CSS_SELECTOR, ".lm-Menu-item .lm-Menu-itemLabel"):
            if it.is_displayed() and it.text.strip() == label:
                it.click()
                return True
        return False
    wait_for(click_item, timeout, f"menu item {menu} → {label}")


def open_notebook(drv, server: LabServer, rel_path: str, timeout: float = 120.0, url: str | None = None) -> NotebookRun:
    """Open ``rel_path`` (relative to the server root) in JupyterLab and wait for its kernel to be idle.

    ``url`` is the address to load (default: ``lab/tree/<rel_path>?reset``, a fresh workspace with only this
    notebook); pass the URL a launcher printed to check that it opens the notebook by itself.
    """
    result = NotebookRun()
    server.shutdown_sessions()
    drv.get(url or server.url(f"lab/tree/{rel_path}?reset"))
    wait_for(lambda: _js(drv, "return document.querySelectorAll('.jp-NotebookPanel .jp-Cell').length"),
             timeout, f"notebook {rel_path} to render")

    def kernel_name() -> str:
        return _js(drv, """
            const el = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-KernelName');
            return el ? el.innerText.trim() : '';""") or ""

    def kernel_ready():
        if select_kernel_dialog_open(drv):
            result.kernel_dialog = True
            return True
        # The indicator reads "idle" for a moment before a kernel is attached ("No Kernel"): wait for both.
        return kernel_status(drv) == "idle" and kernel_name() not in ("", "No Kernel") and any(
            s.get("path") == rel_path and s.get("kernel") for s in server.api("sessions"))
    wait_for(kernel_ready, timeout, "the kernel to start (execution indicator idle)")
    result.kernel_display_name = kernel_name()
    result.session_kernels = [s["kernel"]["name"] for s in server.api("sessions") if s.get("path") == rel_path]
    return result


def _prompts(drv) -> list[str]:
    return _js(drv, """
        return Array.from(document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell'))
            .map(c => { const p = c.querySelector('.jp-InputPrompt'); return p ? p.textContent.trim() : ''; });""")


def run_all_and_wait(drv, result: NotebookRun, timeout: float = 300.0, settle: float = 2.0) -> None:
    """Edit → Clear Outputs of All Cells, Run → Run All Cells, then wait until no cell is queued or running and the
    kernel has stayed idle for ``settle`` seconds. Clearing first means every output checked afterwards was produced
    in this browser session, not loaded from the committed (papermill-executed) notebook."""
    run_menu_command(drv, "Edit", "Clear Outputs of All Cells")
    wait_for(lambda: all(p in ("", "[ ]:") for p in _prompts(drv)), 30, "the outputs to be cleared")
    t0 = time.monotonic()
    run_menu_command(drv, "Run", "Run All Cells")
    # Wait until the run has visibly started (a "[*]" prompt or an execution count) before polling for idle.
    wait_for(lambda: any(p.startswith("[*]") or re.match(r"\[\d+\]", p) for p in _prompts(drv)),
             30, "Run All to start")
    idle_since: list[float] = []

    def settled():
        busy = kernel_status(drv) != "idle" or any(p.startswith("[*]") for p in _prompts(drv))
        if busy:
            idle_since.clear()
            return False
        if not idle_since:
            idle_since.append(time.monotonic())
        return time.monotonic() - idle_since[0] >= settle
    wait_for(settled, timeout, "all cells to finish (kernel idle, no [*] prompt)", interval=0.5)
    result.seconds = time.monotonic() - t0 - settle
    log.info("Run All finished in %.1f s", result.seconds)


def collect_dom(drv, result: NotebookRun) -> None:
    """Fill the DOM fields of ``result``: prompts, error/stderr outputs, images, widgets."""
    result.prompts = _prompts(drv)
    result.n_code_cells = len(result.prompts)
    info = _js(drv, """
        const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
        const stderr = Array.from(panel.querySelectorAll(
            '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')).map(e => e.textContent);
        const imgs = panel.querySelectorAll('.jp-OutputArea-output img');
        const wimgs = panel.querySelectorAll('.widget-output .jp-OutputArea-output img, .jupyter-widgets-output-area img');
        return {stderr: stderr, n_images: imgs.length, n_widget_images: wimgs.length,
                n_sliders: panel.querySelectorAll('.widget-slider').length,
                n_dropdowns: panel.querySelectorAll('.widget-dropdown').length,
                labels: Array.from(panel.querySelectorAll('.widget-slider .widget-label, .widget-dropdown .widget-label'))
                    .map(e => e.textContent.trim())};""")
    for text in info["stderr"]:
        clean = _ANSI.sub("", text)
        # Error outputs render as stderr text too: a traceback, or (IPython's short form, e.g. SyntaxError) a line
        # "SomeError: ..."; warnings and log lines on stderr are kept apart (reported, not failed on).
        names_an_error = re.search(r"^\s*\w*(Error|Exception)\b", clean, flags=re.M) is not None
        is_error = "Traceback (most recent call last)" in clean or (names_an_error and "Warning" not in clean)
        (result.dom_errors if is_error else result.dom_stderr).append(clean.strip()[-2000:])
    result.n_images = info["n_images"]
    result.n_widget_images = info["n_widget_images"]
    result.n_sliders = info["n_sliders"]
    result.n_dropdowns = info["n_dropdowns"]
    result.widget_labels = info["labels"]


def save_and_read(drv, server: LabServer, rel_path: str, result: NotebookRun, timeout: float = 30.0) -> dict:
    """File → Save Notebook, wait for the file on disk to change, then fill the saved-file fields of ``result``."""
    path = server.root_dir / rel_path
    before = path.stat().st_mtime_ns
    run_menu_command(drv, "File", "Save Notebook")
    wait_for(lambda: path.stat().st_mtime_ns != before, timeout, f"{rel_path} to be saved")
    nb = wait_for(lambda: _try_json(path), timeout, f"{rel_path} to be valid JSON after saving")
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        if cell.get("execution_count") is None:
            result.saved_unexecuted += 1
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                result.saved_errors.append(f"{out.get('ename')}: {out.get('evalue')}")
            if "image/png" in out.get("data", {}):
                result.saved_images += 1
    return nb


def _try_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def widget_image_src(drv) -> str:
    """``src`` of the first image inside an ipywidgets Output widget ('' if none)."""
    return _js(drv, """
        const img = document.querySelector(
            '.jp-NotebookPanel:not(.lm-mod-hidden) .widget-output img, .jupyter-widgets-output-area img');
        return img ? img.getAttribute('src') : '';""") or ""


def nudge_first_slider(drv) -> None:
    """Focus the first ipywidgets slider handle and press → (a user moving α one step)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    handle = drv.find_element(By.CSS_SELECTOR, ".jp-NotebookPanel:not(.lm-mod-hidden) .widget-slider .noUi-handle")
    _js(drv, "arguments[0].scrollIntoView({block: 'center'});", handle)
    handle.click()
    handle.send_keys(Keys.ARROW_RIGHT)


def screenshot(drv, path: Path) -> Path:
    """Scroll the first widget (else the first figure) into view and save a PNG of the browser window."""
    _js(drv, """
        const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
        const target = panel.querySelector('.widget-slider') || panel.querySelector('.jp-OutputArea-output img');
        if (target) {
            const cell = target.closest('.jp-Cell') || target;
            cell.scrollIntoView({block: 'start'});
        }""")
    time.sleep(0.5)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not drv.save_screenshot(str(path)):
        raise RuntimeError(f"could not write screenshot {path}")
    return path


def copy_notebook(src: Path, root: Path, rel_path: str) -> Path:
    """Copy a notebook and its paired jupytext ``.py`` (if any) into the server root, keeping the repository's
    modification times (so jupytext pairs them as it does in the checkout). The repository's copies are never
    opened, so never modified."""
    dst = root / rel_path
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)
    if src.with_suffix(".py").is_file():
        shutil.copy2(src.with_suffix(".py"), dst.with_suffix(".py"))
    return dst

