"""The job builder and the runs browser, driven as a user would: widget values set, buttons clicked.

Every run goes to a real SQLite MLflow store in a temporary folder, and what the form promised is checked there:
the run's status, parameters, metrics and tags, and the YAML export run by the `regression-lab` command.
"""

from __future__ import annotations

import html
import json
import time
import typing as T

import numpy as np
import pandas as pd
import pytest
import yaml

from regression_lab.configs import load_config, parse_job
from regression_lab.core import ConfigError
from regression_lab.data import CsvReader, DatasetReader
from regression_lab.jobs import PromotionJob, TrainingJob, TuningJob
from regression_lab.metrics import Metric
from regression_lab.models import Model, RandomForestModel
from regression_lab.widgets.runs_browser import _SHADE, RunsBrowser, compare_runs, runs_frame
from regression_lab.widgets import JobBuilder, JobStopped

from conftest import INPUT_COLUMNS, TARGET, cli_env, run_cli


# ================================================================================================ helpers

def builder_on(store, csv_file=None, experiment: str = "widgets", **values) -> JobBuilder:
    "A training-job builder on `store` (reading `csv_file` when given), quiet, with `values` set by dotted path."
    builder = JobBuilder(TrainingJob, tracking_uri=store.uri, experiment=experiment)
    if csv_file is not None:
        builder.control("data").value = "CsvReader"
        builder.control("data.path").value = str(csv_file)
        builder.control("data.target").value = TARGET
    builder.control("alerts_service.enable").value = False
    builder.control("run_config.log_system_metrics").value = False
    for path, value in values.items():
        builder.control(path.replace("__", ".")).value = value
    return builder


def click_and_wait(builder: JobBuilder, timeout: float = 240):
    builder.run_button.click()
    return builder.wait(timeout)


def panel(builder: JobBuilder, css: str) -> list:
    "The widgets of the results panel (one level down too) with CSS class `css`."
    found = []
    for widget in builder.panel.results.children:
        for item in [widget, *getattr(widget, "children", ())]:
            if css in item._dom_classes:
                found.append(item)
    return found


def experiment_runs(store, experiment: str) -> list:
    found = store.client().get_experiment_by_name(experiment) if store.database.exists() else None
    return store.client().search_runs([found.experiment_id]) if found else []


class SlowFitModel(Model):
    "A model that sleeps through its fit (in short naps, logging each one when `chatty`): room to press Stop."
    KIND: T.Literal["SlowFitModel"] = "SlowFitModel"
    seconds: float = 60.0
    chatty: bool = False

    def regressor(self):
        from sklearn.linear_model import Ridge
        model, seconds, chatty = Ridge(), self.seconds, self.chatty

        class Slow(type(model)):
            def fit(self, X, y, sample_weight=None):
                from loguru import logger
                deadline = time.monotonic() + seconds
                while time.monotonic() < deadline:
                    if chatty:
                        logger.debug("still fitting")
                    time.sleep(0.05)
                return super().fit(X, y, sample_weight)
        return Slow()


@pytest.fixture()
def slow_model_kind():
    "`SlowFitModel` registered as a model kind for one test, then forgotten."
    Model.kinds["SlowFitModel"] = SlowFitModel
    yield SlowFitModel
    Model.kinds.pop("SlowFitModel", None)


# ================================================================================================ the form

def test_form_offers_every_registered_kind_with_its_own_fields(slow_model_kind):
    # given: a builder made after a new model kind was registered (no widget code knows about it)
    builder = JobBuilder(TrainingJob)
    model = builder.control("model")
    # then: the model dropdown lists every kind of the registry, and each kind brings exactly its own fields
    assert [value for _, value in model.options] == list(Model.kinds)
    for kind, cls in Model.kinds.items():
        model.value = kind
        shown = {field.path[-1] for field in builder.form.walk() if len(field.path) == 2 and field.path[0] == "model"}
        assert shown == set(cls.model_fields) - {"KIND"}, kind
    model.value = "SlowFitModel"
    builder.control("model.seconds").value = 0.5
    assert builder.value.model == SlowFitModel(seconds=0.5)
    # and: metrics offer every metric kind
    assert set(builder.control("metrics").boxes) == set(Metric.kinds)


