"""The job builder in a real browser: Voilà serves a notebook with a `JobBuilder`, Debian's Chromium fills the form.

The notebook is written by the test into a temporary folder, with a synthetic table nobody has seen and a temporary
MLflow store. Voilà runs on 127.0.0.1 with a fresh token and its own Jupyter folders; Chromium is driven by
Playwright (`executable_path=/usr/bin/chromium`, never `playwright install`) and kept off the network: host names
do not resolve and every request that is not to 127.0.0.1 is aborted.
"""

from __future__ import annotations

import secrets
import shutil
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import nbformat
import numpy as np
import pandas as pd
import pytest

from conftest import free_port, offline_tab, served

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "build" / "screenshots" / "widgets.png"

def crop_table(rows: int = 600, seed: int = 7) -> pd.DataFrame:
    "A synthetic table of field trials: weather, soil and fertiliser against the yield (a numeric target)."
    rng = np.random.default_rng(seed)
    rain = rng.gamma(4.0, 150.0, rows)
    heat = rng.normal(21.0, 4.0, rows)
    nitrogen = rng.uniform(0.0, 240.0, rows)
    soil = rng.choice(["clay", "loam", "sand"], rows)
    soil_effect = pd.Series(soil).map({"clay": 0.4, "loam": 1.1, "sand": -0.6}).to_numpy()
    harvest = (2.0 + 0.004 * rain - 0.05 * (heat - 22.0) ** 2 + 0.012 * nitrogen - 0.00003 * nitrogen ** 2
               + soil_effect + rng.normal(0.0, 0.3, rows))
    return pd.DataFrame({"plot_id": np.arange(rows), "rain_mm": rain.round(1), "mean_temp_c": heat.round(2),
                         "nitrogen_kg_ha": nitrogen.round(1), "soil": soil, "harvest_t_ha": harvest.round(3)})


def write_notebook(folder: Path, store_uri: str) -> Path:
    "The notebook Voilà shows: a builder of training jobs on a temporary MLflow store."
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "python3", "language": "python"}
    notebook.cells = [
        nbformat.v4.new_code_cell("from regression_lab.jobs import TrainingJob\n"
                                  "from regression_lab.widgets import JobBuilder"),
        nbformat.v4.new_code_cell(f"builder = JobBuilder(TrainingJob, tracking_uri={store_uri!r}, "
                                  "experiment='browser', yaml_path='crops.yaml')\nbuilder"),
    ]
    path = folder / "builder.ipynb"
    nbformat.write(notebook, path)
    return path


@pytest.fixture()
def voila(tmp_path):
    "Voilà serving the builder notebook: `(base URL with token, data folder, store URI)`; stopped with its kernels."
    if shutil.which("voila", path=str(Path(sys.executable).parent)) is None:
        pytest.fail("voila is not installed in the test virtualenv: pip install -e '.[dev]'")
    store_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    notebook = write_notebook(tmp_path, store_uri)
    crop_table().to_csv(tmp_path / "field_trials.csv", index=False)
    port, token = free_port(), secrets.token_hex(16)
    command = [str(Path(sys.executable).parent / "voila"), str(notebook), "--no-browser", f"--port={port}",
               "--Voila.ip=127.0.0.1", "--Voila.port_retries=0", f"--token={token}", "--show_tracebacks=True"]
    base = f"http://127.0.0.1:{port}"
    with served(command, tmp_path, f"{base}/voila/static/favicon.ico", "Voilà", timeout=30):
        yield f"{base}/?token={token}", tmp_path, store_uri


@pytest.fixture()
def page():
    "A 1400x1000 Chromium tab that cannot leave the machine."
    with offline_tab(1400, 1000) as tab:
        yield tab


