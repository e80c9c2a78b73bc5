"""Team mode through HTTP: every job as a real `regression-lab` process against the session's team stack.

Given an `mlflow server` on PostgreSQL, a trials database and a Dask cluster (`scripts/team.sh`), when a team member
runs the commands with `--tracking-uri http://…`, `--storage postgresql://…` and `--scheduler tcp://…`, then the
server holds what they did: runs FINISHED, model versions, aliases; the trials database holds the study; the Dask
workers ran the trials. No password appears in any URI: the processes find it through PGPASSFILE.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest

from conftest import CONFS, TARGET, synthetic_table

from .conftest import Team, last_json


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> dict[str, Path]:
    "A labelled training table, labelled new rows, and the same new rows without the target."
    folder = tmp_path_factory.mktemp("team-data")
    table = synthetic_table(rows=400, seed=1)
    paths = {name: folder / f"{name}.csv" for name in ("train", "labelled", "unlabelled")}
    table.iloc[:300].to_csv(paths["train"], index=False)
    table.iloc[300:].to_csv(paths["labelled"], index=False)
    table.iloc[300:].drop(columns=[TARGET]).to_csv(paths["unlabelled"], index=False)
    return paths


def statuses(team: Team, experiment: str) -> list[str]:
    return sorted(run.info.status for run in team.runs(experiment))


def test_lifecycle_commands_through_http(team: Team, tables, tmp_path):
    "train -> promote -> predict -> evaluate against the server: each leaves a FINISHED run and what it made."
    common = ["--tracking-uri", team.tracking_uri, "--experiment", "team-lifecycle", "--json"]
    trained = last_json(team.cli("train", "--data", tables["train"], "--target", TARGET, "--model", "ridge",
                                 "--registry-name", "team-houses", *common, cwd=tmp_path))
    client = team.client()
    assert client.get_run(trained["run_id"]).info.status == "FINISHED"
    (version,) = team.versions("team-houses")
    assert (version.version, version.run_id, version.status) == ("1", trained["run_id"], "READY")

    last_json(team.cli("promote", "--name", "team-houses", *common, cwd=tmp_path))
    assert client.get_model_version_by_alias("team-houses", "champion").version == "1"

    output = tmp_path / "predictions.csv"
    with ThreadPoolExecutor(2) as pool:  # two team members at once: one predicts, one evaluates
        predicting = pool.submit(team.cli, "predict", "--model", "models:/team-houses@champion", "--data",
                                 tables["unlabelled"], "--output", output, *common, cwd=tmp_path)
        evaluating = pool.submit(team.cli, "evaluate", "--model", "models:/team-houses@champion", "--data",
                                 tables["labelled"], "--target", TARGET, "--threshold", "r2=0.5", *common,
                                 cwd=tmp_path)
        predicted, evaluated = last_json(predicting.result()), last_json(evaluating.result())
    assert len(pd.read_csv(output)) == 100, predicted
    assert evaluated["metrics"]["r2"] > 0.5
    assert set(statuses(team, "team-lifecycle")) == {"FINISHED"}
    assert not list(tmp_path.glob("*.db")), "a command wrote a local store instead of using the server"


def test_tuning_trials_in_postgresql_on_dask_workers(team: Team, tables, tmp_path):
    "A study in the trials database, its trials run by the `dask worker` processes, tracked on the server."
    from distributed import Client

    tuned = last_json(team.cli("tune", "--data", tables["train"], "--target", TARGET, "--model", "ridge",
                               "--trials", "4", "--study", "team-dask", "--storage", team.storage,
                               "--scheduler", team.scheduler, "--tracking-uri", team.tracking_uri,
                               "--experiment", "team-tuning", "--json", cwd=tmp_path))
    assert tuned["n_trials"] == 4
    complete = [t for t in team.study("team-dask").trials if t.state.name == "COMPLETE"]
    assert len(complete) == 4
    with Client(team.scheduler, timeout=30) as client:
        workers = set(client.scheduler_info()["workers"])
    assert len(workers) == 2
    assert {t.user_attrs["worker"] for t in complete} <= workers, "a trial did not run on the cluster's workers"
    parent = team.client().get_run(tuned["run_id"])
    assert parent.info.status == "FINISHED"
    assert "password" not in team.storage and ":@" not in team.storage
    assert not list(tmp_path.glob("*.db")), "a command wrote a local store instead of using the server"


def test_lifecycle_pipeline_through_http(team: Team, tmp_path):
    "The whole lifecycle pipeline with `--tracking-uri http://…`: every step's run FINISHED, a champion version."
    done = last_json(team.cli("pipeline", "run", CONFS / "pipelines" / "diabetes_lifecycle.yaml", "--inputs",
                              f"folder={tmp_path}", "--tracking-uri", team.tracking_uri, "--experiment",
                              "team-pipeline", "--json", cwd=tmp_path))
    runs = team.runs("team-pipeline")
    assert {run.info.status for run in runs} == {"FINISHED"}, done
    assert len(runs) >= 6, [run.info.run_name for run in runs]  # the pipeline's run and one per job step
    champion = team.client().get_model_version_by_alias("diabetes-lifecycle", "champion")
    assert team.client().get_run(champion.run_id).info.status == "FINISHED"
    assert (tmp_path / "predictions.csv").exists()
