"""Pipelines: broken ones of every kind refused before anything runs; valid ones run concurrently on threads and on a
Dask cluster, with failures, timeouts, retries, dry runs, MLflow nesting in a real SQLite store, and the command line
in process and as a real subprocess."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import yaml

from regression_lab.core import ConfigError
from regression_lab.cli.pipelines import add_pipeline_commands, pipeline_command
from regression_lab.pipelines import Pipeline
from regression_lab.services import LoggerService

from conftest import CONFS, ROOT, cli_env

TESTS = Path(__file__).resolve().parent
QUIET = LoggerService(level="ERROR", colorize=False)


def pipeline(text: str) -> Pipeline:
    "A pipeline from inline YAML, allowed to call this folder's `pipeline_tasks` (a file lists it under `imports:`)."
    data = yaml.safe_load(textwrap.dedent(text))
    return Pipeline.from_dict({**data, "imports": ["pipeline_tasks", *data.get("imports", [])]})


def run(p: Pipeline, inputs=None, **options):
    options.setdefault("logger_service", QUIET)
    return p.run(inputs, **options)


def statuses(result) -> dict[str, str]:
    return {name: step.status for name, step in result.steps.items()}


# ========================================================================================= refused before running

def test_cycles_are_named_step_by_step_every_one_of_them():
    # given: a three-step cycle, and a separate two-step one
    p = pipeline("""
        steps:
          - {name: a, call: pipeline_tasks:add, inputs: {a: z, b: z}, outputs: {a: x}}
          - {name: b, call: pipeline_tasks:add, inputs: {a: x, b: x}, outputs: {a: y}}
          - {name: c, call: pipeline_tasks:add, inputs: {a: y, b: y}, outputs: {a: z}}
          - {name: d, call: pipeline_tasks:add, inputs: {a: v, b: v}, outputs: {a: u}}
          - {name: e, call: pipeline_tasks:add, inputs: {a: u, b: u}, outputs: {a: v}}
          - {name: f, call: pipeline_tasks:add, inputs: {a: f, b: f}, outputs: {a: f}}
    """)
    # when
    report = p.validate()
    # then
    assert not report.valid
    assert sorted(report.problems) == ["cycle: a -> b -> c -> a", "cycle: d -> e -> d", "cycle: f -> f"]
    assert report.plan == []


def test_two_steps_producing_one_value():
    p = pipeline("""
        inputs: [n]
        steps:
          - {name: one, call: pipeline_tasks:add, inputs: {a: n, b: n}, outputs: {a: total}}
          - {name: two, call: pipeline_tasks:add, inputs: {a: n, b: n}, outputs: {a: total}}
          - {name: three, call: pipeline_tasks:add, inputs: {a: n, b: n}, outputs: {a: n}}
    """)
    assert p.validate().problems == [
        "value 'total' is produced by more than one step: one, two",
        "value 'n' is a pipeline input and also produced by step three",
    ]


def test_each_steps_missing_inputs_are_listed_as_step_missing_input_x():
    p = pipeline("""
        inputs: [a]
        outputs: [c]
        steps:
          - {name: first, call: pipeline_tasks:add, inputs: {a: a, b: nowhere}, outputs: {x: b}}
          - {name: second, call: pipeline_tasks:add, inputs: {a: b, b: elsewhere}, outputs: {x: c}}
    """)
    report = p.validate({"a": 1})
    assert report.problems == ["first: missing input nowhere", "second: missing input elsewhere"]


def test_given_inputs_are_checked_against_the_declared_ones():
    p = pipeline("""
        inputs: [a, b]
        steps: [{name: s, call: pipeline_tasks:add, inputs: [a, b], outputs: [total]}]
    """)
    assert p.validate({"a": 1, "c": 2}).problems == [
        "pipeline input 'b' is not given",
        "input 'c' is given but the pipeline has no such input; its inputs: a, b",
    ]
    assert p.validate({"a": 1, "b": 2}).valid
    assert p.validate(["a", "b"]).valid  # names only: values come later


def test_desired_outputs_nobody_produces():
    p = pipeline("""
        inputs: [a]
        outputs: [total, report]
        steps: [{name: s, call: pipeline_tasks:add, inputs: {a: a, b: a}, outputs: [total]}]
    """)
    assert p.validate().problems == ["output 'report': no step produces it"]
    assert p.validate(outputs=["summary"]).problems == ["output 'summary': no step produces it"]


def test_unknown_callables_are_found_without_calling_anything(tmp_path):
    marker = tmp_path / "imported"
    p = pipeline(f"""
        imports: [no_such_module]
        steps:
          - {{name: a, call: no_such_module:f, outputs: [a]}}
          - {{name: b, call: pipeline_tasks:no_such_function, outputs: [b]}}
          - {{name: c, call: pipeline_tasks:NOT_CALLABLE, outputs: [c]}}
          - {{name: d, call: pipeline_tasks:touch, params: {{path: "{marker}"}}, inputs: {{extra: a}}, outputs: [d]}}
          - {{name: e, call: pipeline_tasks:add, params: {{a: 1}}, outputs: [e]}}
    """)
    assert p.validate().problems == [
        "imports: cannot import 'no_such_module': ModuleNotFoundError: No module named 'no_such_module'",
        "a: cannot import module 'no_such_module': ModuleNotFoundError: No module named 'no_such_module'",
        "b: module 'pipeline_tasks' has no attribute 'no_such_function'",
        "c: pipeline_tasks:NOT_CALLABLE is a int, not a callable",
        "d: pipeline_tasks:touch cannot take its inputs: got an unexpected keyword argument 'extra'",
        "e: pipeline_tasks:add cannot take its inputs: missing a required argument: 'b'",
    ]
    assert not marker.exists()


def test_unknown_job_kinds_and_bad_job_configs_carry_pydantics_message_and_the_step_name():
    p = pipeline("""
        inputs: [train]
        steps:
          - name: tune
            job: {KIND: TuningJobb}
            outputs: [x]
          - name: train
            inputs: [train]
            outputs: [model_uri, model_urx]
            job:
              KIND: TrainingJob
              inputs: {KIND: CsvReader, path: "${inputs.train}", drop: [target], sep: 3}
              model: {KIND: RidgeModel, alpha: strong}
          - name: refer
            inputs: [train]
            outputs: [model_version]
            job:
              KIND: TrainingJob
              inputs: {KIND: CsvReader, path: "${inputs.tain}"}
              targets: {KIND: CsvReader, path: "${inputs.train}"}
    """)
    problems = p.validate().problems
    assert problems[0].startswith("tune: job: Value error, unknown Job KIND 'TuningJobb'; known kinds: ")
    assert "TrainingJob" in problems[0]
    assert problems[1:] == [
        "train: job.inputs.sep: Input should be a valid string",
        "train: job.targets: Field required",
        "train: job.model.alpha: Input should be a valid number, unable to parse string as a number",
        "train: output 'model_urx' is not among what TrainingJob returns: run_id, experiment_id, metrics, model_uri, "
        "registered_model_name, model_version, model, signature",
        "refer: the job refers to ${inputs.tain} but the step has no input 'tain'",
    ]


def test_values_interpolated_later_do_not_fail_validation_but_given_values_are_checked():
    p = pipeline("""
        inputs: [columns]
        steps:
          - {name: make, call: pipeline_tasks:add, inputs: {a: columns, b: columns}, outputs: {a: alpha}}
          - name: train
            inputs: [alpha, columns]
            outputs: [model_uri]
            job:
              KIND: TrainingJob
              inputs: {KIND: DatasetReader, drop: [target]}
              targets: {KIND: DatasetReader, columns: "${inputs.columns}"}
              model: {KIND: RidgeModel, alpha: "${inputs.alpha}"}
    """)
    assert p.validate().valid  # both values unknown yet: checked when the step runs
    assert p.validate({"columns": ["target"]}).valid
    assert p.validate({"columns": "target"}).problems == ["train: job.targets.columns: Input should be a valid list"]


def test_a_file_of_the_wrong_shape_lists_every_problem_by_step_name(tmp_path):
    path = tmp_path / "shape.yaml"
    path.write_text(textwrap.dedent("""
        imports: [pipeline_tasks]
        inputs: [data-path]
        steps:
          - {name: fine, call: pipeline_tasks:add, inputs: [a, b], outputs: [c]}
          - {name: both, call: pipeline_tasks:add, job: {KIND: TrainingJob}}
          - {name: slow, call: pipeline_tasks:sleep, timeout: -1, retries: many}
          - {call: pipeline_tasks:add}
          - {name: odd, call: pipeline_tasks.add}
          - {name: extra, call: pipeline_tasks:add, colour: blue}
    """))
    with pytest.raises(ConfigError) as caught:
        Pipeline.from_yaml(path)
    assert str(caught.value).splitlines() == [
        f"{path}: inputs.0: String should match pattern '^[A-Za-z_][A-Za-z0-9_]*$'",
        f"{path}: both: give exactly one of `call: module:function` and `job: {{KIND: ...}}`",
        f"{path}: slow: timeout: Input should be greater than 0",
        f"{path}: slow: retries: Input should be a valid integer, unable to parse string as an integer",
        f"{path}: steps[3]: name: Field required",
        f"{path}: odd: call 'pipeline_tasks.add' must look like module:function, e.g. regression_lab.pipelines.tasks:split_table",
        f"{path}: extra: colour: Extra inputs are not permitted",
    ]


def test_steps_that_lead_to_no_desired_output_are_pruned_and_reported():
    p = pipeline("""
        inputs: [n]
        outputs: [double]
        steps:
          - {name: double, call: pipeline_tasks:add, inputs: {a: n, b: n}, outputs: {a: double}}
          - {name: triple, call: pipeline_tasks:add, inputs: {a: double, b: n}, outputs: {a: triple}}
          - {name: broken, call: pipeline_tasks:add, inputs: {a: nowhere, b: n}, outputs: {a: lost}}
    """)
    report = p.validate()
    assert report.valid  # `broken` lacks an input, but nothing desired needs it
    assert report.plan == [["double"]]
    assert report.pruned == ["triple", "broken"]
    result = run(p, {"n": 2})
    assert dict(result) == {"double": 4}
    assert result.pruned == ["triple", "broken"]


def test_the_plan_groups_steps_that_can_run_together_into_waves():
    p = pipeline("""
        inputs: [n]
        steps:
          - {name: d, call: pipeline_tasks:add, inputs: {a: b, b: c}, outputs: {a: d}}
          - {name: b, call: pipeline_tasks:add, inputs: {a: a, b: n}, outputs: {a: b}}
          - {name: a, call: pipeline_tasks:add, inputs: {a: n, b: n}, outputs: {a: a}}
          - {name: c, call: pipeline_tasks:add, inputs: {a: a, b: a}, outputs: {a: c}}
          - {name: e, call: pipeline_tasks:add, inputs: {a: n, b: n}, outputs: {a: e}}
    """)
    assert p.validate().plan == [["a", "e"], ["b", "c"], ["d"]]  # in file order within a wave
    assert p.validate().outputs == ["d", "b", "a", "c", "e"]     # no outputs declared: everything produced


def test_an_invalid_pipeline_runs_nothing(tmp_path):
    marker = tmp_path / "touched"
    p = pipeline(f"""
        steps:
          - {{name: touch, call: pipeline_tasks:touch, params: {{path: "{marker}"}}, outputs: [path]}}
          - {{name: lost, call: pipeline_tasks:add, inputs: [a, b], outputs: [c]}}
    """)
    with pytest.raises(ConfigError, match="lost: missing input a"):
        run(p)
    assert not marker.exists()


def test_a_pipeline_written_as_json_reads_like_yaml_and_draws_itself(tmp_path):
    spec = {"imports": ["pipeline_tasks"], "inputs": ["n"], "steps": [{"name": "double", "call": "pipeline_tasks:add", "inputs": {"a": "n", "b": "n"},
                                        "outputs": ["twice"]}]}
    (tmp_path / "p.json").write_text(json.dumps(spec))
    p = Pipeline.from_yaml(tmp_path / "p.json")
    assert p.name == "p" and p.validate().plan == [["double"]]
    svg = p._repr_svg_()
    assert svg.startswith("<svg") and ">double<" in svg and ">twice<" in svg
    assert run(p, {"n": 4})._repr_svg_().count("#e6f4ea") == 1  # the step drawn green: ok


@pytest.mark.parametrize("path", sorted((CONFS / "pipelines").glob("*.yaml")), ids=lambda path: path.name)
def test_every_shipped_pipeline_is_valid(path, tmp_path):
    p = Pipeline.from_yaml(path)
    inputs = {name: str(tmp_path / name) for name in p.inputs}
    assert p.validate(inputs).problems == []
    assert p.run(inputs, dry_run=True).status == "planned"


# =============================================================================================== running on threads

def test_independent_steps_run_at_the_same_time(tmp_path):
    # given: two steps that can only finish if both are running at once (a rendezvous), and a step after them
    p = pipeline("""
        inputs: [room]
        outputs: [joined]
        steps:
          - {name: left, call: pipeline_tasks:meet, inputs: {folder: room}, params: {name: left, timeout: 10}, outputs: {where: l}}
          - {name: right, call: pipeline_tasks:meet, inputs: {folder: room}, params: {name: right, timeout: 10}, outputs: {where: r}}
          - {name: join, call: pipeline_tasks:pair, inputs: {a: l, b: r}, outputs: [joined]}
    """)
    assert p.validate().plan == [["left", "right"], ["join"]]
    # when
    started = time.perf_counter()
    result = run(p, {"room": str(tmp_path / "room")}, max_workers=2)
    # then: both met (a sequential run would have failed after 10 s) in separate threads of this process
    assert result.status == "ok", result.steps
    assert time.perf_counter() - started < 5
    assert result["l"]["pid"] == result["r"]["pid"] == os.getpid()
    assert result["l"]["thread"] != result["r"]["thread"]
    assert result.outputs["joined"] == (result["l"], result["r"])


def test_values_flow_by_name_and_outputs_can_be_renamed():
    p = pipeline("""
        inputs: [x, y]
        outputs: [answer]
        steps:
          - {name: split, call: pipeline_tasks:divide, inputs: {a: x, b: y}, outputs: {quotient: q, remainder: r}}
          - {name: again, call: pipeline_tasks:add, inputs: {a: q, b: r}, outputs: [answer]}
    """)
    result = run(p, {"x": 17, "y": 5})
    assert result.outputs == {"answer": 5}
    assert dict(result) == {"q": 3, "r": 2, "answer": 5}
    assert result.summary()["outputs"] == {"answer": 5}


def test_a_failing_step_skips_its_dependents_and_independent_branches_finish(tmp_path):
    p = pipeline("""
        inputs: [n]
        steps:
          - {name: bad, call: pipeline_tasks:fail, params: {message: the data is wrong}, inputs: [n], outputs: [x]}
          - {name: after_bad, call: pipeline_tasks:add, inputs: {a: x, b: n}, outputs: {a: y}}
          - {name: last, call: pipeline_tasks:add, inputs: {a: y, b: n}, outputs: {a: z}}
          - {name: good, call: pipeline_tasks:sleep, params: {seconds: 0.2}, inputs: {value: n}, outputs: [slept]}
          - {name: after_good, call: pipeline_tasks:add, inputs: {a: slept, b: n}, outputs: {a: w}}
          - {name: shape, call: pipeline_tasks:wrong_outputs, outputs: [one, two]}
    """)
    result = run(p, {"n": 1})
    assert result.status == "failed" and not result.ok
    assert statuses(result) == {"bad": "failed", "good": "ok", "shape": "failed", "after_bad": "skipped",
                                "after_good": "ok", "last": "skipped"}
    assert result.steps["bad"].error == "RuntimeError: the data is wrong"
    assert "fail" in result.steps["bad"].traceback
    assert result.steps["after_bad"].error == "needs 'x' from bad (failed)"
    assert result.steps["last"].error == "needs 'y' from after_bad (skipped)"
    assert result.steps["shape"].error == "ValueError: returned a mapping of something, else; expected a mapping holding one, two"
    assert result["w"] == 2
    with pytest.raises(Exception, match="bad failed: RuntimeError: the data is wrong"):
        result.raise_for_status()


def test_a_slow_step_past_its_timeout_is_abandoned_and_its_dependents_skipped():
    p = pipeline("""
        steps:
          - {name: slow, call: pipeline_tasks:sleep, params: {seconds: 30, value: 1}, outputs: [late], timeout: 0.3}
          - {name: after, call: pipeline_tasks:add, inputs: {a: late, b: late}, outputs: [sum]}
          - {name: quick, call: pipeline_tasks:sleep, params: {seconds: 0.01, value: 2}, outputs: [early], timeout: 5}
    """)
    started = time.perf_counter()
    result = run(p)
    assert time.perf_counter() - started < 3  # the run did not wait for the 30 s sleep
    assert statuses(result) == {"slow": "timed-out", "quick": "ok", "after": "skipped"}
    assert result.steps["slow"].error == "timed out after 0.3 s"
    assert result.steps["slow"].duration == pytest.approx(0.3, abs=0.2)
    assert result["early"] == 2


def test_a_step_past_its_timeout_is_stopped_and_writes_nothing_afterwards(tmp_path):
    # given: a step that would write a file after 2 s, with 0.3 s to do it
    late = tmp_path / "late.txt"
    p = pipeline(f"""
        steps:
          - {{name: slow, call: pipeline_tasks:sleep_then_touch, params: {{seconds: 2, path: "{late}"}}, outputs: [done], timeout: 0.3}}
    """)
    # when
    result = run(p)
    time.sleep(3)  # longer than the step would have needed
    # then: stopped, not abandoned
    assert result.steps["slow"].status == "timed-out"
    assert not late.exists()
    assert not [thread.name for thread in threading.enumerate() if thread.name.startswith("pipeline-step-attempt")]


def test_a_training_step_past_its_timeout_closes_its_run_failed_and_registers_nothing(store):
    # given: a training job that needs far longer than its 2 s
    p = Pipeline.from_dict({"name": "cancelled-training", "steps": [{
        "name": "train", "timeout": 2, "outputs": {"model_version": "version"},
        "job": {"KIND": "TrainingJob", "inputs": {"KIND": "DatasetReader", "drop": ["target"]},
                "targets": {"KIND": "DatasetReader", "columns": ["target"]}, "figures": False,
                "model": {"KIND": "GradientBoostingModel", "n_estimators": 10_000, "max_depth": 8, "learning_rate": 0.01},
                "mlflow_service": {"registry_name": "cancelled"}}}]})
    # when
    started = time.perf_counter()
    result = run(p, tracking_uri=store.uri)
    returned = time.perf_counter() - started
    time.sleep(5)  # a step left running would register its version by now
    # then
    assert result.steps["train"].status == "timed-out"
    assert result.steps["train"].error == "timed out after 2 s"
    assert returned < 15
    client = store.client()
    experiment = client.get_experiment_by_name("cancelled-training").experiment_id
    step_runs = client.search_runs([experiment], "tags.`regression_lab.step` = 'train'")
    assert [run.info.status for run in step_runs] == ["FAILED"]
    assert store.model_versions("cancelled") == []
    assert client.get_run(result.run_id).info.status == "FAILED"


def test_a_step_that_fails_once_succeeds_on_its_retry(tmp_path):
    p = pipeline(f"""
        steps:
          - {{name: flaky, call: pipeline_tasks:flaky, params: {{marker: "{tmp_path / 'marker'}", value: 7}},
              outputs: [value], retries: 2, retry_delay: 0.05}}
          - {{name: hopeless, call: pipeline_tasks:fail, outputs: [never], retries: 1}}
    """)
    result = run(p)
    assert (result.steps["flaky"].status, result.steps["flaky"].attempts) == ("ok", 2)
    assert result["value"] == 7
    assert result.steps["flaky"].duration >= 0.05
    assert (result.steps["hopeless"].status, result.steps["hopeless"].attempts) == ("failed", 2)


def test_a_dry_run_executes_nothing_and_reaches_every_desired_output(tmp_path):
    marker = tmp_path / "touched"
    p = pipeline(f"""
        outputs: [total]
        steps:
          - {{name: touch, call: pipeline_tasks:touch, params: {{path: "{marker}"}}, outputs: [path]}}
          - {{name: fail, call: pipeline_tasks:fail, inputs: [path], outputs: [n]}}
          - {{name: total, call: pipeline_tasks:add, inputs: {{a: n, b: n}}, outputs: [total]}}
    """)
    result = run(p, dry_run=True)
    assert not marker.exists()
    assert result.status == "planned"
    assert result.outputs == {"total": "<total from total>"}
    assert statuses(result) == {"touch": "planned", "fail": "planned", "total": "planned"}


def test_a_pipeline_with_only_callables_writes_nothing_to_mlflow(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run(pipeline("steps: [{name: s, call: pipeline_tasks:add, params: {a: 1, b: 2}, outputs: [c]}]"))
    assert result.run_id is None and result["c"] == 3
    assert list(tmp_path.iterdir()) == []


def test_the_shipped_drift_pipeline_runs(tmp_path):
    result = run(Pipeline.from_yaml(CONFS / "pipelines" / "diabetes_drift.yaml"), {"folder": str(tmp_path)})
    assert result.status == "ok"
    report = json.loads(Path(result.outputs["report"]).read_text())
    assert report["drifted"][0] == "age"
    assert result.steps["profile_train"].status == result.steps["profile_new"].status == "ok"


# ============================================================================================================ Dask

def test_steps_run_on_a_dask_cluster_side_by_side(tmp_path, monkeypatch):
    from distributed import LocalCluster
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    p = pipeline("""
        inputs: [room, marker]
        steps:
          - {name: left, call: pipeline_tasks:meet, inputs: {folder: room}, params: {name: left}, outputs: {where: l}}
          - {name: right, call: pipeline_tasks:meet, inputs: {folder: room}, params: {name: right}, outputs: {where: r}}
          - {name: flaky, call: pipeline_tasks:flaky, inputs: [marker], outputs: [value], retries: 1}
          - {name: slow, call: pipeline_tasks:sleep, params: {seconds: 30}, outputs: [never], timeout: 0.5}
          - {name: sum, call: pipeline_tasks:add, inputs: {a: value, b: value}, outputs: [total]}
    """)
    inputs = {"room": str(tmp_path / "room"), "marker": str(tmp_path / "marker")}
    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as cluster:
        result = run(p, inputs, scheduler=cluster.scheduler_address)
    assert statuses(result) == {"left": "ok", "right": "ok", "flaky": "ok", "slow": "timed-out", "sum": "ok"}
    assert result["total"] == 2 and result.steps["flaky"].attempts == 2
    pids = {result["l"]["pid"], result["r"]["pid"]}
    assert len(pids) == 2 and os.getpid() not in pids  # two worker processes, met at the same time


# ============================================================================================================ MLflow

TRAIN = """
    inputs: [folder]
    outputs: [{outputs}]
    steps:
      - {{name: export, call: regression_lab.pipelines.tasks:export_dataset, inputs: [folder], outputs: [table]}}
{jobs}
"""
JOB = """
      - name: {name}
        inputs: [table]
        outputs: {{model_uri: {name}_uri, metrics: {name}_metrics, model_version: {name}_version, run_id: {name}_run}}
        retries: 1
        job:
          KIND: TrainingJob
          inputs: {{KIND: CsvReader, path: "${{inputs.table}}", drop: [target]}}
          targets: {{KIND: CsvReader, path: "${{inputs.table}}", columns: [target]}}
          model: {{KIND: RidgeModel, alpha: {alpha}}}
          figures: false
          run_config: {{tags: {{owner: tests}}, log_system_metrics: false}}
          alerts_service: {{enable: false}}
          mlflow_service: {{registry_name: {name}, experiment_name: ignored, tracking_uri: "sqlite:///ignored.db"}}
