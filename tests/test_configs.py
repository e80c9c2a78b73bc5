"""Configs: YAML files merged in order, key=value overrides, validation into a job, user-defined kinds."""

from __future__ import annotations

import textwrap
import uuid

import pytest

from regression_lab.configs import all_kinds, kind_schema, load_config, parse_job
from regression_lab.core import ConfigError, InputError
from regression_lab.data import DatasetReader
from regression_lab.jobs import TrainingJob
from regression_lab.models import Model, RidgeModel

from conftest import CONFS

BASE = """\
job:
  KIND: TrainingJob
  run_config: {name: "${job.model.KIND}-run"}
  inputs: {KIND: DatasetReader, drop: [target]}
  targets: {KIND: DatasetReader, columns: [target]}
  model: {KIND: RidgeModel, alpha: 1.0, fit_intercept: false}
"""


def write(folder, name: str, text: str):
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def training(model: dict) -> dict:
    return {"job": {"KIND": "TrainingJob", "inputs": {"KIND": "DatasetReader", "drop": ["target"]},
                    "targets": {"KIND": "DatasetReader", "columns": ["target"]}, "model": model}}


def test_load_config_merges_files_in_order_then_applies_overrides(tmp_path):
    # given: a base config and a second file changing one model setting
    base = write(tmp_path, "base.yaml", BASE)
    second = write(tmp_path, "second.yaml", "job:\n  model: {alpha: 2.0}\n")
    # when: merged without and with overrides
    merged = load_config(base, second)
    overridden = load_config(base, second, overrides=["job.model.alpha=0.5", "job.run_config.name=from-cli"])
    # then: later files win key by key, keys they do not mention survive, interpolations are resolved
    assert merged["job"]["model"] == {"KIND": "RidgeModel", "alpha": 2.0, "fit_intercept": False}
    assert merged["job"]["run_config"] == {"name": "RidgeModel-run"}
    assert load_config(second, base)["job"]["model"]["alpha"] == 1.0
    # then: overrides come last, with YAML-typed values
    assert overridden["job"]["model"] == {"KIND": "RidgeModel", "alpha": 0.5, "fit_intercept": False}
    assert overridden["job"]["run_config"] == {"name": "from-cli"}
    # then: the result validates into the job it describes
    job = parse_job(overridden)
    assert isinstance(job, TrainingJob)
    assert job.model == RidgeModel(alpha=0.5, fit_intercept=False)
    assert job.inputs == DatasetReader(drop=["target"])
    assert job.run_config.name == "from-cli"


def test_missing_config_file_raises_config_error_naming_it(tmp_path):
    missing = tmp_path / "nowhere.yaml"
    with pytest.raises(ConfigError, match="nowhere.yaml"):
        load_config(missing)


@pytest.mark.parametrize("text", ["job:\n  KIND: [TrainingJob\n", "job:\n\tKIND: TrainingJob\n"],
                         ids=["unclosed-list", "tab-indent"])
def test_yaml_syntax_error_raises_config_error_naming_the_file(tmp_path, text):
    broken = write(tmp_path, "broken.yaml", "")
    broken.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(broken)
    assert "broken.yaml" in str(caught.value)
    assert isinstance(caught.value, InputError)


def test_config_file_that_is_not_a_mapping_raises_config_error(tmp_path):
    listing = write(tmp_path, "list.yaml", "- a\n- b\n")
    with pytest.raises(ConfigError, match="list.yaml"):
        load_config(listing)


@pytest.mark.parametrize("override", ["job.model.alpha", "=0.5", "job.model.alpha=[0.5"],
                         ids=["no-equals", "no-key", "unparsable-value"])
def test_malformed_override_raises_config_error_naming_it(tmp_path, override):
    base = write(tmp_path, "base.yaml", BASE)
    with pytest.raises(ConfigError) as caught:
        load_config(base, overrides=[override])
    assert override in str(caught.value)


def test_unknown_model_kind_lists_the_known_kinds():
    with pytest.raises(ConfigError) as caught:
        parse_job(training({"KIND": "NeuralNetModel"}))
    message = str(caught.value)
    assert message.startswith("job.model")
    assert "'NeuralNetModel'" in message
    for kind in ("HistGradientBoostingModel", "RandomForestModel", "RidgeModel"):
        assert kind in message


