"""ExplanationJob on a real MLflow store: SHAP values and permutation importance named after the table's own columns,
logged in a run that the model version points at, sampled on big tables, refusing bad input before any run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import INPUT_COLUMNS, TARGET, Store, synthetic_table

TAG = "regression_lab.explanation_run_id"


def services(store: Store) -> dict:
    from regression_lab.services import AlertsService, LoggerService
    return dict(logger_service=LoggerService(level="WARNING"), alerts_service=AlertsService(enable=False),
                mlflow_service=store.service(registry_name="houses"))


@pytest.fixture(scope="module")
def houses(tmp_path_factory):
    "Three versions of `houses` on a 1200-row synthetic table: 1 gradient boosting, 2 ridge, 3 a small forest."
    from regression_lab.data import CsvReader
    from regression_lab.jobs import TrainingJob
    folder = tmp_path_factory.mktemp("explain")
    store = Store(folder)
    synthetic_table(rows=1200, seed=5).to_csv(folder / "houses.csv", index=False)
    for model in ({"KIND": "HistGradientBoostingModel", "max_iter": 60}, {"KIND": "RidgeModel"},
                  {"KIND": "RandomForestModel", "n_estimators": 15, "max_depth": 6, "n_jobs": 1}):
        with TrainingJob(inputs=CsvReader(path=str(folder / "houses.csv"), drop=[TARGET]), model=model, figures=False,
                         targets=CsvReader(path=str(folder / "houses.csv"), columns=[TARGET]), **services(store)) as job:
            job.run()
    return store, folder / "houses.csv"


def explain(store: Store, data, target: bool = True, **settings):
    from regression_lab.data import CsvReader
    from regression_lab.jobs.explanation import ExplanationJob
    targets = CsvReader(path=str(data), columns=[TARGET]) if target else None
    with ExplanationJob(inputs=CsvReader(path=str(data), drop=[TARGET] if target else []), targets=targets,
                        **services(store), **settings) as job:
        return job.run()


def test_trees_explained_against_the_original_columns_and_kept_with_the_version(houses):
    store, data = houses
    # when: gradient boosting is explained with its target, on at most 500 of the 1200 rows
    result = explain(store, data, model_uri="models:/houses/1", max_rows=500)
    # then: TreeExplainer ran, on a sample that the result says is a sample
    assert (result.explainer, result.rows, result.rows_explained, result.sampled) == ("TreeExplainer", 1200, 500, True)
    assert "500 of 1,200 rows" in result.note
    # and: the table names the user's columns, one-hot columns folded back, both measures present
    assert sorted(result.importance.index) == sorted(INPUT_COLUMNS)
    assert list(result.importance.columns) == ["mean_abs_shap", "permutation_importance", "permutation_std"]
    assert result.importance.index[0] == "size" and result.importance.loc["city", "mean_abs_shap"] > 5
    assert list(result.shap_values.columns) == INPUT_COLUMNS and len(result.shap_values) == 500
    # and: the run is tagged with the model and the sample; the version points at the run
    client = store.client()
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert (tags["regression_lab.model_name"], tags["regression_lab.model_version"]) == ("houses", "1")
    assert (tags["regression_lab.sampled"], tags["regression_lab.rows_explained"]) == ("true", "500")
    assert client.get_model_version("houses", "1").tags[TAG] == result.run_id
    # and: the figure and the tables are artifacts; the CSV table is the result's table
    paths = sorted(artifact.path for artifact in client.list_artifacts(result.run_id, "explanation"))
    assert paths == ["explanation/importance.csv", "explanation/shap_values.csv", "explanation/summary.png"]
    logged = pd.read_csv(client.download_artifacts(result.run_id, "explanation/importance.csv"), index_col="column")
    assert np.allclose(logged.loc[result.importance.index].to_numpy(), result.importance.to_numpy())
    # and: the notebook view holds the sentence, the table and the figure
    html = result._repr_html_()
    assert result.note in html and "<table" in html and "data:image/png;base64," in html


def test_tree_shap_values_add_up_to_the_predictions(houses):
    import shap
    from regression_lab.jobs.explanation import tree_shap
    from regression_lab.jobs.lifecycle import load_model
    from regression_lab.registries import SklearnLoader
    store, data = houses
    service = store.service()
    service.start()  # points MLflow at the store to load the model
    try:
        pipeline = load_model(SklearnLoader(), "models:/houses/3")
    finally:
        service.stop()
    rows = pd.read_csv(data).drop(columns=TARGET).head(50)
    values = tree_shap(pipeline, rows)
    base = float(np.ravel(shap.TreeExplainer(pipeline[-1]).expected_value)[0])
    assert list(values.columns) == INPUT_COLUMNS
    assert np.allclose(base + values.sum(axis=1), pipeline.predict(rows), atol=1e-2)


def test_a_model_without_trees_gets_the_sampled_explainer(houses):
    store, data = houses
    # when: the ridge model is explained without a target
    result = explain(store, data, target=False, model_uri="models:/houses/2", sampled_rows=60, background_rows=30)
    # then: the sampled explainer ran on the sampled_rows bound; SHAP only; the columns are the user's
    assert (result.explainer, result.rows_explained, result.sampled) == ("PermutationExplainer", 60, True)
    assert list(result.importance.columns) == ["mean_abs_shap"]
    assert sorted(result.importance.index) == sorted(INPUT_COLUMNS)
    importance = result.importance["mean_abs_shap"]
    assert importance["size"] > importance["condition"] > 0 and importance["city"] > importance["age"] / 10
    assert store.client().get_model_version("houses", "2").tags[TAG] == result.run_id


def test_source_columns_follow_infrequent_categories_and_prefixes():
    from regression_lab.jobs.explanation import source_columns
    from regression_lab.models import RidgeModel
    table = synthetic_table(rows=300, seed=2)
    inputs = table.drop(columns=TARGET).assign(city_code=lambda t: t["city"].str[:2])
    pipeline = RidgeModel(max_categories=3).fit(inputs, table[[TARGET]])
    names = pipeline[0].get_feature_names_out()
    sources = dict(zip(names, source_columns(pipeline)))
    assert sources["city_infrequent_sklearn"] == "city" and sources["city_code_infrequent_sklearn"] == "city_code"
    assert {sources[name] for name in names if name.startswith("city_code_")} == {"city_code"}
    assert set(sources.values()) == set(inputs.columns)
    assert source_columns(pipeline[-1]) is None


@pytest.mark.parametrize("case", ["missing column", "unknown version", "not a registry URI", "tree for ridge",
                                  "text target"])
def test_bad_input_is_refused_before_any_run(houses, tmp_path, case):
    from regression_lab.core import InputError
    store, data = houses
    table = pd.read_csv(data)
    settings, expected = {"model_uri": "models:/houses/1"}, None
    if case == "missing column":
        table = table.drop(columns="age")
        expected = "missing column(s) 'age'"
    elif case == "unknown version":
        settings["model_uri"], expected = "models:/houses/99", "models:/houses/99"
    elif case == "not a registry URI":
        settings["model_uri"], expected = "runs:/abc/model", "expected a registered model"
    elif case == "tree for ridge":
        settings.update(model_uri="models:/houses/2", explainer="tree")
        expected = "TreeExplainer cannot explain Ridge"
    else:
        table[TARGET] = "expensive"
        expected = f"target column {TARGET!r}"
    table.to_csv(tmp_path / "bad.csv", index=False)
    runs_before = len(store.runs())
    with pytest.raises(InputError) as caught:
        explain(store, tmp_path / "bad.csv", **settings)
    assert expected in str(caught.value)
    assert len(store.runs()) == runs_before


def test_a_failure_inside_marks_the_run_failed_and_leaves_the_version_tag(houses, monkeypatch):
    import regression_lab.jobs.explanation as explanation
    store, data = houses
    before = store.client().get_model_version("houses", "3").tags.get(TAG)

    def broken(*args, **kwargs):
        raise RuntimeError("no space left on device")

    monkeypatch.setattr(explanation, "importance_table", broken)
    with pytest.raises(RuntimeError, match="no space left"):
        explain(store, data, model_uri="models:/houses/3", max_rows=100)
    failed = [run for run in store.runs() if run.data.tags.get("regression_lab.model_version") == "3"
              and run.data.tags.get("regression_lab.job") == "ExplanationJob"]
    assert [run.info.status for run in failed] == ["FAILED"]
    assert store.client().get_model_version("houses", "3").tags.get(TAG) == before


def test_the_config_file_validates():
    from regression_lab.configs import load_config, parse_job
    from conftest import CONFS
    job = parse_job(load_config(CONFS / "beyond" / "explanation.yaml"))
    assert (job.KIND, job.uri(), job.targets.columns) == ("ExplanationJob", "models:/diabetes@champion", ["target"])


def test_caveats_about_the_rows_and_target_are_tagged_on_the_explanation_run(houses, tmp_path):
    # given: twenty rows of the table the versions were trained on
    store, data = houses
    few = tmp_path / "few.csv"
    pd.read_csv(data).head(20).to_csv(few, index=False)
    # when
    result = explain(store, few, model_uri="models:/houses/2")
    # then: the run keeps the caveat
    tag = store.client().get_run(result.run_id).data.tags["regression_lab.caveats"]
    assert tag.startswith("only 20 rows from ") and tag.endswith("scores will be noisy")