def test_form_left_alone_is_the_job_of_the_train_command():
    builder = JobBuilder(TrainingJob)
    from regression_lab.cli import train_config
    assert builder.problems == [] and not builder.run_button.disabled
    assert builder.value == parse_job(train_config())


def test_target_is_chosen_from_the_columns_of_the_file(csv_file, tmp_path):
    builder = JobBuilder(TrainingJob)
    builder.control("data").value = "CsvReader"
    builder.control("data.path").value = str(csv_file)
    target = builder.control("data.target")
    # then: the target is offered among the file's own columns (the last one by default)
    assert list(target.options) == [*INPUT_COLUMNS, TARGET] and target.value == TARGET
    builder.control("data.ignore").value = ("rooms",)
    job = builder.value
    assert job.inputs == CsvReader(path=str(csv_file), drop=[TARGET, "rooms"])
    assert job.targets == CsvReader(path=str(csv_file), columns=[TARGET])
    # when: the path names a Parquet file, the reader follows, and the columns come from that file
    parquet = tmp_path / "other.parquet"
    pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"], "y": [3.0, 4.0]}).to_parquet(parquet)
    builder.control("data.path").value = str(parquet)
    assert builder.control("data").value == "ParquetReader"
    assert list(target.options) == ["a", "b", "y"] and target.value == "y"
    assert builder.value.targets.KIND == "ParquetReader"


def test_a_table_whose_last_column_is_text_opens_with_no_target_and_one_question(tmp_path):
    # given: a table nobody has used here, its last column text (as in the Carseats data)
    data = tmp_path / "car_seats.csv"
    pd.DataFrame({"Sales": [9.5, 11.2, 10.1, 7.4, 4.2], "Price": [120, 83, 80, 97, 128],
                  "ShelveLoc": ["Bad", "Good", "Medium", "Medium", "Bad"], "US": ["Yes", "Yes", "No", "Yes", "No"]}
                 ).to_csv(data, index=False)
    builder = JobBuilder(TrainingJob)
    # when: the user reads it
    builder.control("data").value = "CsvReader"
    builder.control("data.path").value = str(data)
    # then: no text target is chosen for them; the form asks once, naming the place as it labels it
    assert builder.control("data.target").value is None
    assert builder.problems == ["data → target: choose the target column"]
    # and: the registered model is named after the file
    assert builder.control("mlflow_service.registry_name").value == "car_seats"
    # when: a target is chosen, the columns offered to ignore follow
    builder.control("data.target").value = "Sales"
    assert builder.control("data.ignore").options == ("Price", "ShelveLoc", "US")
    builder.control("data.ignore").value = ("US",)
    builder.control("data.target").value = "Price"
    assert builder.control("data.ignore").options == ("Sales", "ShelveLoc", "US")
    assert builder.control("data.ignore").value == ("US",) and builder.problems == []
    # and: a typo in the path, fixed, keeps what was chosen
    builder.control("data.path").value = str(data).replace(".csv", ".cvs")
    assert builder.problems == [f"data: file not found: {str(data).replace('.csv', '.cvs')}"]
    builder.control("data.path").value = str(data)
    assert (builder.control("data.target").value, builder.control("data.ignore").value) == ("Price", ("US",))
    assert builder.value.targets.columns == ["Price"] and builder.value.inputs.drop == ["Price", "US"]


def test_labels_help_checkboxes_and_one_fold():
    builder = JobBuilder(TrainingJob)
    rows = builder.control("input_example_rows")
    assert rows.description == "input example rows"
    builder.control("model").value = "RidgeModel"
    intercept = builder.control("model.fit_intercept")
    assert type(intercept).__name__ == "Checkbox" and intercept.tooltip == "learn a constant term"
    assert type(builder.control("run_config.log_system_metrics")).__name__ == "Checkbox"
    folds = [w for w in builder.form.widget.children if type(w).__name__ == "Accordion"]
    assert len(folds) == 1 and folds[0].titles == ("More settings",)
    assert not any(type(w).__name__ == "Accordion" for w in builder.form.fields["mlflow_service"].widget.children)


