"""TrainingJob end to end on synthetic tables, checked in a real MLflow store; bad inputs rejected before a run."""

from __future__ import annotations

import json
import typing as T

import numpy as np
import pandas as pd
import pytest

from regression_lab.core import DataError, InputError
from regression_lab.data import CsvReader, ParquetReader, Reader
from regression_lab.jobs import TrainingJob, TrainingLocals
from regression_lab.models import HistGradientBoostingModel, RidgeModel
from regression_lab.registries import MlflowRegister
from regression_lab.services import AlertsService, LoggerService, MlflowService

from conftest import INPUT_COLUMNS, TARGET


def training_job(store, inputs: Reader, targets: Reader, registry_name: str, run_name: str = "training",
                 **fields) -> TrainingJob:
    "A fast training job with quiet services on `store`."
    fields.setdefault("model", HistGradientBoostingModel(max_iter=20))
    return TrainingJob(
        inputs=inputs, targets=targets,
        run_config=MlflowService.RunConfig(name=run_name, log_system_metrics=False),
        logger_service=LoggerService(colorize=False, level="INFO"),
        alerts_service=AlertsService(enable=False),
        mlflow_service=store.service(experiment_name="training", registry_name=registry_name),
        **fields)


def run_job(job: TrainingJob) -> TrainingLocals:
    with job:
        return job.run()


@pytest.fixture(scope="module")
def parquet_file(tmp_path_factory, table):
    path = tmp_path_factory.mktemp("data") / "houses.parquet"
    table.to_parquet(path, index=False)
    return path


@pytest.fixture(scope="module")
def csv_result(store, csv_file) -> TrainingLocals:
    "One training run on the CSV table: inputs and targets both read from the one file."
    job = training_job(store, CsvReader(path=str(csv_file), drop=[TARGET]),
                       CsvReader(path=str(csv_file), columns=[TARGET]), registry_name="houses-csv",
                       run_name="from-csv")
    return run_job(job)


# ================================================================================================ a good run

