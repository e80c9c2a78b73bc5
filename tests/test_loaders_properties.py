"""Property tests of the loaders anyone can feed a file to: whatever the bytes, `load_config` and `Pipeline.from_yaml`
/ `Pipeline.from_dict` either load it or raise the library's own `InputError`, never anything else."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
import yaml

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from regression_lab.configs import load_config, parse_job  # noqa: E402
from regression_lab.core import InputError  # noqa: E402
from regression_lab.pipelines import Pipeline  # noqa: E402

SETTINGS = settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
FOLDER = Path(tempfile.mkdtemp(prefix="loader-properties-"))

# keys the loaders know, so that generated documents reach past the first check
KEYS = st.sampled_from(["job", "imports", "KIND", "steps", "name", "call", "inputs", "outputs", "params", "timeout",
                        "retries", "model", "alpha", "path", "drop", "columns", "mlflow_service", "tracking_uri",
                        "<<", "description", "x"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20),
                    st.sampled_from(["TrainingJob", "PromotionJob", "regression_lab.pipelines.tasks:pick_best",
                                     "os:system", "${oc.env:HOME}", "${job.KIND}", "${inputs.a}", "${nope}",
                                     "sqlite:///m.db", "../../x", "1e3", "2024-01-01"]))
DOCUMENTS = st.recursive(SCALARS, lambda children: st.one_of(st.lists(children, max_size=4),
                                                              st.dictionaries(KEYS, children, max_size=5)),
                         max_leaves=25)
TEXTS = st.one_of(
    DOCUMENTS.map(lambda document: yaml.safe_dump(document, allow_unicode=True)),
    DOCUMENTS.map(lambda document: json.dumps(document)),
    st.text(max_size=200),  # anything at all
    st.sampled_from(["a: &a [*a]", "job: !!python/object/apply:os.system [ls]", "[" * 3000, "job: {a: 1}\njob: 2",
                     "*x", "&a", "? [a, b]\n: c", "job: {? [1]: 2}", "job: {1: 2, null: 3}", "%YAML 9.9\n---\na: 1",
                     "job: {KIND: TrainingJob}\n---\njob: {}", "\ufeffjob: {KIND: PromotionJob}"]),
)
BYTES = st.one_of(TEXTS.map(lambda text: text.encode("utf-8", "surrogatepass")), st.binary(max_size=200))


def write(data: bytes, name: str) -> Path:
    path = FOLDER / name
    path.write_bytes(data)
    return path


@SETTINGS
@given(BYTES)
def test_load_config_loads_or_raises_an_input_error(data):
    try:
        config = load_config(write(data, "config.yaml"))
    except InputError:
        return
    assert isinstance(config, dict)
    try:
        parse_job(config)
    except InputError:
        pass


@SETTINGS
@given(st.lists(st.text(max_size=40), max_size=3), DOCUMENTS)
def test_overrides_and_a_base_load_or_raise_an_input_error(overrides, base):
    try:
        load_config(base=base if isinstance(base, dict) else None, overrides=overrides)
    except InputError:
        pass


@SETTINGS
@given(BYTES, st.sampled_from(["pipeline.yaml", "pipeline.json"]))
def test_pipeline_from_yaml_loads_or_raises_an_input_error(data, name):
    try:
        pipeline = Pipeline.from_yaml(write(data, name))
    except InputError:
        return
    assert isinstance(pipeline, Pipeline)


@SETTINGS
@given(DOCUMENTS)
def test_pipeline_from_dict_loads_or_raises_an_input_error(data):
    try:
        Pipeline.from_dict(data)
    except InputError:
        pass
