"""The `regression-lab` command line, run as a real subprocess against real MLflow stores."""

from __future__ import annotations

import configparser
import json
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from conftest import CLI, CONFS, ROOT, TARGET, Store, cli_env, run_cli, synthetic_table

SUMMARY_KEYS = {"run_id", "metrics", "model_uri", "registered_model_name", "model_version"}


def json_summary(done) -> dict:
    "The one JSON line a successful `--json` command prints, after checking stdout holds nothing else."
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout
    summary = json.loads(lines[-1])
    assert SUMMARY_KEYS <= set(summary)
    return summary


def write(folder, name: str, text: str):
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


# ================================================================================================ successful runs

def test_train_json_prints_one_json_line_and_tracks_the_run(store, tmp_path):
    # when: training on the bundled diabetes data
    done = run_cli("train", "--json", "--tracking-uri", store.uri, cwd=tmp_path)
    # then: stdout is exactly one JSON line describing a run that the store holds
    summary = json_summary(done)
    assert summary["job"] == "TrainingJob"
    assert sorted(summary["metrics"]) == ["mae", "mape", "r2", "rmse"]
    assert summary["registered_model_name"] == "regression_lab"
    run = store.client().get_run(summary["run_id"])
    assert run.info.status == "FINISHED"
    # (the default service also has MLflow's scikit-learn autologging add its own training_* metrics)
    assert {name: run.data.metrics[name] for name in summary["metrics"]} == pytest.approx(summary["metrics"])
    versions = store.model_versions("regression_lab")
    assert [(int(version.version), version.run_id) for version in versions] == [
        (summary["model_version"], summary["run_id"])]
    # then: nothing was written to the working folder, since the store lives elsewhere
    assert list(tmp_path.iterdir()) == []


def test_train_on_a_csv_file_with_a_named_model(store, csv_file, tmp_path):
    # when: training a ridge model on a synthetic CSV, with an override
    done = run_cli("train", "--data", csv_file, "--target", TARGET, "--model", "ridge", "--json",
                   "--registry-name", "houses-cli", "-e", "job.model.alpha=0.5", "--tracking-uri", store.uri,
                   cwd=tmp_path)
    # then
    summary = json_summary(done)
    assert summary["registered_model_name"] == "houses-cli"
    assert summary["model_version"] == 1
    params = store.client().get_run(summary["run_id"]).data.params
    assert params["model.KIND"] == "RidgeModel"
    assert params["model.alpha"] == "0.5"
    assert summary["metrics"]["r2"] > 0.8


LIFECYCLE_ORDER = ["training.yaml", "training_random_forest.yaml", "tuning.yaml", "training_tuned.yaml",
                   "promotion.yaml", "inference.yaml", "evaluation.yaml"]


def test_every_shipped_config_is_in_the_lifecycle_order():
    assert sorted(path.name for path in CONFS.glob("*.yaml")) == sorted(LIFECYCLE_ORDER)


def test_shipped_configs_run_as_a_lifecycle(tmp_path_factory):
    # given: one store and one working folder (for optuna.db and predictions.csv) shared by every config
    store, work = Store(tmp_path_factory.mktemp("lifecycle-store")), tmp_path_factory.mktemp("lifecycle-work")
    summaries = {}
    for name in LIFECYCLE_ORDER:
        # when: each config runs in order, as a user following the README would
        done = run_cli("run", CONFS / name, "--json", "--tracking-uri", store.uri, cwd=work)
        assert done.returncode == 0, (name, done.stderr[-3000:])
        summaries[name] = json.loads(done.stdout.splitlines()[-1])
    # then: training registered its models, tuning filled its study, the tuned model used the study's best
    assert summaries["training.yaml"]["registered_model_name"] == "diabetes"
    assert summaries["training_random_forest.yaml"]["registered_model_name"] == "diabetes-forest"
    assert summaries["tuning.yaml"]["n_trials"] == 12
    tuned_params = store.client().get_run(summaries["training_tuned.yaml"]["run_id"]).data.params
    for param, value in summaries["tuning.yaml"]["best_params"].items():
        assert float(tuned_params[f"model.{param}"]) == pytest.approx(value)
    # then: the champion is the tuned model (the latest diabetes version), used by inference and evaluation
    assert summaries["promotion.yaml"] == {**summaries["promotion.yaml"], "alias": "champion",
                                           "version": summaries["training_tuned.yaml"]["model_version"]}
    assert summaries["inference.yaml"]["rows"] == 442
    assert (work / "predictions.csv").read_text().count("\n") == 443
    assert summaries["evaluation.yaml"]["passed"] is True
    for summary in summaries.values():
        if "run_id" in summary:
            assert store.client().get_run(summary["run_id"]).info.status == "FINISHED"