def test_the_bar_with_run_stop_and_problems_comes_before_the_form():
    builder = JobBuilder(TrainingJob)
    bar = next(w for w in builder.children if "rl-builder-bar" in w._dom_classes)
    assert builder.children.index(bar) < builder.children.index(builder.children[-1])  # the form is below
    assert builder.panel.controls in bar.children and builder.messages in bar.children
    assert builder.run_button in builder.panel.controls.children
    stop = builder.panel.stop_button
    assert stop.disabled and stop.button_style == ""  # disabled, and not red


def test_saved_yaml_holds_absolute_data_paths(tmp_path, csv_file, monkeypatch):
    monkeypatch.chdir(csv_file.parent)
    builder = JobBuilder(TrainingJob, yaml_path=str(tmp_path / "job.yaml"))
    builder.control("data").value = "CsvReader"
    builder.control("data.path").value = csv_file.name  # relative to the notebook's folder
    builder.control("data.target").value = TARGET
    builder.save_button.click()
    config = yaml.safe_load((tmp_path / "job.yaml").read_text())["job"]
    assert config["inputs"]["path"] == config["targets"]["path"] == str(csv_file.resolve())
    monkeypatch.chdir(tmp_path)
    assert parse_job(load_config(tmp_path / "job.yaml")).inputs.path == str(csv_file.resolve())


INVALID = {
    "negative alpha": ({"model": "RidgeModel", "model.alpha": -1.0}, "model.alpha",
                       "model → alpha: Input should be greater than or equal to 0"),
    "test size of 1.5": ({"splitter.test_size": 1.5}, "splitter.test_size",
                         "splitter → test size: Input should be less than 1"),
    "depth in words": ({"model.max_depth": "deep"}, "model.max_depth",
                       "model → max depth: Input should be a valid integer"),
    "ten in an integer box": ({"model.max_iter": "ten"}, "model.max_iter",
                              "model → max iter: Input should be a valid integer"),
    "tags without =": ({"run_config.tags": "team"}, "run_config.tags",
                       "run config → tags: line 1: expected key=value, got 'team'"),
    "no metric": ({"metrics": ()}, "metrics", "metrics: List should have at least 1 item"),
    "missing file": ({"data.path": "/nowhere/houses.csv"}, "data", "data: file not found: /nowhere/houses.csv"),
    "text target": ({"data.target": "city"}, "data.target", "data → target: column 'city' is not numeric"),
}


@pytest.mark.parametrize("case", INVALID, ids=list(INVALID))
def test_invalid_values_show_messages_and_run_nothing(case, store, csv_file):
    values, field_path, message = INVALID[case]
    builder = builder_on(store, csv_file, experiment="invalid")
    runs_before = len(store.runs())
    # when: the user enters a value the job refuses
    for path, value in values.items():
        builder.control(path).value = value
    # then: the message is beside the field and in the messages area, Run is disabled, `value` raises
    assert any(line.startswith(message) for line in builder.problems), builder.problems
    text = message.split(": ", 1)[1]
    field = next(f for f in builder.form.walk() if ".".join(map(str, f.path)) == field_path and f.error.value)
    assert text in html.unescape(field.error.value)
    assert text in html.unescape(builder.messages.value)
    assert builder.run_button.disabled
    with pytest.raises(ConfigError) as raised:
        builder.value
    assert text in str(raised.value)
    # and: clicking Run anyway (or calling run) starts nothing: no thread, no MLflow run
    builder.run_button.click()
    assert not builder.running and builder.panel._thread is None
    assert text in html.unescape(builder.panel.status.value)
    with pytest.raises(ConfigError):
        builder.run()
    assert len(store.runs()) == runs_before


# ================================================================================================ running

@pytest.fixture(scope="module")
def ridge_run(store, csv_file):
    "One run from the form: CSV table, a ridge model, two metrics, a run name and tags, Run clicked."
    builder = builder_on(store, csv_file, experiment="form-runs", model="RidgeModel")
    builder.control("model.alpha").value = 2.5
    builder.control("metrics").value = ["RMSE", "R2"]
    builder.control("run_config.name").value = "ridge-from-widgets"
    builder.control("run_config.tags").value = "team=widgets\nticket=6"
    builder.control("mlflow_service.registry_name").value = "houses-widgets"
    seen = []
    builder.panel.progress.observe(lambda change: seen.append(change["new"]), names="value")
    result = click_and_wait(builder)
    return builder, result, seen


