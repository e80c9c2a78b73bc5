"""The study browser on real trials stores: a tuning study made by a real `TuningJob`, and studies made through the
experiment store's own calls (one maximised, with a failed job and a retried one).

Every test reads a real Optuna SQLite database in a temporary folder; the widget is driven as a user would, by
setting control values and clicking Refresh. The last tests open the browser in a real JupyterLab 4 in Debian's
Chromium, in the light theme and the dark one, and take the picture the docs show (`nbs/images/study-browser.png`
with RL_SAVE_PICTURES=1).
"""

from __future__ import annotations

import html
import os
import re
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from regression_lab.core import ConfigError
from regression_lab.data import DatasetReader
from regression_lab.experiments import ExperimentStore, StoreClosedError
from regression_lab.jobs import TuningJob
from regression_lab.models import KNeighborsModel
from regression_lab.services import AlertsService, LoggerService
from regression_lab.splitters import KFoldSplitter
from regression_lab.trials import CategoricalParam, IntParam, TrialStore
from regression_lab.widgets import StudyBrowser, fold_table, sort_trials, trials_frame
from regression_lab.widgets.runs_browser import _SHADE

from conftest import CHROMIUM, jupyterlab, offline_tab

ROOT = Path(__file__).resolve().parents[2]
PICTURES = ROOT / "build" / "screenshots"  # every run; `nbs/images/` gets them with RL_SAVE_PICTURES=1


# ================================================================================================ fixtures

@pytest.fixture(scope="module")
def tuned(tmp_path_factory, store) -> str:
    "A trials store with study `knn`: eight nearest-neighbour configurations on the diabetes data, three folds each."
    url = f"sqlite:///{tmp_path_factory.mktemp('trials') / 'optuna.db'}"
    job = TuningJob(inputs=DatasetReader(drop=["target"]), targets=DatasetReader(columns=["target"]),
                    model=KNeighborsModel(), splitter=KFoldSplitter(n_splits=3), n_trials=8, progress=False,
                    search_space={"n_neighbors": IntParam(low=1, high=80),
                                  "weights": CategoricalParam(choices=["uniform", "distance"])},
                    study_name="knn", store=TrialStore(url=url), mlflow_service=store.service(experiment_name="knn"),
                    logger_service=LoggerService(level="WARNING"), alerts_service=AlertsService(enable=False))
    with job:
        job.run()
    return url


def toy_study(url: str, name: str = "yield", direction: str = "maximize") -> dict[str, int]:
    """Study `name` through the connector: jobs scoring 0.3, 0.9 (its first attempt failed, the retry scored) and
    0.6, each with two folds, then a job that failed; the job ids by role."""
    with ExperimentStore(url, user="ada") as experiments:
        study = experiments.start_experiment(name, {"model": "toy"}, direction=direction)
        jobs = {}
        for role, score in [("low", 0.3), ("retried", 0.9), ("middle", 0.6)]:
            jobs[role] = job = experiments.start_job(study, {"x": score})
            if role == "retried":
                experiments.save_intermediate(job, 0.1)
                experiments.fail_job(job, "OSError: the disk is full")
                experiments.retry_job(job)
            for fold in range(2):
                experiments.save_intermediate(job, score + (1 - fold) / 10)
            experiments.end_job(job, score)
        jobs["failed"] = experiments.start_job(study, {"x": 0.5})
        experiments.fail_job(jobs["failed"], "MemoryError")
        return jobs


@pytest.fixture()
def toy(tmp_path) -> tuple[str, dict[str, int]]:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    return url, toy_study(url)


def text(markup: str) -> str:
    "What a reader sees of some HTML."
    return html.unescape(re.sub("<[^>]+>", "", markup))


# ============================================================================================ the table