def test_override_is_visible_in_the_run_params(store, tmp_path):
    # when
    done = run_cli("run", CONFS / "training.yaml", "-e", "job.model.learning_rate=0.2", "-e", "job.model.max_iter=30",
                   "--experiment", "overrides", "--json", "--tracking-uri", store.uri, cwd=tmp_path)
    # then
    summary = json_summary(done)
    run = store.client().get_run(summary["run_id"])
    assert run.data.params["model.learning_rate"] == "0.2"
    assert run.data.params["model.max_iter"] == "30"
    assert store.client().get_experiment(run.info.experiment_id).name == "overrides"


def test_human_output_names_the_run_and_the_ui_command(store, tmp_path):
    # when: without --json, a run prints a readable summary
    done = run_cli("train", "--model", "RidgeModel", "--registry-name", "human", "--tracking-uri", store.uri,
                   cwd=tmp_path)
    # then
    assert done.returncode == 0, done.stderr[-3000:]
    assert "TrainingJob finished: run " in done.stdout
    assert "registered model: human version 1" in done.stdout
    assert f"mlflow ui --backend-store-uri {store.uri}" in done.stdout


# ================================================================================================ bad input: exit 2

def _text_target_csv(tmp_path):
    path = tmp_path / "houses.csv"
    synthetic_table(rows=200).to_csv(path, index=False)
    return ["train", "--data", path, "--target", "condition"]


def _wrong_field_config(tmp_path):
    config = write(tmp_path, "wrong.yaml", """\
        job:
          KIND: TrainingJob
          inputs: {KIND: DatasetReader, drop: [target]}
          targets: {KIND: DatasetReader, columns: [target]}
          model: {KIND: RidgeModel, alpha: plenty}
        """)
    return ["run", config]


