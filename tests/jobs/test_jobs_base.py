"""The abstract Job: services started in order and stopped in reverse, errors logged and re-raised; Locals."""

from __future__ import annotations

import collections.abc
import configparser
import textwrap
import typing as T

import pydantic as pdt
import pytest

import regression_lab
from regression_lab.core import DataError, ServiceError
from regression_lab.jobs import Job, Locals
from regression_lab.jobs.base import JobNotStarted
from regression_lab.services import AlertsService, LoggerService, MlflowService

from conftest import ROOT, run_python

EVENTS: list[str] = []


class RecordingLogger(LoggerService):
    def start(self):
        EVENTS.append("start logger")
        super().start()

    def stop(self):
        EVENTS.append("stop logger")
        super().stop()


class RecordingAlerts(AlertsService):
    def start(self):
        EVENTS.append("start alerts")
        super().start()

    def stop(self):
        EVENTS.append("stop alerts")
        super().stop()


class RecordingMlflow(MlflowService):
    def start(self):
        EVENTS.append("start mlflow")
        super().start()

    def stop(self):
        EVENTS.append("stop mlflow")
        super().stop()


class NoteJob(Job):
    "A job that notes that it ran, or fails when told to (in `prepare` with `reject`)."
    KIND: T.Literal["NoteJob"] = "NoteJob"
    fail_with: str | None = None
    reject: str | None = None

    def prepare(self):
        EVENTS.append("prepare")
        if self.reject is not None:
            raise DataError(self.reject)

    def run(self) -> Locals:
        EVENTS.append("run")
        if self.fail_with is not None:
            raise RuntimeError(self.fail_with)
        return Locals(done=True)


@pytest.fixture(autouse=True)
def _clear_events():
    EVENTS.clear()
    yield
    EVENTS.clear()


def recording_job(store, tracking_uri: str | None = None, **fields) -> NoteJob:
    uri = tracking_uri or store.uri
    return NoteJob(
        logger_service=RecordingLogger(colorize=False),
        alerts_service=RecordingAlerts(enable=False),
        mlflow_service=RecordingMlflow(tracking_uri=uri, registry_uri=store.uri, autolog_disable=True),
        **fields)


def test_job_is_abstract():
    with pytest.raises(TypeError):
        Job()


def test_job_starts_services_in_order_and_stops_them_in_reverse(store):
    # given: a job whose services record their lifetime
    job = recording_job(store)
    # when
    with job:
        result = job.run()
    # then
    assert result["done"] is True
    assert EVENTS == ["start logger", "start alerts", "prepare", "start mlflow", "run",
                      "stop mlflow", "stop alerts", "stop logger"]


def test_job_stops_started_services_when_a_later_one_cannot_start(store, tmp_path):
    # given: an MLflow store that cannot be used
    job = recording_job(store, tracking_uri=f"sqlite:///{tmp_path}/missing/mlflow.db")
    # when: entering the job fails on the MLflow service
    with pytest.raises(ServiceError, match="MlflowService"):
        with job:
            job.run()
    # then: the job never ran, and the services already started were stopped, in reverse
    assert EVENTS == ["start logger", "start alerts", "prepare", "start mlflow", "stop alerts", "stop logger"]


def test_job_rejecting_its_input_in_prepare_never_starts_mlflow_nor_creates_a_store(tmp_path):
    # given: a job whose input check fails, pointed at a store that does not exist yet
    log_file = tmp_path / "job.log"
    folder = tmp_path / "store"
    folder.mkdir()
    job = NoteJob(logger_service=RecordingLogger(sink=str(log_file), colorize=False),
                  alerts_service=RecordingAlerts(enable=False),
                  mlflow_service=RecordingMlflow(tracking_uri=f"sqlite:///{folder}/mlflow.db"),
                  reject="column 'price' is missing")
    # when / then: entering the job raises the input error
    with pytest.raises(DataError, match="'price' is missing"):
        with job:
            job.run()
    # then: MLflow never started, nothing was written in the store's folder, the error is logged in one line
    assert EVENTS == ["start logger", "start alerts", "prepare", "stop alerts", "stop logger"]
    assert list(folder.iterdir()) == []
    logged = log_file.read_text()
    assert "NoteJob stopped on bad input: column 'price' is missing" in logged
    assert "Traceback" not in logged


def test_job_exception_propagates_and_is_logged(store, tmp_path):
    import mlflow
    # given: a job logging to a file, which fails while running
    log_file = tmp_path / "job.log"
    job = NoteJob(logger_service=LoggerService(sink=str(log_file), colorize=False),
                  alerts_service=AlertsService(enable=False), mlflow_service=store.service(),
                  fail_with="the flux capacitor overheated")
    # when / then: the exception reaches the caller
    with pytest.raises(RuntimeError, match="the flux capacitor overheated"):
        with job:
            job.run()
    # then: the log file names the job, the error type and message, with a traceback
    logged = log_file.read_text()
    assert "NoteJob failed: RuntimeError: the flux capacitor overheated" in logged
    assert "Traceback" in logged
    assert "[STOP] logger service" in logged
    assert mlflow.active_run() is None