def test_the_table_lists_every_trial_of_a_tuning_study_newest_first(tuned):
    # given: the history of a study a TuningJob made, read by the store
    with ExperimentStore(tuned) as experiments:
        history, best = experiments.history("knn"), experiments.best("knn")
    # when: a browser opens on the store
    browser = StudyBrowser(tuned)
    # then: it shows that study, one row per trial, newest first, with state, score, duration, folds, parameters
    shown = browser.shown
    assert browser.study.value == "knn" and list(browser.study.options) == ["knn"]
    assert list(shown["trial"]) == list(range(7, -1, -1))
    assert list(shown.columns) == ["trial", "attempt", "state", "score", "duration_s", "folds", "params.n_neighbors",
                                   "params.weights", "best"]
    by_trial = shown.set_index("trial").sort_index()
    assert list(by_trial["score"]) == list(history["value"]) and list(by_trial["state"]) == list(history["state"])
    assert by_trial["duration_s"].gt(0).all() and by_trial["folds"].between(1, 3).all()
    assert list(by_trial["params.n_neighbors"]) == list(history["params.n_neighbors"])
    # and: the best trial, the store's own, is starred, shaded and summed up
    assert shown.loc[shown["best"] == "★", "score"].tolist() == [best.score]
    row = next(r for r in browser.table.value.split("<tr")[2:] if "★" in r)
    assert f"background:{_SHADE}" in row and f"{best.score:.4g}" in row
    assert browser.table.value.count(f"background:{_SHADE}") == 1
    summary = text(browser.summary.value)
    assert f"score {best.score:.4g} (lowest wins)" in summary and "8 trials" in summary
    assert "var(--jp-success-color1" in browser.summary.value
    assert "job" not in shown.columns and "attempt_id" not in browser.table.value
    assert repr(browser).startswith("StudyBrowser('knn'): 8 trials, best ")


def test_sorting_best_first_reversed_and_by_a_parameter(tuned):
    browser = StudyBrowser(tuned, "knn")
    scores = browser.frame["score"]
    browser.sort.value = "best"
    assert browser.shown["score"].tolist()[:2] == sorted(scores)[:2] and browser.shown["best"].iloc[0] == "★"
    browser.reverse.value = True
    assert browser.shown["score"].iloc[0] == scores.max()
    browser.sort.value = "params.n_neighbors"
    assert list(browser.shown["params.n_neighbors"]) == sorted(browser.frame["params.n_neighbors"], reverse=True)
    browser.reverse.value = False
    neighbours = list(browser.shown["params.n_neighbors"])
    assert neighbours == sorted(neighbours)
    # then: the HTML rows follow the order shown
    positions = [browser.table.value.index(f">{n}</td>") for n in dict.fromkeys(neighbours)]
    assert positions == sorted(positions)
    # and: the orders offered are newest, best and each column
    values = [value for _, value in browser.sort.options]
    assert values[:2] == ["newest", "best"] and {"state", "score", "duration_s", "params.weights"} <= set(values)


def test_best_first_respects_a_maximised_study_and_keeps_unscored_trials_last(toy):
    url, jobs = toy
    browser = StudyBrowser(url)
    assert browser.maximize and browser.best.job == jobs["retried"] and browser.best.score == 0.9
    browser.sort.value = "best"
    assert browser.shown["score"].tolist()[:3] == [0.9, 0.6, 0.3]
    assert browser.shown["state"].tolist()[3:] == ["FAIL", "FAIL"]  # the failed attempt and the failed job
    browser.reverse.value = True
    assert browser.shown["score"].tolist()[:3] == [0.3, 0.6, 0.9]
    assert "highest wins" in text(browser.summary.value)
    # and: sort_trials alone agrees
    assert sort_trials(browser.frame, "best", maximize=False)["score"].iloc[0] == 0.3


def test_the_state_filter_offers_the_states_present_with_their_counts(toy):
    url, jobs = toy
    browser = StudyBrowser(url, "yield")
    assert dict(browser.state.options) == {"all": "", "complete (3)": "COMPLETE", "fail (2)": "FAIL"}
    browser.state.value = "FAIL"
    assert browser.shown["state"].tolist() == ["FAIL", "FAIL"] and browser.table.value.count("<tr") == 3
    browser.sort.value = "best"
    browser.state.value = "COMPLETE"
    assert browser.shown["score"].tolist() == [0.9, 0.6, 0.3]
    browser.state.value = ""
    assert len(browser.shown) == 5