def test_unknown_job_kind_lists_the_known_jobs():
    config = training({"KIND": "RidgeModel"})
    config["job"]["KIND"] = "ServingJob"
    with pytest.raises(ConfigError, match="'ServingJob'.*TrainingJob"):
        parse_job(config)


@pytest.mark.parametrize("model, path", [
    ({"KIND": "RidgeModel", "alpha": "a lot"}, "job.model.alpha"),
    ({"KIND": "RidgeModel", "alpha": -1}, "job.model.alpha"),
    ({"KIND": "RidgeModel", "gamma": 1}, "job.model.gamma"),
    ({"KIND": "HistGradientBoostingModel", "max_iter": "many"}, "job.model.max_iter"),
])
def test_wrong_field_names_its_dotted_path(model, path):
    with pytest.raises(ConfigError) as caught:
        parse_job(training(model))
    assert str(caught.value).startswith(f"{path}:")


def test_missing_required_field_names_its_path():
    config = training({"KIND": "RidgeModel"})
    config["job"]["inputs"] = {"KIND": "CsvReader"}
    with pytest.raises(ConfigError, match=r"^job\.inputs\.path:"):
        parse_job(config)


def test_unknown_top_level_key_and_missing_job_are_config_errors():
    with pytest.raises(ConfigError, match="'extra'"):
        parse_job({**training({"KIND": "RidgeModel"}), "extra": 1})
    with pytest.raises(ConfigError, match="job"):
        parse_job({"imports": []})


def test_import_that_fails_names_the_module():
    with pytest.raises(ConfigError, match="no_such_module_for_regression_lab"):
        parse_job({"imports": ["no_such_module_for_regression_lab"], **training({"KIND": "RidgeModel"})})


def test_imports_register_a_user_defined_model_kind(tmp_path, monkeypatch):
    # given: a module, outside the library, defining a new model kind
    suffix = uuid.uuid4().hex[:8]
    module, kind = f"user_models_{suffix}", f"MedianModel{suffix}"
    write(tmp_path, f"{module}.py", f"""\
        import typing as T
        from regression_lab.models import Model

        class {kind}(Model):
            "Predict the median of the training targets."
            KIND: T.Literal["{kind}"] = "{kind}"
            quantile: float = 0.5

            def regressor(self):
                from sklearn.dummy import DummyRegressor
                return DummyRegressor(strategy="quantile", quantile=self.quantile)
        """)
    monkeypatch.syspath_prepend(str(tmp_path))
    config_file = write(tmp_path, "user.yaml", f"""\
        imports: [{module}]
        job:
          KIND: TrainingJob
          inputs: {{KIND: DatasetReader, drop: [target]}}
          targets: {{KIND: DatasetReader, columns: [target]}}
          model: {{KIND: {kind}, quantile: 0.4}}
        """)
    assert kind not in Model.kinds
    # when
    job = parse_job(load_config(config_file))
    # then: the kind is registered, validated with its own fields, and known to the schema tools
    assert kind in Model.kinds
    assert type(job.model).__name__ == kind
    assert job.model.quantile == 0.4
    assert job.model.hyperparameters()["quantile"] == 0.4
    assert kind in all_kinds()
    assert "quantile" in kind_schema(kind)["properties"]
    # then: a wrong field of the new kind is reported by path too
    with pytest.raises(ConfigError, match=r"^job\.model\.quantile:"):
        parse_job(load_config(config_file, overrides=["job.model.quantile=high"]))


@pytest.mark.parametrize("path", sorted(CONFS.glob("*.yaml")), ids=lambda path: path.name)
def test_shipped_configs_validate(path):
    import yaml
    from regression_lab.jobs import Job
    job = parse_job(load_config(path))
    assert isinstance(job, Job)
    assert job.KIND == yaml.safe_load(path.read_text())["job"]["KIND"]


def test_kind_schema_of_unknown_kind_is_a_config_error():
    with pytest.raises(ConfigError, match="'NoSuchKind'.*RidgeModel"):
        kind_schema("NoSuchKind")
