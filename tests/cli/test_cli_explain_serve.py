"""`regression-lab explain` and `regression-lab serve` as a user runs them: the installed command, real files,
a real store, real HTTP and a real SIGTERM."""

from __future__ import annotations

import json
import select
import signal
import subprocess
import urllib.error
import urllib.request

import pandas as pd
import pytest

from conftest import CLI, CONFS, INPUT_COLUMNS, TARGET, Store, cli_env, run_cli, synthetic_table


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    "Gradient boosting trained with `regression-lab train` on 800 rows, registered as houses and promoted."
    work = tmp_path_factory.mktemp("explain_serve")
    store = Store(work)
    synthetic_table(rows=800, seed=7).to_csv(work / "houses.csv", index=False)
    done = run_cli("train", "--data", work / "houses.csv", "--target", TARGET, "--registry-name", "houses",
                   "-e", "job.model.max_iter=40", "-e", "job.figures=false", "--json", "--tracking-uri", store.uri, cwd=work)
    assert done.returncode == 0, done.stderr[-3000:]
    done = run_cli("promote", "--name", "houses", "--json", "--tracking-uri", store.uri, cwd=work)
    assert done.returncode == 0, done.stderr[-3000:]
    return work, store


def test_explain_reports_the_original_columns_and_tags_the_version(trained):
    work, store = trained
    done = run_cli("explain", "--model", "models:/houses@champion", "--data", work / "houses.csv", "--target", TARGET,
                   "--max-rows", "300", "--json", "--tracking-uri", store.uri, cwd=work)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.splitlines()[-1])
    assert summary["job"] == "ExplanationJob" and summary["explainer"] == "TreeExplainer"
    assert (summary["rows"], summary["rows_explained"], summary["sampled"]) == (800, 300, True)
    assert set(summary["importance"]) == set(INPUT_COLUMNS)
    assert set(summary["importance"]["city"]) == {"mean_abs_shap", "permutation_importance", "permutation_std"}
    version = store.client().get_model_version("houses", str(summary["model_version"]))
    assert version.tags["regression_lab.explanation_run_id"] == summary["run_id"]
    # without --json: the sentence and the ranked table, for a person
    done = run_cli("explain", "--model", "models:/houses/1", "--data", work / "houses.csv",
                   "--tracking-uri", store.uri, cwd=work)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "TreeExplainer on all 800 rows" in done.stdout
    assert all(column in done.stdout for column in INPUT_COLUMNS)


@pytest.mark.parametrize("case", ["missing file", "missing column", "unknown model"])
def test_explain_bad_input_exits_2_without_a_run(trained, tmp_path, case):
    work, store = trained
    data, model = work / "houses.csv", "models:/houses@champion"
    if case == "missing file":
        data, expected = tmp_path / "nowhere.csv", "nowhere.csv"
    elif case == "missing column":
        data, expected = tmp_path / "no_age.csv", "missing column(s) 'age'"
        pd.read_csv(work / "houses.csv").drop(columns="age").to_csv(data, index=False)
    else:
        model, expected = "models:/houses@nobody", "models:/houses@nobody"
    runs_before = len(store.runs())
    done = run_cli("explain", "--model", model, "--data", data, "--json", "--tracking-uri", store.uri, cwd=work)
    assert done.returncode == 2, done.stderr[-3000:]
    assert expected in done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["exit_code"] == 2
    assert len(store.runs()) == runs_before


def test_the_explanation_config_explains_the_diabetes_champion(tmp_path):
    store = Store(tmp_path)
    for args in (["run", CONFS / "training.yaml", "-e", "job.model.max_iter=30", "-e", "job.figures=false"],
                 ["run", CONFS / "promotion.yaml"],
                 ["run", CONFS / "beyond" / "explanation.yaml", "-e", "job.max_rows=200"]):
        done = run_cli(*args, "--json", "--tracking-uri", store.uri, cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.splitlines()[-1])
    assert (summary["model_name"], summary["rows_explained"], summary["sampled"]) == ("diabetes", 200, True)
    assert set(summary["importance"]) == {"age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"}


def post(base: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(f"{base}/invocations", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_serve_answers_refuses_a_missing_column_and_stops_on_sigterm(trained):
    work, store = trained
    server = subprocess.Popen([str(CLI), "serve", "--model", "models:/houses@champion", "--port", "0", "--json",
                               "--tracking-uri", store.uri], cwd=work, env=cli_env(), text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        ready, _, _ = select.select([server.stdout], [], [], 120)
        line = server.stdout.readline() if ready else ""
        assert line.startswith("serving models:/houses@champion at http://127.0.0.1:"), server.stderr.read()[-3000:]
        base = line.split(" at ")[1].split()[0]
        rows = json.loads(pd.read_csv(work / "houses.csv").drop(columns=TARGET).head(4).to_json(orient="records"))
        status, answer = post(base, {"dataframe_records": rows})
        assert status == 200 and len(answer["predictions"]) == 4
        status, answer = post(base, {"dataframe_records": [{k: v for k, v in row.items() if k != "age"} for row in rows]})
        assert status == 400 and answer["columns"] == ["age"]
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
        assert json.loads(server.stdout.read().splitlines()[-1])["stopped_by"] == "SIGTERM"
    finally:
        if server.poll() is None:
            server.kill()