def test_a_retried_job_shows_each_attempt_and_its_latest_fold_scores(toy):
    url, jobs = toy
    browser = StudyBrowser(url, "yield")
    retried = browser.frame[browser.frame["job"] == jobs["retried"]]
    assert retried[["attempt", "state"]].values.tolist() == [[1, "FAIL"], [2, "COMPLETE"]]
    # then: the trial picker lists each job once, the best one picked, and shows its latest attempt's folds
    assert [label for label, _ in browser.trial.options] == ["trial 0", "trial 1", "trial 3", "trial 4"]
    assert browser.trial.value == jobs["retried"]
    with ExperimentStore(url) as experiments:
        latest = experiments.intermediate_results(jobs["retried"])
    assert [round(v, 6) for v in latest] == [1.0, 0.9]
    table = fold_table(browser.folds, browser.trial.value)
    assert table["score"].tolist() == latest
    assert table["median"].round(6).tolist() == [0.7, 0.6]  # the medians of (0.4, 1.0, 0.7) and (0.3, 0.9, 0.6)
    assert browser.folds_table.value.count("<tr") == 3
    assert "★" in text(browser.table.value) and "trial 2, score 0.9" in text(browser.summary.value)


def test_picking_a_trial_shows_its_fold_scores_against_the_medians(tuned):
    browser = StudyBrowser(tuned)
    with ExperimentStore(tuned) as experiments:
        for label, job in browser.trial.options:
            browser.trial.value = job
            scores = experiments.intermediate_results(job)
            cells = re.findall(r"<td[^>]*>([^<]*)</td>", browser.folds_table.value)
            assert cells[1::3] == [f"{score:.4g}" for score in scores], label  # fold, score, median per row
            # a fold worse than the median is shaded (a lower score is better here)
            worse = [s > m for s, m in zip(scores, fold_table(browser.folds, job)["median"])]
            assert browser.folds_table.value.count(f"background:{_SHADE}") == sum(worse), label


def test_the_optimisation_history_follows_the_direction(toy, tuned):
    # given: a minimised study and a maximised one
    for url, study, maximize in [(tuned, "knn", False), (toy[0], "yield", True)]:
        browser = StudyBrowser(url, study)
        # then: the figure is a PNG of the study's history, its best-so-far line in the study's direction
        assert browser.plot.value[:8] == b"\x89PNG\r\n\x1a\n"
        axes = browser.figure.axes[0]
        complete = browser.history[browser.history["state"] == "COMPLETE"].sort_values("trial")
        expected = complete["value"].cummax() if maximize else complete["value"].cummin()
        assert list(axes.lines[0].get_ydata()) == list(expected), study
        assert axes.collections[0].get_offsets().tolist() == complete[["trial", "value"]].values.tolist()
        assert axes.get_xlabel() == "trial"
        assert axes.get_title() == f"{study}: optimisation history"


def test_the_browser_reads_each_study_through_the_store_once(toy):
    # given: an experiment store that counts the calls made to it
    url, _ = toy
    calls: list[str] = []

    class Counting(ExperimentStore):
        def __getattribute__(self, name):
            if name in ("experiments", "history", "best", "experiment_intermediate_results", "intermediate_results",
                        "storage"):
                calls.append(name)
            return super().__getattribute__(name)

    experiments = Counting(url)
    browser = StudyBrowser(experiments, "yield")
    reads = [c for c in calls if c != "storage"]
    assert [reads.count(name) for name in ("experiments", "history", "experiment_intermediate_results")] == [1, 1, 1]
    assert "best" in reads and "intermediate_results" not in reads  # not one call per trial
    # when: the order, the filter and the trial change
    calls.clear()
    browser.sort.value, browser.state.value, browser.reverse.value = "best", "COMPLETE", True
    browser.trial.value = browser.trial.options[0][1]
    # then: nothing is read again
    assert calls == []