"""


def training_pipeline(*names: str) -> Pipeline:
    jobs = "".join(JOB.format(name=name, alpha=0.5 + index) for index, name in enumerate(names))
    text = TRAIN.format(outputs=", ".join(f"{name}_uri" for name in names), jobs=jobs)
    return Pipeline.from_dict({"name": "nested", **yaml.safe_load(textwrap.dedent(text))})


def test_job_steps_are_runs_nested_under_the_pipelines_run(store, tmp_path, monkeypatch):
    from loguru import logger
    monkeypatch.chdir(tmp_path)  # nothing may land in the working folder: the pipeline's store wins
    handlers = len(logger._core.handlers)
    # when: two training jobs side by side
    result = run(training_pipeline("ridge_a", "ridge_b"), {"folder": str(tmp_path / "data")},
                 tracking_uri=store.uri, experiment="pipelines")
    # then
    assert result.status == "ok", result.steps
    assert len(logger._core.handlers) == handlers  # every handler added was removed
    client = store.client()
    parent = client.get_run(result.run_id)
    assert (parent.info.run_name, parent.info.status) == ("nested", "FINISHED")
    assert client.get_experiment(parent.info.experiment_id).name == "pipelines"
    assert parent.data.metrics["steps_ok"] == 3 and parent.data.metrics["steps_failed"] == 0
    assert "step_duration_s/ridge_a" in parent.data.metrics
    (tmp_path / "artifacts").mkdir()
    table = json.loads(Path(client.download_artifacts(result.run_id, "pipeline/steps.json", str(tmp_path / "artifacts"))).read_text())
    assert [row[0] for row in table["data"]] == ["export", "ridge_a", "ridge_b"]
    for name in ("ridge_a", "ridge_b"):
        child = client.get_run(result[f"{name}_run"])
        assert child.info.run_id == result.steps[name].run_id
        assert child.data.tags["mlflow.parentRunId"] == result.run_id
        assert child.data.tags["regression_lab.step"] == name and child.data.tags["owner"] == "tests"
        assert child.info.run_name == name and child.info.status == "FINISHED"
        assert child.info.experiment_id == parent.info.experiment_id
        assert result[f"{name}_version"] == 1
        assert [int(v.version) for v in store.model_versions(name)] == [1]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["artifacts", "data"]


def test_a_run_with_a_failed_step_marks_the_pipelines_run_failed(store):
    p = pipeline("""
        name: failing
        steps:
          - {name: ok, call: pipeline_tasks:add, params: {a: 1, b: 1}, outputs: [two]}
          - {name: bad, call: pipeline_tasks:fail, outputs: [never]}
    """)
    result = run(p, tracking_uri=store.uri)  # a tracking URI asks for a record even without job steps
    run_ = store.client().get_run(result.run_id)
    assert run_.info.status == "FAILED"
    assert store.client().get_experiment(run_.info.experiment_id).name == "failing"
    assert run_.data.metrics["steps_failed"] == 1


# ===================================================================================================== command line

def parse(*argv: str) -> argparse.Namespace:
    "Parse `argv` the way `regression-lab` will: the pipeline commands under the top-level subcommands."
    parser = argparse.ArgumentParser(prog="regression-lab")
    add_pipeline_commands(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_arguments_parse_in_any_order():
    args = parse("pipeline", "run", "--inputs", "a=1", "b=x", "--outputs", "c,d", "p.yaml", "--outputs", "e",
                 "--scheduler", "tcp://h:8786", "--dry-run", "--json", "--tracking-uri", "sqlite:///m.db")
    assert (args.command, args.pipeline_command, args.inputs, args.outputs) == (
        "pipeline", "run", ["a=1", "b=x"], ["c,d", "e"])
    assert args.file == "p.yaml"
    assert args.scheduler == "tcp://h:8786" and args.dry_run and args.json


def test_a_file_written_after_the_inputs_is_still_the_file():
    args = parse("pipeline", "validate", "--inputs", "a=1", "b=2", "p.yaml")
    assert (args.file, args.inputs) == (None, ["a=1", "b=2", "p.yaml"])  # argparse's reading ...
    from regression_lab.cli.pipelines import _file_and_inputs
    assert _file_and_inputs(args) == ("p.yaml", {"a": 1, "b": 2})       # ... and the command's


def test_pipeline_command_in_process(tmp_path, capsys):
    path = tmp_path / "p.yaml"
    path.write_text("""