def test_run_button_trains_and_tracks_the_job(store, ridge_run, csv_file, tmp_path):
    builder, result, _ = ridge_run
    run = store.client().get_run(result.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "ridge-from-widgets"
    assert run.data.params["model.KIND"] == "RidgeModel" and run.data.params["model.alpha"] == "2.5"
    ours = {name: value for name, value in run.data.metrics.items() if not name.startswith("training_")}
    assert ours == result.metrics and set(ours) == {"rmse", "r2"}  # (training_* are sklearn autologging's)
    assert run.data.tags["team"] == "widgets" and run.data.tags["ticket"] == "6"
    job = json.loads(open(store.client().download_artifacts(result.run_id, "job.json", str(tmp_path))).read())
    assert job["inputs"]["path"] == str(csv_file) and job["inputs"]["drop"] == [TARGET]
    assert [int(version.version) for version in store.model_versions("houses-widgets")] == [1]
    assert builder.result is result and result.model_version == 1


def test_results_panel_shows_metrics_figures_ids_and_the_ui_command(store, ridge_run, tmp_path):
    builder, result, _ = ridge_run
    [metrics] = panel(builder, "rl-metrics")
    for name, value in result.metrics.items():
        assert f">{name}<" in metrics.value and f"{value:.4g}" in metrics.value
    figures = panel(builder, "rl-figure")
    logged = {artifact.path for artifact in store.client().list_artifacts(result.run_id, "figures")}
    assert set(builder.panel.figures) == logged == {"figures/predicted_vs_actual.png", "figures/residuals.png"}
    stored = [open(store.client().download_artifacts(result.run_id, path, str(tmp_path)), "rb").read()
              for path in sorted(logged)]
    assert [bytes(image.value) for image in figures] == stored and all(png.startswith(b"\x89PNG") for png in stored)
    text = " ".join(w.value for w in builder.panel.results.children if isinstance(getattr(w, "value", None), str))
    assert result.run_id in text and "version <b>1</b>" in text
    [ui] = panel(builder, "rl-ui")
    assert f"mlflow ui --backend-store-uri sqlite:///{store.database.resolve()}" in ui.value
    assert "finished" in builder.panel.status.value and not builder.running and not builder.run_button.disabled


def test_log_and_progress_follow_the_steps(ridge_run):
    builder, _, seen = ridge_run
    log = "".join(builder.panel.log_lines)
    assert all(f"[{step}/11]" in log for step in range(1, 12)), log
    assert "".join(output["text"] for output in builder.panel.log_output.outputs) == log
    assert seen == sorted(seen) and seen[-1] == 11 and len(set(seen)) >= 8
    assert (builder.panel.progress.value, builder.panel.progress.max, builder.panel.progress.bar_style) == (11, 11, "success")


def test_log_is_at_info_and_a_changed_invalid_form_hides_the_old_result(ridge_run):
    builder, result, _ = ridge_run
    log = "".join(builder.panel.log_lines)
    assert "DEBUG" not in log and "[START]" not in log, log
    assert panel(builder, "rl-metrics")
    builder.control("model.alpha").value = -1.0
    assert builder.panel.results.children == () and builder.panel.status.value == ""
    builder.control("model.alpha").value = 2.5
    assert builder.result is result  # the result stays for code; only the panel no longer shows it


def test_a_failing_job_ends_failed_and_says_why(store, tmp_path):
    # given: a file that is valid when the form checks it, and broken when the job reads it
    data = tmp_path / "vanishing.csv"
    pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, 5.0], "y": [1.0, 2.0, 3.0, 4.0, 5.0]}).to_csv(data, index=False)
    builder = builder_on(store, experiment="failing")
    builder.control("data").value = "CsvReader"
    builder.control("data.path").value = str(data)
    assert builder.problems == []
    data.write_text("x,y\n1.0,not a number\n")
    builder.run()
    with pytest.raises(Exception, match="target column 'y'"):
        builder.wait(120)
    assert "failed" in builder.panel.status.value and "target column" in builder.panel.status.value
    assert builder.result is None and builder.panel.progress.bar_style == "danger"
    assert not builder.run_button.disabled  # the form is still valid: try again


# ================================================================================================ stopping