def test_build_and_run_a_training_job_in_the_browser(voila, page):
    url, folder, store_uri = voila
    started = time.monotonic()
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_selector(".rl-builder .rl-run", timeout=60_000)

    # given: the form, opened on the bundled data; the user reads a CSV file of field trials instead
    page.select_option(".rl-field-data select", "CsvReader")
    page.fill(".rl-field-data-path input", str(folder / "field_trials.csv"))
    page.press(".rl-field-data-path input", "Enter")
    # the target is chosen among the file's own columns, read from its header
    page.wait_for_selector(".rl-field-data-target select option[value='harvest_t_ha']", state="attached",
                           timeout=15_000)
    options = page.eval_on_selector_all(".rl-field-data-target select option", "os => os.map(o => o.textContent)")
    assert options == ["plot_id", "rain_mm", "mean_temp_c", "nitrogen_kg_ha", "soil", "harvest_t_ha"]
    page.select_option(".rl-field-data-target select", label="harvest_t_ha")
    page.select_option(".rl-field-data-ignore select", label="plot_id")

    # when: a model kind is chosen, its hyperparameter fields swap in, one is changed; an invalid value first
    page.select_option(".rl-field-model select", "RandomForestModel")
    trees = page.locator(".rl-field-model-n_estimators input")
    trees.fill("0")
    trees.press("Enter")
    page.wait_for_selector(".rl-messages li", timeout=10_000)
    assert "model → n estimators: Input should be greater than or equal to 1" in page.inner_text(".rl-messages")
    assert page.inner_text(".rl-field-model-n_estimators ~ .rl-error") == "Input should be greater than or equal to 1"
    assert page.is_disabled("button.rl-run")
    trees.fill("40")
    trees.press("Enter")
    page.fill(".rl-field-run_config-name input", "crops-in-the-browser")
    page.press(".rl-field-run_config-name input", "Enter")
    page.wait_for_function("() => !document.querySelector('button.rl-run').disabled", timeout=10_000)
    assert page.inner_text(".rl-messages").strip() == ""

    # then: Run trains it; the results panel shows the metrics and the two figures the run logged
    page.click("button.rl-run")
    page.wait_for_selector(".rl-results .rl-metrics", timeout=90_000)
    metrics = page.inner_text(".rl-results .rl-metrics")
    assert all(name in metrics for name in ("rmse", "mae", "r2", "mape")), metrics
    page.wait_for_function("() => [...document.querySelectorAll('.rl-results img.rl-figure')]"
                           ".filter(i => i.complete && i.naturalWidth > 0).length == 2", timeout=15_000)
    assert "finished" in page.inner_text(".rl-status")
    assert "mlflow ui --backend-store-uri sqlite:///" in page.inner_text(".rl-results .rl-ui")
    assert "[11/11] notified" in page.inner_text(".rl-log")
    height = page.evaluate("document.querySelector('.rl-builder').getBoundingClientRect().bottom")
    page.set_viewport_size({"width": 1400, "height": int(height) + 40})  # Voilà scrolls inside: show it all
    page.screenshot(path=str(folder / "widgets.png"), full_page=True)
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(folder / "widgets.png", SCREENSHOT)

    # and: the MLflow store holds the run, with what was chosen in the form
    from mlflow.tracking import MlflowClient
    client = MlflowClient(tracking_uri=store_uri, registry_uri=store_uri)
    runs = client.search_runs([client.get_experiment_by_name("browser").experiment_id])
    assert [(run.info.run_name, run.info.status) for run in runs] == [("crops-in-the-browser", "FINISHED")]
    params = runs[0].data.params
    assert (params["model.KIND"], params["model.n_estimators"]) == ("RandomForestModel", "40")
    assert runs[0].info.run_id in page.inner_text(".rl-results")
    inputs = [d for d in runs[0].inputs.dataset_inputs if d.dataset.name == "inputs"][0].dataset
    assert "plot_id" not in inputs.schema and "harvest_t_ha" not in inputs.schema and "rain_mm" in inputs.schema
    assert page.errors == [], page.errors
    assert all(urlsplit(url).hostname not in ("127.0.0.1", None) for url in page.blocked)
    print(f"\nbrowser test took {time.monotonic() - started:.0f} s; screenshot: {SCREENSHOT}")