def test_refresh_picks_up_new_studies_and_trials(toy):
    url, jobs = toy
    browser = StudyBrowser(url)
    browser.sort.value, browser.state.value = "best", "COMPLETE"
    # when: another process adds a trial to the study and a new study, then the user clicks Refresh
    with ExperimentStore(url) as experiments:
        job = experiments.start_job("yield", {"x": 0.95})
        experiments.end_job(job, 0.95)
    toy_study(url, "cost", direction="minimize")
    browser.refresh_button.click()
    # then: the study shown stays, with its new best; the other study is offered; the order and filter stay
    assert list(browser.study.options) == ["yield", "cost"] and browser.study.value == "yield"
    assert browser.best.score == 0.95 and browser.shown["score"].iloc[0] == 0.95
    assert (browser.sort.value, browser.state.value) == ("best", "COMPLETE")
    # when: the user picks the other study
    browser.study.value = "cost"
    assert not browser.maximize and browser.best.score == 0.3 and len(browser.frame) == 5
    browser.state.value = ""
    assert browser.shown["score"].tolist()[:3] == [0.3, 0.6, 0.9]


def test_a_study_not_in_the_store_is_named_and_a_missing_store_is_not_created(toy, tmp_path):
    url, _ = toy
    with pytest.raises(ConfigError, match=r"no study 'yeild' in sqlite:///.*; studies: yield"):
        StudyBrowser(url, "yeild")
    missing = tmp_path / "nothing" / "optuna.db"
    empty = StudyBrowser(f"sqlite:///{missing}")
    assert not missing.exists() and not missing.parent.exists()
    assert empty.study.options == () and empty.table.value == "" and empty.plot.value == b""
    assert text(empty.summary.value) == f"no studies in sqlite:///{missing}"
    assert repr(empty) == f"StudyBrowser('sqlite:///{missing}'): no studies"


def test_a_study_without_trials_shows_an_empty_table(toy):
    url, _ = toy
    with ExperimentStore(url) as experiments:
        experiments.create_experiment("fresh")
    browser = StudyBrowser(url, "fresh")
    assert len(browser.frame) == 0 and browser.best is None and browser.figure is None
    assert browser.table.value == "<i>no trials</i>" and browser.trial.options == ()
    assert "no finished trial yet" in text(browser.summary.value)
    assert list(trials_frame(pd.DataFrame()).columns)[:3] == ["job", "attempt_id", "trial"]


def test_closing_the_browser_closes_only_the_store_it_opened(toy):
    url, _ = toy
    own = StudyBrowser(url)
    given = ExperimentStore(url)
    shared = StudyBrowser(given)
    own.close()
    shared.close()
    assert own.experiments.is_closed() and not given.is_closed()
    with pytest.raises(StoreClosedError, match="is closed"):
        own.refresh()
    given.close()


# ========================================================================================== in a browser



def lab_notebook(folder: Path, url: str) -> str:
    "A notebook that opens a study browser on the trials store at `url`."
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = [nbformat.v4.new_code_cell("from regression_lab.widgets import StudyBrowser"),
                      nbformat.v4.new_code_cell(f"StudyBrowser({url!r})")]
    nbformat.write(notebook, folder / "study.ipynb")
    return "study.ipynb"


@pytest.fixture()
def lab(tmp_path, request, tuned):
    "JupyterLab serving a notebook with a study browser on the tuned store, in `request.param` theme; its URL."
    notebook = lab_notebook(tmp_path, tuned)
    with jupyterlab(tmp_path, request.param) as (base, token):
        yield f"{base}/lab/tree/{notebook}?token={token}"


def open_and_run(tab, url: str) -> None:
    tab.goto(url, wait_until="domcontentloaded")
    tab.wait_for_function(  # a kernel, idle: a run sent before is silently dropped
        "() => [...document.querySelectorAll('.jp-StatusBar-TextItem')]"
        ".some(e => /^(?!No Kernel).+ \\| Idle$/.test(e.textContent.trim()))", timeout=90_000)
    tab.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    tab.wait_for_selector(".rl-study-browser .rl-trials-table table", timeout=90_000)