def test_csv_training_run_finishes(store, csv_result):
    run = store.client().get_run(csv_result.run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "from-csv"
    assert run.info.experiment_id == csv_result.experiment_id
    assert run.data.tags["regression_lab.job"] == "TrainingJob"


def test_csv_training_run_logs_inputs_and_targets_as_datasets(store, csv_result, csv_file):
    run = store.client().get_run(csv_result.run_id)
    contexts = {}
    for dataset_input in run.inputs.dataset_inputs:
        tags = {tag.key: tag.value for tag in dataset_input.tags}
        contexts[tags["mlflow.data.context"]] = dataset_input.dataset
    assert sorted(contexts) == ["inputs", "targets"]
    for dataset in contexts.values():
        assert str(csv_file.resolve()) in dataset.source
        assert json.loads(dataset.profile)["num_rows"] == 2000
    assert [column["name"] for column in json.loads(contexts["inputs"].schema)["mlflow_colspec"]] == INPUT_COLUMNS
    assert [column["name"] for column in json.loads(contexts["targets"].schema)["mlflow_colspec"]] == [TARGET]


def test_csv_training_run_logs_the_returned_metrics(store, csv_result):
    run = store.client().get_run(csv_result.run_id)
    assert sorted(csv_result.metrics) == ["mae", "mape", "r2", "rmse"]
    assert run.data.metrics == pytest.approx(csv_result.metrics, rel=1e-12)
    # the synthetic target is a function of the inputs: a fitted model explains most of it
    assert csv_result.metrics["r2"] > 0.8


def test_csv_training_run_logs_model_params(store, csv_result):
    params = store.client().get_run(csv_result.run_id).data.params
    assert params["model.KIND"] == "HistGradientBoostingModel"
    assert params["model.max_iter"] == "20"
    assert params["splitter.KIND"] == "TrainTestSplitter"


def test_csv_training_model_has_a_signature_naming_the_input_columns(csv_result):
    import mlflow
    signature = mlflow.models.get_model_info(csv_result.model_uri).signature
    assert signature is not None
    assert signature.inputs.input_names() == INPUT_COLUMNS
    assert csv_result.signature.inputs.input_names() == INPUT_COLUMNS


def test_csv_training_run_logs_the_figures(store, csv_result, tmp_path):
    client = store.client()
    paths = sorted(artifact.path for artifact in client.list_artifacts(csv_result.run_id, "figures"))
    assert paths == ["figures/predicted_vs_actual.png", "figures/residuals.png"]
    for path in paths:
        local = client.download_artifacts(csv_result.run_id, path, str(tmp_path))
        with open(local, "rb") as image:
            assert image.read(8) == b"\x89PNG\r\n\x1a\n"


def test_csv_training_registers_a_version_that_loads_and_predicts(store, csv_result, table):
    import mlflow
    # then: the registry holds the version the job returned
    versions = store.model_versions("houses-csv")
    assert [int(version.version) for version in versions] == [csv_result.model_version] == [1]
    assert versions[0].run_id == csv_result.run_id
    # then: it loads by registry URI and predicts rows with missing inputs like the returned pipeline does
    mlflow.set_tracking_uri(store.uri)
    mlflow.set_registry_uri(store.uri)
    model = mlflow.pyfunc.load_model(f"models:/{csv_result.registered_model_name}/{csv_result.model_version}")
    rows = table[INPUT_COLUMNS].head(50)
    assert rows.isna().any().any()
    predictions = np.asarray(model.predict(rows))
    assert predictions.shape == (50,)
    assert np.isfinite(predictions).all()
    np.testing.assert_allclose(predictions, csv_result.model.predict(rows))


def test_training_locals_read_as_mapping_and_summary(csv_result):
    assert csv_result["run_id"] == csv_result.run_id
    assert csv_result.registered_model_name == "houses-csv"
    summary = csv_result.summary()
    assert sorted(summary) == ["metrics", "model_uri", "model_version", "registered_model_name", "run_id"]
    json.dumps(summary)  # JSON-friendly


def test_parquet_training_run_is_tracked_and_registered(store, parquet_file, table):
    import mlflow
    # given: the same table, from Parquet, with a ridge model
    job = training_job(store, ParquetReader(path=str(parquet_file), drop=[TARGET]),
                       ParquetReader(path=str(parquet_file), columns=[TARGET]), registry_name="houses-parquet",
                       run_name="from-parquet", model=RidgeModel())
    # when
    result = run_job(job)
    # then
    run = store.client().get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics == pytest.approx(result.metrics, rel=1e-12)
    assert run.data.params["model.KIND"] == "RidgeModel"
    contexts = sorted(tag.value for dataset_input in run.inputs.dataset_inputs for tag in dataset_input.tags
                      if tag.key == "mlflow.data.context")
    assert contexts == ["inputs", "targets"]
    assert mlflow.models.get_model_info(result.model_uri).signature.inputs.input_names() == INPUT_COLUMNS
    assert [int(version.version) for version in store.model_versions("houses-parquet")] == [result.model_version]
    mlflow.set_registry_uri(store.uri)
    model = mlflow.pyfunc.load_model(f"models:/houses-parquet/{result.model_version}")
    assert np.isfinite(np.asarray(model.predict(table[INPUT_COLUMNS].head(20)))).all()


# ================================================================================================ bad inputs

def _write(folder, name: str, frame: pd.DataFrame):
    path = folder / name
    frame.to_csv(path, index=False)
    return path


def _header_only(folder, table):
    path = _write(folder, "header-only.csv", table.head(0))
    return CsvReader(path=str(path), drop=[TARGET]), CsvReader(path=str(path), columns=[TARGET]), ["header-only.csv"]


def _missing_target_column(folder, table):
    path = _write(folder, "houses.csv", table)
    return (CsvReader(path=str(path), drop=[TARGET]), CsvReader(path=str(path), columns=["sale_price"]),
            ["'sale_price'", "houses.csv"])


def _missing_drop_column(folder, table):
    path = _write(folder, "houses.csv", table)
    return (CsvReader(path=str(path), drop=[TARGET, "garage"]), CsvReader(path=str(path), columns=[TARGET]),
            ["'garage'", "houses.csv"])


def _text_target(folder, table):
    path = _write(folder, "houses.csv", table)
    return (CsvReader(path=str(path), drop=[TARGET, "condition"]), CsvReader(path=str(path), columns=["condition"]),
            ["'condition'", "not numeric", "houses.csv"])


def _missing_target_values(folder, table):
    holes = table.copy()
    holes.loc[[3, 17, 99], TARGET] = np.nan
    path = _write(folder, "holes.csv", holes)
    return (CsvReader(path=str(path), drop=[TARGET]), CsvReader(path=str(path), columns=[TARGET]),
            [f"'{TARGET}'", "3 missing", "holes.csv"])


def _different_lengths(folder, table):
    path = _write(folder, "houses.csv", table)
    return (CsvReader(path=str(path), drop=[TARGET]), CsvReader(path=str(path), columns=[TARGET], limit=100),
            ["2000", "100", "houses.csv"])


def _file_not_found(folder, table):
    path = folder / "nowhere.csv"
    return CsvReader(path=str(path), drop=[TARGET]), CsvReader(path=str(path), columns=[TARGET]), ["nowhere.csv"]


BAD_INPUTS: dict[str, T.Callable] = {
    "header-only CSV": _header_only,
    "missing column in columns": _missing_target_column,
    "missing column in drop": _missing_drop_column,
    "non-numeric target": _text_target,
    "missing target values": _missing_target_values,
    "inputs and targets of different lengths": _different_lengths,
    "file not found": _file_not_found,
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_raises_data_error_before_any_run(case, store, table, tmp_path):
    import mlflow
    # given: a job on data that cannot train a model
    inputs, targets, expected = BAD_INPUTS[case](tmp_path, table)
    job = training_job(store, inputs, targets, registry_name="never-registered", run_name="bad-input")
    runs_before, versions_before = len(store.runs()), len(store.model_versions())
    # when / then: a DataError (an InputError) whose message names the column or file
    with pytest.raises(DataError) as caught:
        run_job(job)
    assert isinstance(caught.value, InputError)
    for fragment in expected:
        assert fragment in str(caught.value)
    # then: no run was created and nothing was registered
    assert len(store.runs()) == runs_before
    assert len(store.model_versions()) == versions_before
    assert store.model_versions("never-registered") == []
    assert mlflow.active_run() is None


def test_bad_input_on_a_new_store_writes_nothing(table, tmp_path):
    # given: a job on a file that does not exist, pointed at a store that does not exist yet
    folder = tmp_path / "store"
    folder.mkdir()
    inputs, targets, _ = _file_not_found(tmp_path, table)
    job = TrainingJob(inputs=inputs, targets=targets, logger_service=LoggerService(colorize=False, level="INFO"),
                      alerts_service=AlertsService(enable=False),
                      mlflow_service=MlflowService(tracking_uri=f"sqlite:///{folder}/mlflow.db"))
    # when / then: the input error comes from entering the job
    with pytest.raises(DataError, match="nowhere.csv"):
        with job:
            job.run()
    # then: no mlflow.db, no mlruns/ folder
    assert list(folder.iterdir()) == []


# ================================================================================================ autologging

def test_the_jobs_own_fit_is_not_autologged_and_autologging_stays_on_for_user_code(store, csv_file):
    import mlflow
    from sklearn.linear_model import LinearRegression
    # given: a job whose MLflow service switches scikit-learn autologging on
    job = training_job(store, CsvReader(path=str(csv_file), drop=[TARGET]),
                       CsvReader(path=str(csv_file), columns=[TARGET]), registry_name="houses-autolog",
                       run_name="autolog-on", model=RidgeModel())
    job = job.model_copy(update={"mlflow_service": store.service(experiment_name="autolog", autolog_disable=False)})
    with job:
        result = job.run()
        runs_after_job = store.runs()
        # when: the user's own code fits a model while the services are on
        with mlflow.start_run(run_name="user-fit") as user_run:
            LinearRegression().fit([[0.0], [1.0], [2.0]], [0.0, 1.0, 2.0])
    # then: the job's run holds the job's own parameters and metrics only (no autologged estimator params or
    # training scores), and the job opened no other run
    run = store.client().get_run(result.run_id)
    assert not any(name.startswith("training_") for name in run.data.metrics)
    assert set(run.data.metrics) == {"rmse", "mae", "r2", "mape"}
    assert all(name.startswith(("model.", "splitter.")) for name in run.data.params)
    assert [r.info.run_name for r in runs_after_job if r.info.experiment_id == run.info.experiment_id] == ["autolog-on"]
    # then: the user's fit was autologged
    user = store.client().get_run(user_run.info.run_id)
    assert "training_score" in user.data.metrics
    assert "fit_intercept" in user.data.params


# ================================================================================================ failing after the run started

class FailingRegister(MlflowRegister):
    "A registry that is down."
    KIND: T.Literal["FailingRegister"] = "FailingRegister"

    def register(self, name: str, model_uri: str):
        raise RuntimeError("the model registry is down")


def test_failure_after_the_run_started_marks_it_failed_and_registers_nothing(store, csv_file):
    import mlflow
    # given: a job whose registration step fails
    job = training_job(store, CsvReader(path=str(csv_file), drop=[TARGET]),
                       CsvReader(path=str(csv_file), columns=[TARGET]), registry_name="houses-failing",
                       run_name="failing-register", model=RidgeModel(), registry=FailingRegister())
    # when / then: the error is re-raised
    with pytest.raises(RuntimeError, match="the model registry is down"):
        run_job(job)
    # then: the run exists and is FAILED; no version of the model was registered
    runs = [run for run in store.runs() if run.info.run_name == "failing-register"]
    assert [run.info.status for run in runs] == ["FAILED"]
    assert store.model_versions("houses-failing") == []
    assert mlflow.active_run() is None


def test_training_figures_plot_at_most_max_points():
    from regression_lab.jobs.training import training_figures
    # given: more test rows than a readable scatter shows
    actual = np.linspace(0.0, 1.0, 5000)
    figures = training_figures(actual, actual * 0.9, max_points=1000)
    # then: both figures are there, each scatter drawing a sample of 1000 points
    assert sorted(figures) == ["figures/predicted_vs_actual.png", "figures/residuals.png"]
    for figure in figures.values():
        (axes,) = figure.axes
        assert len(axes.collections[0].get_offsets()) == 1000
    # and a small table is drawn in full
    small = training_figures(actual[:300], actual[:300])
    assert len(small["figures/residuals.png"].axes[0].collections[0].get_offsets()) == 300
