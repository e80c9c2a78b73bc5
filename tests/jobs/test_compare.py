"""CompareJob against a real MLflow store: a ranked leaderboard with a run each, a time limit that kills, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import Store, cli_env, synthetic_table

from regression_lab.core import ConfigError
from regression_lab.data import CsvReader
from regression_lab.jobs.compare import DEFAULT_KINDS, TAG, CompareJob
from regression_lab.services import AlertsService, LoggerService

TESTS = Path(__file__).resolve().parent  # compare_kinds.py lives here
FOLDS = {"KIND": "KFoldSplitter", "n_splits": 3}


@pytest.fixture(scope="module")
def houses(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "houses.csv"
    synthetic_table(rows=300).to_csv(path, index=False)
    return path


def compare_job(store: Store, data: Path, folder: Path, **settings) -> CompareJob:
    "A quiet comparison on `data` tracked in `store`."
    settings = {"splitter": FOLDS, "progress": False, **settings}
    return CompareJob(inputs=CsvReader(path=str(data), drop=["price"]), targets=CsvReader(path=str(data), columns=["price"]),
                      logger_service=LoggerService(sink=str(folder / "job.log"), colorize=False),
                      alerts_service=AlertsService(enable=False), mlflow_service=store.service(), **settings)


def run(job):
    with job:
        return job.run()


def nested_runs(store: Store, parent_id: str) -> dict[str, object]:
    return {run.info.run_name: run for run in store.runs() if run.data.tags.get("mlflow.parentRunId") == parent_id}


@pytest.fixture
def kinds_on_path(monkeypatch):
    "compare_kinds importable here and in every worker process."
    monkeypatch.syspath_prepend(str(TESTS))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    import compare_kinds  # noqa: F401 (registers the kinds)


def test_default_models_ranked_on_the_same_folds_with_a_nested_run_each(store, houses, tmp_path):
    # when: the default line-up, two at a time, the winner registered
    result = run(compare_job(store, houses, tmp_path, n_jobs=2, register_best=True, name="defaults"))
    board = result.leaderboard
    # then: every default kind has a row, all done, ranked by mean RMSE
    assert len(DEFAULT_KINDS) >= 6
    assert sorted(board["model"]) == sorted(DEFAULT_KINDS)
    assert board["status"].eq("done").all()
    assert board["rank"].tolist() == list(range(1, len(DEFAULT_KINDS) + 1))
    assert board["rmse_mean"].is_monotonic_increasing
    assert result.best == board["model"].iloc[0] and result.ran and not result.reused
    # then: each row is a FINISHED nested run of the comparison with mean, spread and times, and a score per fold
    runs = nested_runs(store, result.run_id)
    client = store.client()
    for row in board.itertuples():
        run_ = runs[row.model]
        assert run_.info.run_id == row.run_id and run_.info.status == "FINISHED"
        assert run_.data.tags[f"{TAG}.status"] == "done"
        for name in ("rmse", "mae", "r2", "mape", "fit_time", "predict_time"):
            assert {f"{name}_mean", f"{name}_std"} <= set(run_.data.metrics)
        assert [m.step for m in client.get_metric_history(row.run_id, "rmse")] == [0, 1, 2]
    # then: the folds are the splitter's, the same for every model: ridge scores as scikit-learn's cross_validate does
    from sklearn.model_selection import KFold, cross_validate
    from regression_lab.models import RidgeModel
    table = synthetic_table(rows=300)
    inputs, target = table.drop(columns="price"), table["price"]
    expected = cross_validate(RidgeModel().build(inputs), inputs, target, cv=KFold(3, shuffle=True, random_state=42),
                              scoring="neg_root_mean_squared_error")["test_score"]
    ridge = board.set_index("model").loc["RidgeModel"]
    assert ridge["rmse_mean"] == pytest.approx(-expected.mean(), rel=1e-9)
    # then: the parent run holds the leaderboard as CSV, and the winner was trained in a run nested under it, registered
    parent = client.get_run(result.run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags[f"{TAG}.best"] == result.best
    import mlflow
    csv = mlflow.artifacts.load_text(f"runs:/{result.run_id}/leaderboard.csv")
    assert csv.splitlines()[1].split(",")[1] == result.best
    versions = store.model_versions("regression_lab")
    assert [int(v.version) for v in versions] == [result.training.model_version]
    training_run = client.get_run(versions[0].run_id)
    assert training_run.data.tags["mlflow.parentRunId"] == result.run_id
    assert training_run.data.params["model.KIND"] == board["kind"].iloc[0]
    # then: the JSON summary holds the ranked rows
    summary = json.loads(json.dumps(result.summary()))
    assert [row["model"] for row in summary["leaderboard"]] == board["model"].tolist()
    assert summary["model_version"] == result.training.model_version


def test_a_slow_user_kind_is_stopped_by_the_time_limit_and_the_others_finish(store, houses, tmp_path, kinds_on_path, monkeypatch):
    # given: a user kind whose fit sleeps a minute, leaving its worker's pid behind
    monkeypatch.setenv("SLEEPY_PIDS", str(tmp_path))
    job = compare_job(store, houses, tmp_path, name="limited", n_jobs=2, time_limit=3,
                      models=["SleepyModel", "RidgeModel", "DecisionTreeModel", "LassoModel"])
    # when
    start = time.monotonic()
    result = run(job)
    elapsed = time.monotonic() - start
    # then: the sleeper was stopped after about three seconds, recorded as timed out, and the others ranked
    assert elapsed < 50
    board = result.leaderboard.set_index("model")
    assert result.timed_out == ["SleepyModel"]
    assert board.loc["SleepyModel", "status"] == "timed_out" and board.loc["SleepyModel", "rank"] is pd_na()
    assert 3 <= board.loc["SleepyModel", "seconds"] < 10
    assert board.drop(index="SleepyModel")["status"].eq("done").all()
    assert result.leaderboard["model"].iloc[-1] == "SleepyModel"
    sleeper = nested_runs(store, result.run_id)["SleepyModel"]
    assert sleeper.info.status == "KILLED" and "time limit 3 s" in sleeper.data.tags[f"{TAG}.error"]
    # then: the worker that ran it is gone, not left sleeping
    pids = [int(path.name) for path in tmp_path.iterdir() if path.name.isdigit()]
    assert pids
    time.sleep(0.5)
    for pid in pids:
        assert not process_alive(pid), pid


def pd_na():
    import pandas as pd
    return pd.NA


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text()


SCRIPT = """\
import sys
import compare_kinds
from regression_lab.data import CsvReader
from regression_lab.jobs.compare import CompareJob
from regression_lab.services import AlertsService, LoggerService, MlflowService
job = CompareJob(name="resumable", inputs=CsvReader(path={data!r}, drop=["price"]), targets=CsvReader(path={data!r}, columns=["price"]),
                 models=["RidgeModel", "LassoModel", "DecisionTreeModel", "SleepyModel"], splitter={folds!r}, n_jobs=2,
                 progress=False, logger_service=LoggerService(sink={log!r}, colorize=False), alerts_service=AlertsService(enable=False),
                 mlflow_service=MlflowService(tracking_uri={uri!r}, autolog_disable=True))