def css(tab, selector: str, prop: str) -> str:
    return tab.eval_on_selector(selector, f"e => getComputedStyle(e)[{prop!r}]")


@pytest.mark.parametrize("lab", ["light"], indirect=True)
def test_a_user_browses_the_study_in_jupyterlab(lab):
    if not CHROMIUM.exists():
        pytest.fail(f"Debian's Chromium is missing at {CHROMIUM}: `apt-get install -y chromium`")
    with offline_tab(1280, 1400) as tab:
        open_and_run(tab, lab)
        table = ".rl-study-browser .rl-trials-table"
        # then: eight trials, newest first, one starred and shaded; the figure drawn; the best trial's folds shown
        rows = tab.locator(f"{table} tbody tr")
        assert rows.count() == 8 and rows.first.locator("td").first.inner_text() == "7"
        starred = tab.locator(f"{table} tbody tr", has_text="★")
        assert starred.count() == 1 and css(tab, f"{table} tbody tr[style]", "backgroundColor") != "rgba(0, 0, 0, 0)"
        assert css(tab, ".rl-study-summary b", "color") == "rgb(56, 142, 60)"  # the light theme's success colour
        assert tab.eval_on_selector(".rl-study-history", "e => e.naturalWidth") > 300
        assert tab.locator(".rl-study-folds tbody tr").count() == 3
        # when: the user orders the table best first
        tab.locator(".rl-study-sort select").select_option(label="best first")
        tab.wait_for_function(f"() => document.querySelector('{table} tbody tr').textContent.includes('★')")
        # and: keeps the complete trials only
        states = [label.replace("\xa0", " ") for label in tab.locator(".rl-study-state select option").all_inner_texts()]
        assert states[0] == "all" and states[1].startswith("complete (")
        complete = int(re.search(r"\((\d+)\)", states[1]).group(1))
        tab.locator(".rl-study-state select").select_option(index=1)
        tab.wait_for_function(f"() => document.querySelectorAll('{table} tbody tr').length === {complete}")
        assert set(tab.locator(f"{table} tbody tr td:nth-child(3)").all_inner_texts()) == {"COMPLETE"}
        # and: goes back to every trial, newest first, for the picture
        tab.locator(".rl-study-state select").select_option(index=0)
        tab.locator(".rl-study-sort select").select_option(label="newest first")
        tab.wait_for_function(f"() => document.querySelector('{table} tbody td').textContent === '7'")
        save_picture(tab, "study-browser", ".rl-study-browser")
        assert not tab.errors, tab.errors


@pytest.mark.parametrize("lab", ["dark"], indirect=True)
def test_the_study_browser_follows_the_dark_theme(lab):
    with offline_tab(1280, 1000) as tab:
        open_and_run(tab, lab)
        # then: the summary takes the dark theme's success colour, the table light text on the dark background
        assert css(tab, ".rl-study-summary b", "color") == "rgb(76, 175, 80)"
        cell = css(tab, ".rl-study-browser .rl-trials-table td", "color")
        assert sum(int(v) for v in re.findall(r"\d+", cell)[:3]) > 380, cell
        save_picture(tab, "study-browser-dark", ".rl-study-browser")
        assert not tab.errors, tab.errors


def save_picture(tab, name: str, selector: str) -> Path:
    "A picture of `selector` in build/screenshots; with RL_SAVE_PICTURES=1 in nbs/images too."
    PICTURES.mkdir(parents=True, exist_ok=True)
    path = PICTURES / f"{name}.png"
    tab.locator(selector).first.scroll_into_view_if_needed()
    tab.wait_for_timeout(300)
    tab.locator(selector).first.screenshot(path=str(path))
    if os.environ.get("RL_SAVE_PICTURES") == "1":
        (ROOT / "nbs" / "images" / path.name).write_bytes(path.read_bytes())
    return path