@pytest.mark.parametrize("chatty", [False, True], ids=["busy-without-logging", "logging-as-it-fits"])
def test_stop_leaves_the_mlflow_run_failed(store, csv_file, slow_model_kind, chatty):
    # given: a job whose fit takes a minute, running
    experiment = f"stopped-{chatty}"
    builder = builder_on(store, csv_file, experiment=experiment, model="SlowFitModel")
    builder.control("model.chatty").value = chatty
    builder.control("mlflow_service.registry_name").value = f"never-{chatty}"
    builder.run_button.click()
    deadline = time.monotonic() + 120
    while not any("[3/11]" in line for line in builder.panel.log_lines):
        assert time.monotonic() < deadline and builder.running, builder.panel.status.value
        time.sleep(0.05)
    [run] = experiment_runs(store, experiment)
    assert run.info.status == "RUNNING"
    # when: Stop is clicked (logging job: stopped at its next log line, so a long grace is never used)
    started = time.monotonic()
    if chatty:
        builder.stop(grace=60)
    else:
        builder.panel.stop_button.click()
    with pytest.raises(JobStopped):
        builder.wait(60)
    # then: it stopped within seconds, the MLflow run ended FAILED, nothing was registered
    assert time.monotonic() - started < 10
    [run] = experiment_runs(store, experiment)
    assert run.info.status == "FAILED"
    assert store.model_versions(f"never-{chatty}") == []
    assert "stopped" in builder.panel.status.value and builder.panel.progress.bar_style == "warning"
    assert "[4/11]" not in "".join(builder.panel.log_lines)
    log = "".join(builder.panel.log_lines)
    assert "STOPPED" in log and "stopped by the user" in log and "ERROR" not in log and "failed" not in log, log
    assert builder.panel.stop_button.disabled and builder.panel.stop_button.button_style == ""
    # and: the builder can run again
    assert not builder.run_button.disabled and not builder.running


def test_stop_right_after_run_leaves_no_run_running(store, csv_file):
    builder = builder_on(store, csv_file, experiment="stopped-at-once")
    builder.run()
    builder.stop()
    with pytest.raises(JobStopped):
        builder.wait(120)
    assert all(run.info.status != "RUNNING" for run in experiment_runs(store, "stopped-at-once"))


# ================================================================================================ YAML