def test_job_bad_input_propagates_and_is_logged_without_traceback(store, tmp_path):
    # given: a job body raising an error the user can fix
    log_file = tmp_path / "job.log"
    job = NoteJob(logger_service=LoggerService(sink=str(log_file), colorize=False),
                  alerts_service=AlertsService(enable=False), mlflow_service=store.service())
    # when / then
    with pytest.raises(DataError):
        with job:
            raise DataError("column 'price' is missing")
    logged = log_file.read_text()
    assert "NoteJob stopped on bad input: column 'price' is missing" in logged
    assert "Traceback" not in logged


class ScoreLocals(Locals):
    name: str
    score: float


def test_locals_read_as_a_mapping_and_as_attributes():
    # given: declared fields and an extra one
    values = ScoreLocals(name="ridge", score=0.75, extra_note=[1, 2])
    # then: attributes
    assert (values.name, values.score, values.extra_note) == ("ridge", 0.75, [1, 2])
    # then: a read-only mapping over the same names, declared fields first
    assert isinstance(values, collections.abc.Mapping)
    assert list(values) == ["name", "score", "extra_note"]
    assert dict(values) == {"name": "ridge", "score": 0.75, "extra_note": [1, 2]}
    assert values["score"] == values.score
    assert len(values) == 3
    assert "name" in values and "missing" not in values
    assert values.get("missing", "default") == "default"
    with pytest.raises(KeyError):
        values["missing"]
    with pytest.raises(pdt.ValidationError):
        values.score = 1.0


@pytest.mark.parametrize("module", ["regression_lab", "regression_lab.jobs", "regression_lab.configs",
                                    "regression_lab.cli"])
def test_import_is_light(module):
    # given: a fresh interpreter
    code = textwrap.dedent(f"""
        import sys, {module}
        print(sorted(name for name in ("mlflow", "sklearn", "ipywidgets") if name in sys.modules))
    """)
    # when
    done = run_python(code)
    # then: importing the library does not import the heavy dependencies
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_autolog_paused_is_counted_across_overlapping_jobs():
    import mlflow.utils.autologging_utils as autologging
    from regression_lab.jobs.base import autolog_paused
    # given: two overlapping pauses, as two jobs running in threads make
    first, second = autolog_paused(), autolog_paused()
    first.__enter__()
    second.__enter__()
    # when: the first ends while the second still runs
    first.__exit__(None, None, None)
    # then: autologging stays paused until the last one ends
    assert autologging._AUTOLOGGING_GLOBALLY_DISABLED is True
    second.__exit__(None, None, None)
    assert autologging._AUTOLOGGING_GLOBALLY_DISABLED is False


def test_version_matches_settings_ini():
    settings = configparser.ConfigParser()
    settings.read(ROOT / "settings.ini")
    assert regression_lab.__version__ == settings["DEFAULT"]["version"]


def test_run_outside_with_refuses_names_the_fix_and_writes_nothing(tmp_path, monkeypatch):
    # given: a job pointed at a store in an empty folder, and the working folder where MLflow would fall back
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "store"
    folder.mkdir()
    job = NoteJob(logger_service=LoggerService(colorize=False), alerts_service=AlertsService(enable=False),
                  mlflow_service=MlflowService(tracking_uri=f"sqlite:///{folder}/mlflow.db"))
    # when / then: run() outside `with job:` refuses, saying how to call it
    with pytest.raises(JobNotStarted, match=r"NoteJob.run\(\) was called outside `with job:`.*with job: result = job.run\(\)"):
        job.run()
    # then: the job's own steps never ran, and neither the job's store nor ./mlflow.db was created
    assert "run" not in EVENTS
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"] and list(folder.iterdir()) == []


def test_run_outside_with_is_refused_for_a_subclass_of_a_job_too(store):
    class LouderJob(NoteJob):
        KIND: T.Literal["LouderJob"] = "LouderJob"

        def run(self) -> Locals:
            EVENTS.append("louder")
            return super().run()

    job = LouderJob(logger_service=RecordingLogger(colorize=False), alerts_service=RecordingAlerts(enable=False),
                    mlflow_service=store.service())
    with pytest.raises(JobNotStarted, match="LouderJob.run"):
        job.run()
    assert EVENTS == []
    with job:
        assert job.run()["done"] is True
    assert EVENTS == ["start logger", "start alerts", "prepare", "louder", "run", "stop alerts", "stop logger"]


def test_caveats_are_joined_masked_and_bounded():
    from regression_lab.jobs.base import MAX_CAVEATS_CHARS, caveats_text
    text = caveats_text(["only 3 rows from postgresql://ada:pw@db/x: noisy", "column(s) 'c' hold\none value"])
    assert text == "only 3 rows from postgresql://ada:***@db/x: noisy; column(s) 'c' hold one value"
    assert len(caveats_text(["y" * 9000])) == MAX_CAVEATS_CHARS