BAD_INPUTS = {
    # case: (arguments, a fragment the message must hold, whether it fails before any service starts)
    "missing config file": (lambda tmp_path: ["run", tmp_path / "nowhere.yaml"], "nowhere.yaml", True),
    "data without target": (lambda tmp_path: ["train", "--data", tmp_path / "houses.csv"], "--target", True),
    "unknown model": (lambda tmp_path: ["train", "--model", "deep_forest"], "'deep_forest'", True),
    "config with a wrong field": (_wrong_field_config, "job.model.alpha", True),
    "unparsable override for train": (lambda tmp_path: ["train", "-e", "job.model.learning_rate=[0.2"],
                                      "job.model.learning_rate=[0.2", True),
    "unparsable override for run": (lambda tmp_path: ["run", CONFS / "training.yaml", "-e", "job.model.max_iter=[5"],
                                    "job.model.max_iter=[5", True),
    "unknown schema kind": (lambda tmp_path: ["schema", "NoSuchKind"], "'NoSuchKind'", True),
    "csv with a text target": (_text_target_csv, "'condition'", False),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_exits_2_with_one_line_and_registers_nothing(case, tmp_path):
    make_arguments, fragment, early = BAD_INPUTS[case]
    local = Store(tmp_path / "store")
    local.folder.mkdir()
    arguments = make_arguments(tmp_path)
    options = [] if arguments[0] == "schema" else ["--tracking-uri", local.uri]
    # when
    done = run_cli(*arguments, *options, cwd=tmp_path)
    # then: exit code 2 and one line of explanation, no traceback
    assert done.returncode == 2, (done.returncode, done.stderr[-3000:])
    assert "Traceback" not in done.stderr
    messages = [line for line in done.stderr.splitlines() if line.startswith("regression-lab:")]
    assert len(messages) == 1, done.stderr
    assert messages[0].startswith("regression-lab: bad input: ")
    assert fragment in messages[0]
    if early:  # nothing else ran, so nothing else was said
        assert done.stderr.strip().splitlines() == messages
    assert done.stdout == ""
    # then: no run, no registered model
    assert local.runs() == []
    assert local.model_versions() == []


def test_bad_input_with_json_also_prints_the_error_as_json(tmp_path):
    done = run_cli("run", tmp_path / "nowhere.yaml", "--json", cwd=tmp_path)
    assert done.returncode == 2
    error = json.loads(done.stdout.splitlines()[-1])
    assert error["exit_code"] == 2
    assert "nowhere.yaml" in error["error"]


def test_debug_shows_the_traceback(tmp_path):
    done = run_cli("run", tmp_path / "nowhere.yaml", "--debug", cwd=tmp_path)
    assert done.returncode == 2
    assert "Traceback (most recent call last)" in done.stderr
    assert "ConfigError" in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("regression-lab: bad input: ")


# ================================================================================================ failing job: exit 1

def test_job_failing_while_running_exits_1_and_registers_nothing(store, tmp_path):
    # given: a user module with a registry that fails, imported by the config
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    write(plugins, "broken_registry.py", """\
        import typing as T
        from regression_lab.registries import MlflowRegister

        class BrokenRegister(MlflowRegister):
            KIND: T.Literal["BrokenRegister"] = "BrokenRegister"

            def register(self, name, model_uri):
                raise RuntimeError("the model registry is down")
        """)
    config = write(tmp_path, "failing.yaml", """\
        imports: [broken_registry]
        job:
          KIND: TrainingJob
          run_config: {name: failing-cli, log_system_metrics: false}
          inputs: {KIND: DatasetReader, drop: [target]}
          targets: {KIND: DatasetReader, columns: [target]}
          model: {KIND: RidgeModel}
          registry: {KIND: BrokenRegister}
          mlflow_service: {registry_name: failing-cli}
        """)
    # when
    done = run_cli("run", config, "--tracking-uri", store.uri, cwd=tmp_path, env=cli_env(PYTHONPATH=str(plugins)))
    # then: exit code 1, the error named on stderr
    assert done.returncode == 1, (done.returncode, done.stderr[-3000:])
    assert "regression-lab: job failed: RuntimeError: the model registry is down" in done.stderr
    # then: the run is FAILED and nothing was registered
    runs = [run for run in store.runs() if run.info.run_name == "failing-cli"]
    assert [run.info.status for run in runs] == ["FAILED"]
    assert store.model_versions("failing-cli") == []


# ================================================================================================ schema, version

def test_schema_prints_the_config_schema_with_training_job(tmp_path):
    done = run_cli("schema", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    schema = json.loads(done.stdout)
    assert "TrainingJob" in schema["$defs"]
    assert {"$ref": "#/$defs/TrainingJob"} in schema["properties"]["job"]["oneOf"]
    assert schema["required"] == ["job"]


def test_schema_of_one_kind(tmp_path):
    done = run_cli("schema", "RidgeModel", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 1
    schema = json.loads(done.stdout)
    assert schema["title"] == "RidgeModel"
    assert "alpha" in schema["properties"]


def test_version(tmp_path):
    settings = configparser.ConfigParser()
    settings.read(ROOT / "settings.ini")
    done = run_cli("--version", cwd=tmp_path)
    assert done.returncode == 0
    assert done.stdout.strip() == f"regression-lab {settings['DEFAULT']['version']}"


# ================================================================================================ the fit in a fork

def children_of(pid: int) -> list[int]:
    "The processes `pid` started that still exist (Linux: /proc)."
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in children.read_text().split()] if children.exists() else []


def test_sigterm_while_the_fork_fits_stops_both_processes_and_fails_the_run(store, tmp_path):
    # given: a training whose fit, in the forked child, takes long enough to be interrupted
    synthetic_table(rows=3000, seed=5).to_csv(tmp_path / "slow.csv", index=False)
    log = tmp_path / "slow.log"
    with log.open("w") as err:
        process = subprocess.Popen(
            [str(CLI), "train", "--data", "slow.csv", "--target", TARGET, "--model", "random_forest",
             "-e", "job.model.n_estimators=3000", "-e", "job.run_config.name=fork-sigterm",
             "--registry-name", "fork-sigterm", "--tracking-uri", store.uri],
            cwd=tmp_path, env=cli_env(), stdout=subprocess.DEVNULL, stderr=err)
        try:
            deadline = time.monotonic() + 120
            while "[2/11]" not in log.read_text() and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)  # the run is open and the fit runs in the child
            (child,) = children_of(process.pid)
            # when
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=60)
        finally:
            process.kill()
    # then: the command says it was stopped, its child is gone with it, and the run is not left RUNNING
    assert code == 130, log.read_text()[-3000:]
    assert not Path(f"/proc/{child}").exists(), "the forked fit outlived the command"
    assert [run.info.status for run in store.runs() if run.info.run_name == "fork-sigterm"] == ["FAILED"]
    assert store.model_versions("fork-sigterm") == []


def test_a_fit_failing_in_the_fork_exits_1_with_its_error(store, tmp_path):
    # given: 300 rows, so 240 train rows, and a model asking for 1,000 neighbours: predicting fails in the child
    synthetic_table(rows=300, seed=6).to_csv(tmp_path / "small.csv", index=False)
    # when
    done = run_cli("train", "--data", "small.csv", "--target", TARGET, "--model", "k_neighbors",
                   "-e", "job.model.n_neighbors=1000", "-e", "job.run_config.name=fork-fails",
                   "--registry-name", "fork-fails", "--tracking-uri", store.uri, cwd=tmp_path)
    # then: exit 1 with the child's error; the log holds where it was raised; the run FAILED, nothing registered
    assert done.returncode == 1, done.stderr[-3000:]
    assert "regression-lab: job failed: ValueError: Expected n_neighbors <= n_samples_fit" in done.stderr
    assert "raised in the forked child" in done.stderr
    assert [run.info.status for run in store.runs() if run.info.run_name == "fork-fails"] == ["FAILED"]
    assert store.model_versions("fork-fails") == []