with job:
    job.run()
"""


def test_an_interrupted_comparison_resumes_with_only_the_models_left(houses, tmp_path, kinds_on_path, monkeypatch):
    # given: a comparison in a subprocess, interrupted (SIGINT) while the sleeper runs and the others are done
    store = Store(tmp_path)
    store.client().search_experiments()  # create the tables first: two processes migrating one SQLite store race
    code = SCRIPT.format(data=str(houses), folds=FOLDS, log=str(tmp_path / "first.log"), uri=store.uri)
    process = subprocess.Popen([sys.executable, "-c", code], env=cli_env(PYTHONPATH=str(TESTS), SLEEPY_SECONDS="120"),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        statuses = {run.info.run_name: run.data.tags.get(f"{TAG}.status") for run in store.runs()
                    if run.data.tags.get(f"{TAG}.role") == "model"}
        if statuses.get("SleepyModel") == "running" and list(statuses.values()).count("done") == 3:
            break
        assert process.poll() is None, process.communicate()
        time.sleep(0.5)
    else:
        process.kill()
        pytest.fail(f"the first run never reached the sleeper: {statuses}")
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    # then: the first run stopped: its parent KILLED, the sleeper's run interrupted, the three others done
    assert process.returncode != 0
    assert "KeyboardInterrupt" in stderr
    parents = [run for run in store.runs() if run.data.tags.get(f"{TAG}.role") == "parent"]
    assert len(parents) == 1 and parents[0].info.status == "KILLED"
    first = nested_runs(store, parents[0].info.run_id)
    assert first["SleepyModel"].info.status == "KILLED"
    assert first["SleepyModel"].data.tags[f"{TAG}.status"] == "interrupted"
    # when: the same comparison runs again (the sleeper now quick)
    monkeypatch.setenv("SLEEPY_SECONDS", "0")
    job = CompareJob(name="resumable", inputs=CsvReader(path=str(houses), drop=["price"]),
                     targets=CsvReader(path=str(houses), columns=["price"]), splitter=FOLDS, n_jobs=2, progress=False,
                     models=["RidgeModel", "LassoModel", "DecisionTreeModel", "SleepyModel"],
                     logger_service=LoggerService(sink=str(tmp_path / "second.log"), colorize=False),
                     alerts_service=AlertsService(enable=False), mlflow_service=store.service())
    result = run(job)
    # then: only the sleeper ran, in the same parent run, and the leaderboard ranks all four
    assert result.ran == ["SleepyModel"]
    assert sorted(result.reused) == ["DecisionTreeModel", "LassoModel", "RidgeModel"]
    assert result.run_id == parents[0].info.run_id
    assert store.client().get_run(result.run_id).info.status == "FINISHED"
    assert result.leaderboard["status"].eq("done").all() and len(result.leaderboard) == 4
    model_runs = [run for run in store.runs() if run.data.tags.get(f"{TAG}.role") == "model"]
    assert sorted(run.info.run_name for run in model_runs) == ["DecisionTreeModel", "LassoModel", "RidgeModel",
                                                              "SleepyModel", "SleepyModel"]


def test_a_model_that_failed_is_the_only_one_run_again(store, houses, tmp_path, kinds_on_path, monkeypatch):
    # given: a comparison where one model fails the first time
    monkeypatch.setenv("FLAKY_DIR", str(tmp_path))
    job = compare_job(store, houses, tmp_path, name="flaky", n_jobs=1, models=["FlakyModel", "RidgeModel"])
    first = run(job)
    assert first.failed == ["FlakyModel"] and first.best == "RidgeModel"
    row = first.leaderboard.set_index("model").loc["FlakyModel"]
    assert row["status"] == "failed"
    assert "resource busy" in nested_runs(store, first.run_id)["FlakyModel"].data.tags[f"{TAG}.error"]
    # when: it runs again
    second = run(job)
    # then: only the failed model ran, and now both are ranked
    assert second.ran == ["FlakyModel"] and second.reused == ["RidgeModel"]
    assert second.leaderboard["status"].eq("done").all()
    # when: a model is added to the finished comparison, only that one runs; with resume off, everything runs
    assert run(job.model_copy(update={"models": [*job.models, job.models[1].model_copy(update={"alpha": 10.0})]})).ran == ["RidgeModel-2"]
    fresh = run(job.model_copy(update={"resume": False}))
    assert sorted(fresh.ran) == ["FlakyModel", "RidgeModel"] and fresh.run_id != second.run_id


def test_bad_models_and_bad_data_are_refused_before_any_run(tmp_path, houses):
    from regression_lab.configs import parse_job
    store = Store(tmp_path)
    config = {"job": {"KIND": "CompareJob", "inputs": {"KIND": "CsvReader", "path": str(houses), "drop": ["price"]},
                      "targets": {"KIND": "CsvReader", "path": str(houses), "columns": ["price"]}}}
    # unknown kinds are named, each one
    with pytest.raises(ConfigError) as caught:
        parse_job({"job": {**config["job"], "models": ["RidgeModel", "NeuralNetModel", "Forest"]}})
    assert "'NeuralNetModel'" in str(caught.value) and "'Forest'" in str(caught.value)
    assert "job.models.1" in str(caught.value)
    # an empty list is refused
    with pytest.raises(ConfigError, match="no model to compare"):
        parse_job({"job": {**config["job"], "models": []}})
    # a missing target column is a data error naming it, and no run was created
    from regression_lab.core import DataError
    job = compare_job(store, houses, tmp_path, models=["RidgeModel"])
    job = job.model_copy(update={"targets": CsvReader(path=str(houses), columns=["cost"])})
    with pytest.raises(DataError, match="'cost'"):
        run(job)
    assert store.runs() == []


BEYOND = Path(__file__).resolve().parents[2] / "confs" / "beyond"


def test_the_shipped_compare_config_validates_and_runs_from_the_command_line(tmp_path):
    from conftest import run_cli
    from regression_lab.configs import load_config, parse_job
    path = BEYOND / "compare.yaml"
    # the file as shipped is a valid CompareJob of at least six kinds
    job = parse_job(load_config(path))
    assert isinstance(job, CompareJob) and len({model.KIND for model in job.models}) >= 6
    # it runs with `regression-lab run` (two of its models, two folds, to stay quick)
    store = Store(tmp_path)
    done = run_cli("run", path, "-e", "job.models=[RidgeModel,{KIND: DecisionTreeModel, max_depth: 6}]",
                   "-e", "job.splitter.n_splits=2", "--json", "--tracking-uri", store.uri, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.splitlines()[-1])
    assert summary["job"] == "CompareJob" and [row["rank"] for row in summary["leaderboard"]] == [1, 2]
    assert summary["model_version"] == 1


def test_caveats_about_the_data_are_warned_once_and_tagged_on_the_parent_run(store, tmp_path):
    # given: twenty rows, one of them a constant column
    data = tmp_path / "few.csv"
    synthetic_table(rows=20, seed=4).assign(flat=1.0).to_csv(data, index=False)
    # when
    result = run(compare_job(store, data, tmp_path, name="few rows", models=["RidgeModel"], n_jobs=1))
    # then: each caveat is one warning in the log (the data is read once, on entering), and both are on the parent run
    logged = (tmp_path / "job.log").read_text()
    assert logged.count("caveat: only 20 rows") == 1 and logged.count("caveat: column(s) 'flat'") == 1
    tag = store.client().get_run(result.run_id).data.tags["regression_lab.caveats"]
    assert tag.startswith("only 20 rows from ") and "; column(s) 'flat' from " in tag
