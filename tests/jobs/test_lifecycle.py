"""promote → predict → evaluate through the command line on unseen data, reading MLflow and the outputs."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from conftest import INPUT_COLUMNS, TARGET, Store, run_cli, synthetic_table


@pytest.fixture(scope="module")
def lifecycle(tmp_path_factory):
    "A model trained with `regression-lab train` on one table, and new rows (with ids) from the same process."
    work = tmp_path_factory.mktemp("lifecycle")
    store = Store(work)
    table = synthetic_table(rows=1500, seed=1)
    table.iloc[:1000].to_csv(work / "train.csv", index=False)
    table.iloc[1000:].assign(house=[f"h{i}" for i in range(500)]).to_csv(work / "new.csv", index=False)
    done = run_cli("train", "--data", work / "train.csv", "--target", TARGET, "--model", "ridge",
                   "--registry-name", "houses", "--json", "--tracking-uri", store.uri, cwd=work)
    assert done.returncode == 0, done.stderr[-3000:]
    return work, store, json.loads(done.stdout.splitlines()[-1])


def cli(work, store, *args):
    return run_cli(*args, "--json", "--tracking-uri", store.uri, cwd=work)


def test_promote_predict_evaluate(lifecycle):
    work, store, trained = lifecycle
    # when: the latest version is promoted
    done = cli(work, store, "promote", "--name", "houses")
    assert done.returncode == 0, done.stderr[-3000:]
    promoted = json.loads(done.stdout.splitlines()[-1])
    # then: the alias points at the trained version in the registry
    assert promoted["alias"] == "champion" and promoted["version"] == trained["model_version"]
    assert int(store.client().get_model_version_by_alias("houses", "champion").version) == trained["model_version"]
    # when: the champion predicts the new rows into Parquet, ids beside predictions
    done = cli(work, store, "predict", "--model", "models:/houses@champion", "--data", work / "new.csv",
               "--id-column", "house", "--output", work / "predictions.parquet")
    assert done.returncode == 0, done.stderr[-3000:]
    predicted = json.loads(done.stdout.splitlines()[-1])
    written = pd.read_parquet(work / "predictions.parquet")
    assert predicted["rows"] == 500 and list(written.columns) == ["house", "prediction"]
    assert written["house"].tolist() == [f"h{i}" for i in range(500)]
    assert store.client().get_run(predicted["run_id"]).info.status == "FINISHED"
    # when: the champion is evaluated with thresholds it meets
    done = cli(work, store, "evaluate", "--model", "models:/houses@champion", "--data", work / "new.csv",
               "--target", TARGET, "--threshold", "r2=0.8", "--threshold", "rmse=100", "-e", "job.inputs.drop=[price,house]")
    assert done.returncode == 0, done.stderr[-3000:]
    evaluated = json.loads(done.stdout.splitlines()[-1])
    assert evaluated["passed"] is True and evaluated["metrics"]["r2"] >= 0.8
    run = store.client().get_run(evaluated["run_id"])
    assert run.data.metrics["r2"] == pytest.approx(evaluated["metrics"]["r2"])
    assert run.data.tags["regression_lab.passed"] == "true"


def test_a_missed_threshold_exits_1_with_the_numbers(lifecycle):
    work, store, _ = lifecycle
    cli(work, store, "promote", "--name", "houses")
    done = cli(work, store, "evaluate", "--model", "models:/houses@champion", "--data", work / "new.csv",
               "--target", TARGET, "--threshold", "r2=0.9999")
    assert done.returncode == 1
    summary = json.loads(done.stdout.splitlines()[-1])
    assert summary["passed"] is False and summary["failures"][0].startswith("r2 = ")
    assert "needs >= 0.9999" in done.stderr
    assert store.client().get_run(summary["run_id"]).data.tags["regression_lab.passed"] == "false"


@pytest.mark.parametrize("case", ["missing column", "text in a number column", "unknown model"])
def test_bad_prediction_input_exits_2_naming_the_problem(lifecycle, case):
    work, store, _ = lifecycle
    cli(work, store, "promote", "--name", "houses")
    new = pd.read_csv(work / "new.csv")
    model = "models:/houses@champion"
    if case == "missing column":
        new.drop(columns="age").to_csv(work / "bad.csv", index=False)
        expected = "missing column(s) 'age' required by the model's signature"
    elif case == "text in a number column":
        new.assign(size="large").to_csv(work / "bad.csv", index=False)
        expected = "column 'size' should be double"
    else:
        new.to_csv(work / "bad.csv", index=False)
        model, expected = "models:/no-such-model@champion", "no-such-model"
    before = len(store.runs())
    done = cli(work, store, "predict", "--model", model, "--data", work / "bad.csv", "--output", work / "out.csv")
    assert done.returncode == 2
    assert expected in done.stderr and "Traceback" not in done.stderr
    assert not (work / "out.csv").exists()
    assert len(store.runs()) == before


def test_promoting_a_missing_version_exits_2(lifecycle):
    work, store, _ = lifecycle
    done = cli(work, store, "promote", "--name", "houses", "--version", "99")
    assert done.returncode == 2 and "has no version 99" in done.stderr


def test_promote_creates_no_experiment(lifecycle):
    "A promotion only reads the registry and moves an alias: `--experiment` names one that must not appear."
    work, store, trained = lifecycle
    done = run_cli("promote", "--name", "houses", "--alias", "reviewed", "--experiment", "promotions-only", "--json",
                   "--tracking-uri", store.uri, cwd=work)
    assert done.returncode == 0, done.stderr[-3000:]
    assert store.client().get_experiment_by_name("promotions-only") is None
    assert int(store.client().get_model_version_by_alias("houses", "reviewed").version) == trained["model_version"]
