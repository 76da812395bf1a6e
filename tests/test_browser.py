"""Notebook 08 in a real browser: JupyterLab (this environment's server and kernel) driven by
headless Chromium through selenium. Run All Cells, then the AU sliders and the videos must
render, and moving a slider must change the AU editor's frame. A screenshot of the editor is
saved to ``runs/browser/notebook08.png``.

Needs Chromium and its driver (Debian: ``apt-get install chromium chromium-driver``) and
selenium (the ``test`` extra); without them the test is skipped and says why."""

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("COURSEKIT_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("COURSEKIT_CHROMEDRIVER", "/usr/bin/chromedriver")
NOTEBOOK = "08_your_own_face.ipynb"
SCREENSHOT = ROOT / "runs" / "browser" / "notebook08.png"
RUN_TIMEOUT = 15 * 60  # seconds for Run All Cells (minutes on two CPU cores)
SETTINGS = {  # JupyterLab user settings: every cell in the page; no news or update pop-ups
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false",
                                                    "checkForUpdates": False},
}

pytestmark = pytest.mark.browser

# JavaScript run in the page (the app is exposed by --LabApp.expose_app_in_browser)
NOTEBOOK_STATE = """
const panel = window.jupyterapp && window.jupyterapp.shell.currentWidget;
if (!panel || !panel.content || !panel.sessionContext) return null;
const cells = panel.content.widgets.filter(c => c.model.type === 'code');
const errors = cells.flatMap(c => c.model.outputs.toJSON()
    .filter(o => o.output_type === 'error')
    .map(o => `${c.model.sharedModel.getSource().slice(0, 300)}\n${o.ename}: ${o.evalue}`));
return {status: panel.sessionContext.kernelDisplayStatus,
        ready: panel.sessionContext.isReady,
        counts: cells.map(c => c.model.executionCount),
        running: cells.filter(c => c.promptNode && c.promptNode.textContent.includes('*')).length,
        errors: errors};
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _requirements() -> str | None:
    """Why the browser test cannot run here, or None."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        return (f"{' and '.join(missing)} not found: install Chromium and its driver "
                "(Debian: apt-get install chromium chromium-driver)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    if not (Path(sys.prefix) / "bin" / "jupyter-lab").exists():
        return "JupyterLab is not installed in this environment (the course extra)"
    return None


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """``(url, token)`` of a JupyterLab serving a temporary copy of notebooks/ (so the
    checkout is not modified) with ``../data_samples`` beside it; stopped afterwards."""
    reason = _requirements()
    if reason:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("lab")
    shutil.copytree(ROOT / "notebooks", tmp / "notebooks")
    (tmp / "data_samples").symlink_to(ROOT / "data_samples")
    settings = tmp / "jupyter" / "settings"
    for plugin, values in SETTINGS.items():
        path = settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE",
               JUPYTER_CONFIG_DIR=str(tmp / "jupyter" / "config"),
               JUPYTER_DATA_DIR=str(tmp / "jupyter" / "data"),  # no per-user kernels
               JUPYTER_RUNTIME_DIR=str(tmp / "jupyter" / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(settings),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp / "jupyter" / "workspaces"))
    port, token = _free_port(), secrets.token_hex(16)
    log = (tmp / "jupyter.log").open("w")
    server = subprocess.Popen(
        [Path(sys.prefix) / "bin" / "jupyter-lab", "--no-browser", f"--port={port}",
         "--ip=127.0.0.1", f"--ServerApp.token={token}",
         f"--ServerApp.root_dir={tmp / 'notebooks'}",
         "--LabApp.expose_app_in_browser=True", "--ServerApp.allow_root=True"],
        cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    log_text = (tmp / "jupyter.log").read_text()[-3000:]
                    pytest.fail(f"JupyterLab did not start:\n{log_text}")
                time.sleep(1)
        yield url, token
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium through chromedriver."""
    reason = _requirements()
    if reason:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1100", "--autoplay-policy=user-gesture-required"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(what: str, condition, timeout: float, interval: float = 1.0):
    """``condition()``'s first truthy value within ``timeout`` seconds, else a failure."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def _menu(driver, menu: str, item: str) -> None:
    """Click JupyterLab's menu bar ``menu``, then its entry ``item``."""
    from selenium.webdriver.common.by import By

    for label in driver.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-itemLabel"):
        if label.text.strip() == menu:
            label.click()
            break
    else:
        pytest.fail(f"no '{menu}' menu in JupyterLab's menu bar")
    entry = _wait(f"the menu entry '{item}'", lambda: next(
        (e for e in driver.find_elements(By.CSS_SELECTOR, ".lm-Menu-itemLabel")
         if e.text.strip() == item and e.is_displayed()), None), 10, 0.2)
    entry.click()


def _run_all(driver) -> dict:
    """Clear every output, Run All Cells, and wait until each code cell has run and the
    kernel is idle; fails at the first error output. Returns the final notebook state."""
    driver.execute_script("return window.jupyterapp.commands.execute("
                          "'notebook:clear-all-cell-outputs')")
    _wait("the outputs to be cleared", lambda: (
        (s := driver.execute_script(NOTEBOOK_STATE)) and not any(s["counts"])), 30)
    _menu(driver, "Run", "Run All Cells")

    def done():
        state = driver.execute_script(NOTEBOOK_STATE)
        if state["errors"]:
            pytest.fail("a cell of notebook 08 failed in JupyterLab:\n" + state["errors"][0])
        finished = (all(state["counts"]) and not state["running"] and state["status"] == "idle")
        return state if finished else None

    return _wait("Run All Cells of notebook 08", done, RUN_TIMEOUT, 2.0)


def _editor(driver):
    """The AU editor's output: the widget area holding the five AU sliders."""
    from selenium.webdriver.common.by import By

    for area in driver.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output .jupyter-widgets"):
        labels = [e.text for e in
                  area.find_elements(By.CSS_SELECTOR, ".widget-slider .widget-label")]
        if sum(label.startswith("AU") for label in labels) == 5:
            return area
    return None


def test_notebook_08_widgets_in_jupyterlab(lab, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    url, token = lab
    browser.get(f"{url}/lab/tree/{NOTEBOOK}?reset&token={token}")
    _wait("notebook 08 and its kernel", lambda: (
        (s := browser.execute_script(NOTEBOOK_STATE)) and s["ready"] and s["status"] == "idle"),
        180)
    state = _run_all(browser)
    assert len(state["counts"]) > 10

    # (a) the AU sliders (ipywidgets) render
    editor = _wait("the AU editor's sliders", lambda: _editor(browser), 60)
    sliders = {s.find_element(By.CSS_SELECTOR, ".widget-label").text.split()[0]: s
               for s in editor.find_elements(By.CSS_SELECTOR, ".widget-slider")}
    assert {"AU10", "AU14", "AU20", "AU25", "AU26"} <= set(sliders), sorted(sliders)
    # (b) a video player renders
    videos = browser.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output video")
    assert videos and all(v.get_attribute("src") or v.find_elements(By.TAG_NAME, "source")
                          for v in videos)

    # (c) moving a slider changes the AU-driven frame (the editor's second image)
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", editor)
    time.sleep(1)
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    frame = editor.find_elements(By.CSS_SELECTOR, "img")[1]
    before = frame.screenshot_as_png
    readout = sliders["AU26"].find_element(By.CSS_SELECTOR, ".widget-readout")
    handle = sliders["AU26"].find_element(By.CSS_SELECTOR, ".noUi-handle")
    old = readout.text
    handle.send_keys(Keys.END)  # the focused handle to the maximum, 5
    _wait("the AU26 slider to move", lambda: readout.text != old, 20, 0.2)
    info = editor.find_elements(By.CSS_SELECTOR, ".widget-label")[-1]
    _wait("the kernel to render the new AUs", lambda: f"AU26 {readout.text}" in info.text, 120)
    time.sleep(1)
    after = frame.screenshot_as_png
    browser.save_screenshot(str(SCREENSHOT))
    assert readout.text == "5.00", readout.text
    assert after != before, "moving the AU26 slider did not change the AU-driven frame"
