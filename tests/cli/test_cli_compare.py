"""`regression-lab compare` as a user runs it: a real subprocess, a real MLflow store, JSON rows, exit codes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import Store, cli_env, run_cli, synthetic_table

KINDS = Path(__file__).resolve().parents[1] / "jobs"  # compare_kinds.py (SleepyModel) lives there


@pytest.fixture(scope="module")
def houses(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "houses.csv"
    synthetic_table(rows=300).to_csv(path, index=False)
    return path


def last_json(done) -> dict:
    return json.loads(done.stdout.splitlines()[-1])


def test_compare_prints_the_ranked_rows_as_json_and_registers_the_winner(store, houses, tmp_path):
    # when
    done = run_cli("compare", "--data", houses, "--target", "price", "--models", "ridge,lasso,decision_tree,k_neighbors", "--folds", "3", "--register-best",
                   "--name", "houses", "--json", "--tracking-uri", store.uri, "--experiment", "compare-cli", cwd=tmp_path)
    # then: exit 0, one JSON object last, its rows ranked by RMSE, one nested run per row
    assert done.returncode == 0, done.stderr[-3000:]
    summary = last_json(done)
    rows = summary["leaderboard"]
    assert [row["rank"] for row in rows] == [1, 2, 3, 4]
    assert sorted(row["model"] for row in rows) == ["DecisionTreeModel", "KNeighborsModel", "LassoModel", "RidgeModel"]
    means = [row["rmse_mean"] for row in rows]
    assert means == sorted(means)
    assert all(row["status"] == "done" and row["rmse_std"] >= 0 and row["fit_time_mean"] > 0 for row in rows)
    assert summary["best"] == rows[0]["model"] and summary["metric"] == "rmse"
    runs = {run.info.run_id: run for run in store.runs()}
    assert all(runs[row["run_id"]].data.tags["mlflow.parentRunId"] == summary["run_id"] for row in rows)
    assert runs[summary["run_id"]].info.status == "FINISHED"
    # then: the winner is registered
    versions = store.model_versions("regression_lab")
    assert [int(v.version) for v in versions] == [summary["model_version"]]


def test_compare_without_json_prints_the_leaderboard(store, houses, tmp_path):
    done = run_cli("compare", "--data", houses, "--target", "price", "--models", "ridge,decision_tree", "--folds", "2",
                   "--tracking-uri", store.uri, "--experiment", "compare-cli-text", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "rank" in done.stdout and "RidgeModel" in done.stdout and "mlflow ui --backend-store-uri" in done.stdout


def test_a_slow_user_kind_is_stopped_by_time_limit_and_a_rerun_reuses_the_rest(store, houses, tmp_path):
    # given: a user kind whose fit sleeps a minute, importable by the command and its workers
    env = cli_env(PYTHONPATH=os.pathsep.join([str(KINDS), os.environ.get("PYTHONPATH", "")]))
    args = ["compare", "--data", houses, "--target", "price", "--models", "SleepyModel,ridge,lasso", "--imports",
            "compare_kinds", "--folds", "2", "--time-limit", "3", "--n-jobs", "2", "--json", "--tracking-uri", store.uri,
            "--experiment", "compare-cli-limit"]
    # when
    done = run_cli(*args, cwd=tmp_path, env=env)
    # then: exit 0, the sleeper stopped and listed last without a rank, the others ranked
    assert done.returncode == 0, done.stderr[-3000:]
    summary = last_json(done)
    assert summary["timed_out"] == ["SleepyModel"]
    rows = {row["model"]: row for row in summary["leaderboard"]}
    assert rows["SleepyModel"]["status"] == "timed_out" and rows["SleepyModel"]["rank"] is None
    assert 3 <= rows["SleepyModel"]["seconds"] < 10
    assert summary["leaderboard"][-1]["model"] == "SleepyModel"
    assert {rows["RidgeModel"]["rank"], rows["LassoModel"]["rank"]} == {1, 2}
    # when: the same command again, with the same limit: nothing is left to run
    again = last_json(run_cli(*args, cwd=tmp_path, env=env))
    assert again["ran"] == [] and sorted(again["reused"]) == ["LassoModel", "RidgeModel", "SleepyModel"]
    assert again["run_id"] == summary["run_id"]


@pytest.mark.parametrize("args, named", [
    (["--models", "ridge,svm,neural_net"], ["'svm'", "'neural_net'"]),
    (["--models", ","], ["no model to compare"]),
    (["--target", "cost"], ["'cost'"]),  # the last --target wins
    (["--folds", "1"], ["job.splitter.n_splits"]),
    (["--metric", "Accuracy"], ["'Accuracy'"]),
], ids=["unknown-kinds", "empty-models", "missing-target-column", "one-fold", "unknown-metric"])
def test_bad_input_exits_2_naming_it_before_any_run(houses, tmp_path, args, named):
    store = Store(tmp_path)
    base = ["compare", "--data", houses, "--target", "price", "--json", "--tracking-uri", store.uri]
    done = run_cli(*base, *args, cwd=tmp_path)
    assert done.returncode == 2, done.stderr[-3000:]
    summary = last_json(done)
    assert summary["exit_code"] == 2
    for name in named:
        assert name in summary["error"] and name in done.stderr
    assert store.runs() == []


def test_missing_data_file_and_missing_target_option_exit_2(tmp_path):
    done = run_cli("compare", "--data", tmp_path / "nowhere.csv", "--target", "price", "--json", cwd=tmp_path)
    assert done.returncode == 2 and "nowhere.csv" in last_json(done)["error"]
    done = run_cli("compare", "--data", tmp_path / "nowhere.csv", "--json", cwd=tmp_path)
    assert done.returncode == 2 and "--target is required" in last_json(done)["error"]
    assert Store(tmp_path).runs() == []
