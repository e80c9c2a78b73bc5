"""The job builder and the runs browser in a real JupyterLab 4, in Debian's Chromium, at a laptop's 1280x800.

A newcomer's day: JupyterLab opens a notebook (file browser open, as it starts), the notebook makes a `JobBuilder`
and a `RunsBrowser` on a table nobody has used here (its last column is text) and a temporary MLflow store. The
test reads the file, types a word into a number box, picks a target, runs, and refreshes the runs browser, in the
light theme and in the dark one. The pictures it takes are the ones the docs show (`nbs/images/`, see
`save_picture`). JupyterLab runs on 127.0.0.1 with its own settings, runtime and workspace folders; Chromium cannot
reach anything else.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from conftest import jupyterlab, offline_tab

ROOT = Path(__file__).resolve().parents[2]
PICTURES = ROOT / "build" / "screenshots"  # every run; `nbs/images/` gets them with RL_SAVE_PICTURES=1


def car_seats(rows: int = 300, seed: int = 3) -> pd.DataFrame:
    "A table shaped like ISLR's Carseats: sales against prices and places, its last column text (`US`)."
    rng = np.random.default_rng(seed)
    price = rng.normal(115, 24, rows).round()
    competitor = (price + rng.normal(10, 15, rows)).round()
    shelf = rng.choice(["Bad", "Medium", "Good"], rows)
    advertising = rng.integers(0, 25, rows)
    sales = (7.5 + 0.09 * (competitor - price) + 0.12 * advertising
             + pd.Series(shelf).map({"Bad": -2.2, "Medium": 0.0, "Good": 2.4}).to_numpy() + rng.normal(0, 1.0, rows))
    return pd.DataFrame({"Sales": sales.round(2), "CompPrice": competitor, "Price": price, "Advertising": advertising,
                         "ShelveLoc": shelf, "Age": rng.integers(25, 80, rows),
                         "US": rng.choice(["Yes", "No"], rows)})


def write_notebook(folder: Path, store_uri: str) -> str:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = [
        nbformat.v4.new_code_cell("from regression_lab.jobs import TrainingJob\n"
                                  "from regression_lab.widgets import JobBuilder, RunsBrowser"),
        nbformat.v4.new_code_cell(f"JobBuilder(TrainingJob, tracking_uri={store_uri!r}, experiment='lab')"),
        nbformat.v4.new_code_cell(f"RunsBrowser({store_uri!r}, 'lab')"),
    ]
    nbformat.write(notebook, folder / "newcomer.ipynb")
    return "newcomer.ipynb"


@pytest.fixture()
def lab(tmp_path, request):
    "JupyterLab serving the newcomer's notebook in `request.param` theme: `(notebook URL, folder, store URI)`."
    store_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    notebook = write_notebook(tmp_path, store_uri)
    car_seats().to_csv(tmp_path / "car_seats.csv", index=False)
    with jupyterlab(tmp_path, request.param) as (base, token):
        yield f"{base}/lab/tree/{notebook}?token={token}", tmp_path, store_uri


@pytest.fixture()
def laptop():
    "A 1280x800 Chromium tab that cannot leave the machine."
    with offline_tab(1280, 800) as tab:
        yield tab


def open_and_run_all(page, url: str) -> None:
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_function(  # a kernel, idle: a run sent before is silently dropped
        "() => [...document.querySelectorAll('.jp-StatusBar-TextItem')]"
        ".some(e => /^(?!No Kernel).+ \\| Idle$/.test(e.textContent.trim()))", timeout=90_000)
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_selector(".rl-builder .rl-run", timeout=90_000)
    page.wait_for_selector(".rl-runs-browser", timeout=30_000)


def in_view(page, selector: str) -> bool:
    box = page.locator(selector).first.bounding_box()
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= 800


def scroll_notebook(page, pixels: int) -> None:
    page.evaluate(f"document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-WindowedPanel-outer')"
                  f".scrollBy(0, {pixels})")
    page.wait_for_timeout(200)


def save_picture(page, name: str, selector: str | None = None) -> Path:
    "A picture of the page (or of `selector`), in build/screenshots; with RL_SAVE_PICTURES=1 in nbs/images too."
    PICTURES.mkdir(parents=True, exist_ok=True)
    path = PICTURES / f"{name}.png"
    page.set_viewport_size({"width": 1280, "height": 2400})  # the whole widget, not what a laptop shows of it
    page.wait_for_timeout(400)
    if selector:
        page.locator(selector).first.scroll_into_view_if_needed()
    (page.locator(selector).first.screenshot if selector else page.screenshot)(path=str(path))
    page.set_viewport_size({"width": 1280, "height": 800})
    page.wait_for_timeout(200)
    if os.environ.get("RL_SAVE_PICTURES") == "1":
        shutil.copy(path, ROOT / "nbs" / "images" / path.name)
    return path


def colour(page, selector: str, css: str) -> str:
    "The computed `css` of the first element matching `selector`, read in one go (a re-render may replace the element)."
    script = (f"() => {{ const e = document.querySelector({selector!r});"
              f" return (e && e.isConnected && getComputedStyle(e)[{css!r}]) || null; }}")
    return page.wait_for_function(script, timeout=30_000).json_value()


@pytest.mark.parametrize("lab", ["light"], indirect=True)
def test_a_newcomer_builds_runs_and_browses_in_jupyterlab(lab, laptop):
    url, folder, store_uri = lab
    page = laptop
    open_and_run_all(page, url)
    # given: the builder as it opens, at 1280x800 with the file browser open: Run and the problems in view
    assert page.is_visible(".jp-FileBrowser"), "JupyterLab opens with its file browser"
    assert in_view(page, ".rl-builder .rl-run") and in_view(page, ".rl-builder .rl-messages")
    save_picture(page, "builder-form", ".rl-builder")

    # when: the newcomer reads their table (its last column, US, is text)
    page.select_option(".rl-field-data select", "CsvReader")
    page.fill(".rl-field-data-path input", str(folder / "car_seats.csv"))
    page.wait_for_selector(".rl-field-data-target select option[value='Sales']", state="attached", timeout=60_000)
    # then: no target is chosen for them; the form asks once, naming the box as it labels it
    page.wait_for_function("() => document.querySelector('.rl-messages').innerText.includes('choose the target')",
                           timeout=60_000)
    assert page.inner_text(".rl-messages").strip() == "data → target: choose the target column"
    assert page.eval_on_selector(".rl-field-data-target select", "s => s.selectedIndex") == -1
    assert page.is_disabled("button.rl-run")
    registry = page.locator(".rl-field-mlflow_service-registry_name input")
    assert registry.input_value() == "car_seats"  # the registered model is named after the file

    # when: a target is chosen, the columns offered to ignore follow at once
    page.select_option(".rl-field-data-target select", label="Sales")
    page.wait_for_function("() => ![...document.querySelectorAll('.rl-field-data-ignore option')]"
                           ".some(o => o.textContent == 'Sales')", timeout=30_000)
    page.select_option(".rl-field-data-ignore select", label="Age")
    # and: a word typed into a number box is an error beside it, not silently undone
    page.select_option(".rl-field-model select", "RandomForestModel")
    trees = page.locator(".rl-field-model-n_estimators input")
    trees.fill("ten")
    page.wait_for_selector(".rl-messages li", timeout=30_000)
    assert "model → n estimators: Input should be a valid integer" in page.inner_text(".rl-messages")
    assert trees.input_value() == "ten" and page.is_disabled("button.rl-run")
    label = page.inner_text(".rl-field-model-n_estimators label")
    assert label == "n estimators", label
    # and: Stop, with nothing to stop, looks disabled (not red)
    assert "mod-danger" not in (page.get_attribute("button.rl-stop", "class") or "")
    trees.fill("30")
    page.wait_for_function("() => !document.querySelector('button.rl-run').disabled", timeout=30_000)

    # then: scrolled down the form, Run and the problems stay in view
    scroll_notebook(page, 900)
    assert in_view(page, ".rl-builder .rl-run"), page.locator(".rl-builder .rl-run").bounding_box()
    page.click("button.rl-run")
    page.wait_for_selector(".rl-results .rl-metrics", timeout=120_000)
    assert "finished" in page.inner_text(".rl-builder .rl-status")
    log = page.inner_text(".rl-log")
    assert "[11/11]" in log and "DEBUG" not in log and "[START]" not in log, log
    page.wait_for_function("() => [...document.querySelectorAll('.rl-results img.rl-figure')]"
                           ".filter(i => i.complete && i.naturalWidth > 0).length == 2", timeout=60_000)
    save_picture(page, "builder-results", ".rl-run-panel")

    # and: the runs browser, refreshed, lists the run with the usual few columns; the newest first
    page.click(".rl-runs-browser button.rl-refresh")
    page.wait_for_selector(".rl-runs-table td", timeout=60_000)
    headers = page.eval_on_selector_all(".rl-runs-table th", "hs => hs.map(h => h.textContent)")
    assert "metrics.rmse" in headers and len(headers) <= 30 and not any("__" in h for h in headers), headers
    save_picture(page, "runs-browser", ".rl-runs-browser")
    assert page.errors == [], page.errors


@pytest.mark.parametrize("lab", ["dark"], indirect=True)
def test_the_builder_follows_the_dark_theme(lab, laptop):
    url, folder, _ = lab
    page = laptop
    open_and_run_all(page, url)
    page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'", timeout=30_000)
    background = page.evaluate("getComputedStyle(document.body).getPropertyValue('--jp-layout-color1').trim()")
    # then: the bar over the form has the theme's background, and its problems the theme's error colour
    page.select_option(".rl-field-data select", "CsvReader")
    page.fill(".rl-field-data-path input", str(folder / "car_seats.csv"))
    page.wait_for_selector(".rl-messages li", timeout=60_000)
    bar = colour(page, ".rl-builder-bar", "backgroundColor")
    assert bar == page.evaluate("c => { const e = document.createElement('div'); e.style.backgroundColor = c;"
                                " document.body.appendChild(e); const r = getComputedStyle(e).backgroundColor;"
                                " e.remove(); return r; }", background), (bar, background)
    text = colour(page, ".rl-messages li", "color")
    brightness = [int(part) for part in re.findall(r"\d+", text)[:3]]
    assert sum(brightness) > 300, text  # light text on the dark background, not dark red
    page.select_option(".rl-field-data-target select", label="Sales")
    page.wait_for_function("() => document.querySelector('.rl-messages').innerText.trim() === ''", timeout=30_000)
    save_picture(page, "builder-dark", ".rl-builder")
    assert page.errors == [], page.errors