imports: [pipeline_tasks]
inputs: [a, b]
outputs: [answer]
steps:
  - {name: split, call: pipeline_tasks:divide, inputs: [a, b], outputs: {quotient: q, remainder: r}}
  - {name: again, call: pipeline_tasks:add, inputs: {a: q, b: r}, outputs: [answer]}
""")
    # when: values read as YAML, the file after the inputs
    assert pipeline_command(parse("pipeline", "run", "--json", "--inputs", "a=17", "b=5", str(path))) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["outputs"] == {"answer": 5}
    assert pipeline_command(parse("pipeline", "validate", str(path), "--inputs", "a=1", "b=2", "--outputs", "q,r",
                                  "--json")) == 0
    assert json.loads(capsys.readouterr().out) == {"valid": True, "problems": [], "plan": [["split"]], "pruned": ["again"]}
    assert pipeline_command(parse("pipeline", "run", str(path), "--inputs", "a=1", "b=0")) == 1
    captured = capsys.readouterr()
    assert "failed     split" in captured.out and "ZeroDivisionError" in captured.out
    assert captured.err.splitlines()[-1] == "regression-lab: pipeline p failed: split failed; again skipped"
    assert pipeline_command(parse("pipeline", "run", str(path), "--inputs", "a")) == 2
    assert capsys.readouterr().err.splitlines()[-1] == "--inputs 'a' is not of the form key=value"
    assert pipeline_command(parse("pipeline", "validate", str(tmp_path / "nope.yaml"))) == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"pipeline file not found: {tmp_path / 'nope.yaml'}"


def cli(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    "The pipeline commands in a fresh interpreter, as the console script will run them."
    code = "import sys; from regression_lab.cli.pipelines import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *map(str, argv)], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=cli_env(PYTHONPATH=str(TESTS)))


def test_the_command_line_as_a_subprocess_exit_codes_0_1_2(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text(textwrap.dedent("""
        imports: [pipeline_tasks]
        inputs: [n]
        outputs: [total, summary]
        steps:
          - {name: a, call: pipeline_tasks:add, inputs: {a: n, b: m}, outputs: {a: x}}
          - {name: b, call: pipeline_tasks:add, inputs: {a: x, b: y}, outputs: {a: y}}
          - {name: c, call: pipeline_tasks:nothing, inputs: {a: y}, outputs: {a: total}}
    """))
    failing = tmp_path / "failing.yaml"
    failing.write_text(textwrap.dedent("""
        imports: [pipeline_tasks]
        inputs: [n]
        steps:
          - {name: ok, call: pipeline_tasks:add, inputs: {a: n, b: n}, outputs: [double]}
          - {name: bad, call: pipeline_tasks:fail, inputs: [n], outputs: [never]}
    """))
    drift = CONFS / "pipelines" / "diabetes_drift.yaml"
    # valid: 0, and the plan as JSON
    done = cli("pipeline", "validate", drift, "--inputs", "folder=out", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["plan"][2] == ["profile_train", "profile_new"]
    # invalid: 2, every problem on its own line of stderr
    done = cli("pipeline", "validate", broken, "--inputs", "n=1", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.splitlines()[1:] == [
        "c: module 'pipeline_tasks' has no attribute 'nothing'",
        "cycle: b -> b",
        "output 'summary': no step produces it",
        "a: missing input m",
    ]
    done = cli("pipeline", "run", broken, "--json", "--inputs", "n=1", cwd=tmp_path)
    assert done.returncode == 2 and json.loads(done.stdout.splitlines()[-1])["status"] == "invalid"
    # a step fails: 1, a summary per step
    done = cli("pipeline", "run", failing, "--inputs", "n=2", "--json", cwd=tmp_path)
    assert done.returncode == 1
    summary = json.loads(done.stdout.splitlines()[-1])
    assert summary["status"] == "failed" and summary["outputs"] == {"double": 4}
    assert summary["steps"]["bad"]["status"] == "failed" and summary["steps"]["bad"]["error"] == "RuntimeError: boom"
    assert set(summary["steps"]["ok"]) == {"status", "duration", "attempts", "error", "run_id"}
    # all done: 0
    done = cli("pipeline", "run", drift, "--inputs", f"folder={tmp_path / 'out'}", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["outputs"]["report"] == str(tmp_path / "out" / "drift_report.json")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["broken.yaml", "failing.yaml", "out"]  # no MLflow


def test_importing_the_pipeline_modules_stays_light():
    code = ("import sys, regression_lab.pipelines, regression_lab.pipelines.runs, regression_lab.cli.pipelines, "
            "regression_lab.pipelines.tasks; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'mlflow', 'dask', 'distributed', 'yaml', "
            "'omegaconf', 'sklearn', 'pandas'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=cli_env())
    assert done.stdout.strip() == "[]", done.stderr


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGINT"])
def test_a_stopped_pipeline_cancels_its_running_steps_and_publishes_nothing_later(tmp_path, store, signal_name):
    # given: a pipeline whose steps would write a file after 6 s and register a model after many seconds of boosting
    late = tmp_path / "late.txt"
    path = tmp_path / "slow.yaml"
    path.write_text(textwrap.dedent(f"""
        name: stopped-{signal_name.lower()}
        imports: [pipeline_tasks]
        steps:
          - {{name: late_file, call: pipeline_tasks:sleep_then_touch, params: {{seconds: 6, path: "{late}"}}, outputs: [done]}}
          - name: train
            outputs: {{model_version: version}}
            job:
              KIND: TrainingJob
              inputs: {{KIND: DatasetReader, drop: [target]}}
              targets: {{KIND: DatasetReader, columns: [target]}}
              figures: false
              model: {{KIND: GradientBoostingModel, n_estimators: 10000, max_depth: 8, learning_rate: 0.01}}
              mlflow_service: {{registry_name: stopped-{signal_name.lower()}}}
    """))
    code = "import sys; from regression_lab.cli.pipelines import main; sys.exit(main(sys.argv[1:]))"
    process = subprocess.Popen([sys.executable, "-c", code, "pipeline", "run", str(path), "--json", "--tracking-uri",
                                store.uri], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=cli_env(PYTHONPATH=str(TESTS)))
    client = store.client()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # until the training step's run exists
        experiment = client.get_experiment_by_name(f"stopped-{signal_name.lower()}") if store.database.exists() else None
        if experiment and client.search_runs([experiment.experiment_id], "tags.`regression_lab.step` = 'train'"):
            break
        time.sleep(0.2)
    # when: the process is told to stop, as `kill` (SIGTERM) or Ctrl-C (SIGINT) would
    process.send_signal(getattr(signal, signal_name))
    out, err = process.communicate(timeout=60)
    time.sleep(7)  # longer than the file step would have needed
    # then: exit 130 with one line, nothing left running and nothing published
    assert process.returncode == 130, err
    assert err.splitlines()[-1].startswith("regression-lab: pipeline stopped"), err
    assert json.loads(out.splitlines()[-1])["status"] == "stopped"
    assert not late.exists()
    step_runs = client.search_runs([experiment.experiment_id], "tags.`regression_lab.step` = 'train'")
    assert [run.info.status for run in step_runs] == ["FAILED"]
    assert store.model_versions(f"stopped-{signal_name.lower()}") == []


def test_trial_store_points_every_tuning_step_at_another_database_without_editing_the_file(tmp_path, store):
    # given: a pipeline whose tuning step keeps its trials beside the pipeline's folder
    path = tmp_path / "tune.yaml"
    path.write_text(textwrap.dedent("""
        name: team-tuning
        inputs: [folder]
        steps:
          - name: tune
            inputs: [folder]
            outputs: {study: study}
            job:
              KIND: TuningJob
              inputs: {KIND: DatasetReader, drop: [target]}
              targets: {KIND: DatasetReader, columns: [target]}
              model: {KIND: RidgeModel}
              n_trials: 2
              splitter: {KIND: KFoldSplitter, n_splits: 2}
              study_name: shared
              progress: false
              store: {url: "sqlite:///${inputs.folder}/optuna.db"}
    """))
    team_store = tmp_path / "team" / "trials.db"
    team_store.parent.mkdir()
    # when: run from the command line with --trial-store
    done = cli("pipeline", "run", path, "--inputs", f"folder={tmp_path}", "--tracking-uri", store.uri,
               "--trial-store", f"sqlite:///{team_store}", "--json", cwd=tmp_path)
    # then: the study is in the given database, and nothing beside the pipeline's folder
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.splitlines()[-1])["status"] == "ok"
    assert not (tmp_path / "optuna.db").exists()
    from regression_lab.trials import TrialStore
    assert len(TrialStore(url=f"sqlite:///{team_store}").history("shared")) == 2