def test_export_runs_on_the_command_line_with_the_same_parameters(store, csv_file, tmp_path):
    # given: a job built in the form and run from it
    builder = builder_on(store, csv_file, experiment="exported", model="RandomForestModel")
    builder.control("model.n_estimators").value = 30
    builder.control("model.max_depth").value = "6"
    builder.control("splitter.test_size").value = 0.3
    builder.control("metrics").value = ["MAE", "R2"]
    builder.control("data.ignore").value = ("age",)
    builder.control("run_config.name").value = "from-the-form"
    from_form = click_and_wait(builder)
    # when: its YAML is saved with the Save button and run by the command
    builder.yaml_path.value = str(tmp_path / "exported.yaml")
    builder.save_button.click()
    assert "saved" in builder.yaml_status.value
    config = yaml.safe_load((tmp_path / "exported.yaml").read_text())
    assert config["job"]["model"] == {"KIND": "RandomForestModel", "n_estimators": 30, "max_depth": 6}
    done = run_cli("run", tmp_path / "exported.yaml", "-e", "job.run_config.name=from-the-command", "--json",
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    from_cli = json.loads(done.stdout.strip().splitlines()[-1])
    # then: both runs have the same parameters and, the splits and seeds being the same, the same metrics
    client = store.client()
    form_run, cli_run = client.get_run(from_form.run_id), client.get_run(from_cli["run_id"])
    assert cli_run.info.run_name == "from-the-command" and cli_run.info.status == "FINISHED"
    assert form_run.data.params == cli_run.data.params
    assert form_run.data.params["model.n_estimators"] == "30" and form_run.data.params["splitter.test_size"] == "0.3"
    assert {"mae", "r2"} <= form_run.data.metrics.keys() and "rmse" not in form_run.data.metrics
    assert form_run.data.metrics == pytest.approx(cli_run.data.metrics)
    assert from_cli["model_version"] == from_form.model_version + 1


def test_load_fills_the_form_and_saves_the_same_config(tmp_path, csv_file):
    # given: a config written by hand
    path = tmp_path / "by-hand.yaml"
    path.write_text(f"""
job:
  KIND: TrainingJob
  run_config: {{name: by-hand, tags: {{owner: me}}}}
  inputs: {{KIND: CsvReader, path: {csv_file}, drop: [{TARGET}, city]}}
  targets: {{KIND: CsvReader, path: {csv_file}, columns: [{TARGET}]}}
  model: {{KIND: RandomForestModel, n_estimators: 25, min_samples_leaf: 3}}
  metrics: [{{KIND: MAE}}, {{KIND: RMSE, name: root_mse}}]
  splitter: {{KIND: TimeSeriesSplitter, test_size: 0.25, sort_by: age}}
""")
    builder = JobBuilder(TrainingJob, yaml_path=str(path))
    # when: Load is clicked
    builder.load_button.click()
    assert "loaded" in builder.yaml_status.value, builder.yaml_status.value
    # then: the form shows it, field by field, and describes the same job
    assert builder.control("data").value == "CsvReader" and builder.control("data.path").value == str(csv_file)
    assert (builder.control("data.target").value, builder.control("data.ignore").value) == (TARGET, ("city",))
    assert builder.control("model").value == "RandomForestModel"
    assert (builder.control("model.n_estimators").value, builder.control("model.min_samples_leaf").value) == ("25", "3")
    assert builder.control("metrics").value == ("MAE", "RMSE")
    assert builder.control("splitter").value == "TimeSeriesSplitter"
    assert builder.control("splitter.sort_by").value == "age"
    assert builder.control("run_config.tags").value == "owner=me"
    expected = parse_job(load_config(path))
    assert builder.value == expected and builder.problems == []
    # and: saved again, it is the same config
    assert parse_job(yaml.safe_load(builder.to_yaml(tmp_path / "again.yaml"))) == expected
    other = JobBuilder(TrainingJob)
    other.load_yaml(tmp_path / "again.yaml")
    assert other.value == expected


def test_load_refuses_what_the_form_cannot_show(tmp_path, csv_file):
    builder = JobBuilder(TrainingJob)
    before = builder.value
    # another job kind
    (tmp_path / "promote.yaml").write_text("job: {KIND: PromotionJob, alias: best}\n")
    with pytest.raises(ConfigError, match="PromotionJob, but this builder builds TrainingJob"):
        builder.load_yaml(tmp_path / "promote.yaml")
    # inputs and targets from two different files
    (tmp_path / "two.yaml").write_text(
        f"job: {{KIND: TrainingJob, inputs: {{KIND: CsvReader, path: {csv_file}, drop: [{TARGET}]}},\n"
        f"       targets: {{KIND: CsvReader, path: /elsewhere.csv, columns: [{TARGET}]}}}}\n")
    with pytest.raises(ConfigError, match="not one table"):
        builder.load_yaml(tmp_path / "two.yaml")
    # an invalid config: the job's own message; and through the Load button, shown beside it
    (tmp_path / "bad.yaml").write_text("job: {KIND: TrainingJob, inputs: {KIND: DatasetReader}, "
                                       "targets: {KIND: DatasetReader}, model: {KIND: RidgeModel, alpha: -2}}\n")
    builder.yaml_path.value = str(tmp_path / "bad.yaml")
    builder.load_button.click()
    assert "job.model.alpha: Input should be greater than or equal to 0" in builder.yaml_status.value
    assert builder.value == before


# ================================================================================================ other jobs

def test_tuning_job_progress_counts_finished_trials(store, csv_file, tmp_path):
    builder = JobBuilder(TuningJob, tracking_uri=store.uri, experiment="tuning-widgets")
    builder.control("data").value = "CsvReader"
    builder.control("data.path").value = str(csv_file)
    builder.control("model").value = "RidgeModel"
    builder.control("splitter.n_splits").value = 2
    builder.control("n_trials").value = 3
    builder.control("store.url").value = f"sqlite:///{tmp_path / 'optuna.db'}"
    builder.control("alerts_service.enable").value = False
    seen = []
    builder.panel.progress.observe(lambda change: seen.append(change["new"]), names="value")
    result = click_and_wait(builder)
    assert result.n_trials == 3 and builder.panel.progress.max == 3 and seen[-1] == 3
    assert store.client().get_run(result.run_id).info.status == "FINISHED"
    [metrics] = panel(builder, "rl-metrics")
    assert all(name in metrics.value for name in result.best_metrics)
    assert "n_trials: 3" in builder.to_yaml()


def test_every_job_kind_gets_a_form_whose_yaml_is_the_same_job():
    from regression_lab.jobs import Job
    for kind, cls in Job.kinds.items():
        builder = JobBuilder(cls)
        if builder.problems:  # a required field without a default (InferenceJob's inputs): said, not guessed
            assert all(line.endswith("Field required") for line in builder.problems), (kind, builder.problems)
            continue
        assert parse_job(yaml.safe_load(builder.to_yaml())) == builder.value, kind


def test_any_job_class_gets_a_form():
    builder = JobBuilder(PromotionJob)
    builder.control("alias").value = "staging"
    builder.control("version").value = "3"
    assert builder.value == PromotionJob(alias="staging", version=3)
    builder.control("alias").value = "not an alias!"
    assert any(line.startswith("alias: String should match pattern") for line in builder.problems)


# ================================================================================================ runs browser

def test_runs_browser_lists_sorts_and_compares_runs(store, ridge_run):
    # given: three runs in an experiment: the form's ridge run, and two more with other settings
    builder, first, _ = ridge_run
    builder.control("model").value = "HistGradientBoostingModel"
    builder.control("model.max_iter").value = 20
    builder.control("run_config.name").value = "boosted-from-widgets"
    second = click_and_wait(builder)
    browser = RunsBrowser(store.uri, "form-runs")
    names = list(browser.frame["name"])
    assert names[:2] == ["boosted-from-widgets", "ridge-from-widgets"]
    # newest first as it opens, with the usual few columns (not autologging's dozens)
    assert list(browser.shown["name"])[:2] == ["boosted-from-widgets", "ridge-from-widgets"]
    assert len(browser.shown.columns) <= 30, list(browser.shown.columns)
    assert not any("__" in column for column in browser.shown.columns)
    # when: sorted by a metric, ascending
    browser.sort.value, browser.ascending.value = "metrics.rmse", True
    assert list(browser.shown["metrics.rmse"]) == sorted(browser.frame["metrics.rmse"])
    positions = [browser.table.value.index(f">{name}</td>") for name in browser.shown["name"]]
    assert positions == sorted(positions)
    # and: two runs are picked to compare
    browser.first.value, browser.second.value = first.run_id, second.run_id
    table = compare_runs(browser.frame, first.run_id, second.run_id)
    assert not table.loc["params.model.KIND", "same"] and f"background:{_SHADE}" in browser.comparison.value
    assert table.loc["params.model.KIND"].iloc[:2].tolist() == ["RidgeModel", "HistGradientBoostingModel"]
    assert "RidgeModel" in browser.comparison.value and "HistGradientBoostingModel" in browser.comparison.value
    # and: a pattern picks the columns, in the table and in the comparison (autologging adds dozens)
    autologged = [c for c in browser.frame.columns if "__" in c]  # sklearn autologging's (in a full run of the suite)
    assert not any(f">{c}<" in browser.comparison.value for c in autologged)  # by default, the usual few
    browser.columns.value = "__"
    assert all(f">{c}<" in browser.comparison.value for c in autologged if browser.frame[c].nunique(dropna=False) > 1)
    browser.columns.value = r"^params\.model\.KIND$|rmse$"
    assert "params.model.alpha" not in browser.table.value and "params.model.KIND" in browser.table.value
    assert "regressor__" not in browser.comparison.value and "metrics.rmse" in browser.comparison.value
    assert [c for c in browser.shown.columns if "." in c] == ["metrics.rmse", "params.model.KIND"]
    # and: a run made later appears on Refresh
    count = len(browser.frame)
    builder.control("run_config.name").value = "later"
    click_and_wait(builder)
    browser.refresh_button.click()
    assert len(browser.frame) == count + 1 and browser.frame["name"].iloc[0] == "later"


def test_runs_browser_on_a_missing_store_creates_nothing(tmp_path):
    browser = RunsBrowser(f"sqlite:///{tmp_path / 'none.db'}", "nothing")
    assert browser.frame.empty and "no runs" in browser.table.value
    assert not (tmp_path / "none.db").exists()
