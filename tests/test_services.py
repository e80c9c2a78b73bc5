"""Services: logging with loguru, alerts, and MLflow tracking against a real SQLite store."""

from __future__ import annotations

import io
import os
import stat
import textwrap
from pathlib import Path

import pytest
from loguru import logger

from regression_lab.core import ServiceError
from regression_lab.services import AlertsService, LoggerService, MlflowService

from conftest import cli_env, run_python


# ================================================================================================ LoggerService

def test_logger_service_start_stop_leaves_user_handler_working_and_removes_its_own(tmp_path):
    # given: a handler of the user's own, and a service logging to a file
    user_lines = io.StringIO()
    user_handler = logger.add(user_lines, format="{message}")
    log_file = tmp_path / "service.log"
    service = LoggerService(sink=str(log_file), colorize=False, format="{message}")
    try:
        # when: the service runs, then stops
        service.start()
        service.start()  # a second start adds no second handler
        service.logger().info("while the service runs")
        service.stop()
        service.stop()  # stopping twice is harmless
        logger.info("after the service stopped")
    finally:
        logger.remove(user_handler)
    # then: the user's handler saw both messages; the service's handler only the first, once
    assert user_lines.getvalue().splitlines() == ["while the service runs", "after the service stopped"]
    assert log_file.read_text().splitlines() == ["while the service runs"]


def test_logger_service_restarted_in_one_process_logs_each_line_once():
    # given: a fresh interpreter, where loguru still has its import-time stderr handler
    code = textwrap.dedent("""
        from loguru import logger
        from regression_lab.services import LoggerService
        for cycle in (1, 2):
            service = LoggerService(sink="stderr", colorize=False, format="{message}")
            service.start()
            service.logger().info(f"inside cycle {cycle}")
            service.stop()
        logger.info("after both cycles")
    """)
    # when: two jobs' worth of start/stop happen one after the other
    done = run_python(code)
    # then: every line reaches stderr exactly once, and loguru's default handler is back afterwards
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert sum("inside cycle 1" in line for line in lines) == 1, done.stderr
    assert sum("inside cycle 2" in line for line in lines) == 1, done.stderr
    assert sum("after both cycles" in line for line in lines) == 1, done.stderr


def test_logger_service_sink_in_folder_that_cannot_exist_raises_service_error(tmp_path):
    # given: a sink whose folder would have to be created where a regular file already is
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file, not a folder")
    sink = str(blocker / "job.log")
    # when / then: starting names the service and the sink
    with pytest.raises(ServiceError) as caught:
        LoggerService(sink=sink).start()
    assert "LoggerService" in str(caught.value)
    assert sink in str(caught.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to any folder, so none is unwritable")
def test_logger_service_sink_in_unwritable_folder_raises_service_error(tmp_path):
    # given: a folder nobody may write to
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    sink = str(folder / "job.log")
    try:
        # when / then
        with pytest.raises(ServiceError) as caught:
            LoggerService(sink=sink).start()
    finally:
        folder.chmod(stat.S_IRWXU)
    assert "LoggerService" in str(caught.value)
    assert sink in str(caught.value)
    assert "not writable" in str(caught.value)


# ================================================================================================ AlertsService

@pytest.fixture
def no_desktop(monkeypatch):
    "No graphical session."
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)


@pytest.fixture
def fake_desktop(monkeypatch, tmp_path):
    """A desktop session whose `notify-send` is a script writing its arguments to a file (and exiting with the
    code in $NOTIFY_EXIT). Returns the file."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "notify-send"
    script.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$NOTIFY_LOG"\nexit "${NOTIFY_EXIT:-0}"\n')
    script.chmod(0o755)
    arguments = tmp_path / "notify-send.args"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("DISPLAY", ":99")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")
    monkeypatch.setenv("NOTIFY_LOG", str(arguments))
    return arguments


def test_alerts_disabled_prints_title_and_message_to_stderr(capsys, fake_desktop):
    # given: alerts switched off, even though a desktop is available
    alerts = AlertsService(enable=False)
    # when
    alerts.notify("Training finished", "rmse=1.23")
    # then: the console gets it, the desktop does not
    captured = capsys.readouterr()
    assert "[regression_lab] Training finished: rmse=1.23" in captured.err
    assert captured.out == ""
    assert not fake_desktop.exists()


def test_alerts_without_desktop_fall_back_to_console(capsys, no_desktop):
    # given: alerts on, no display
    alerts = AlertsService(app_name="my-lab")
    # when
    alerts.notify("Done", "all good")
    # then
    assert "[my-lab] Done: all good" in capsys.readouterr().err


def test_alerts_on_desktop_call_notify_send_with_title_and_message(capsys, fake_desktop):
    # given: a desktop session and an alert timeout
    alerts = AlertsService(app_name="my-lab", timeout=5)
    # when
    alerts.notify("Done", "all good")
    # then: notify-send received the app name, the timeout in ms, the title and the message; nothing printed
    arguments = fake_desktop.read_text().splitlines()
    assert arguments[-2:] == ["Done", "all good"]
    assert arguments[arguments.index("--app-name") + 1] == "my-lab"
    assert arguments[arguments.index("--expire-time") + 1] == "5000"
    assert "all good" not in capsys.readouterr().err


class _BrokenDesktopAlerts(AlertsService):
    "Alerts whose desktop notification always fails."
    def _desktop(self, title, message):
        type(self).attempts.append(title)
        raise RuntimeError("the notification daemon crashed")


def test_failing_desktop_notification_does_not_raise_and_prints(capsys, fake_desktop):
    # given: a desktop is available but showing the notification fails
    _BrokenDesktopAlerts.attempts = []
    alerts = _BrokenDesktopAlerts()
    # when: notifying does not raise
    alerts.notify("Done", "all good")
    # then: the desktop was tried, and the console got the alert instead
    assert _BrokenDesktopAlerts.attempts == ["Done"]
    assert "[regression_lab] Done: all good" in capsys.readouterr().err


def test_failing_notify_send_command_does_not_raise_and_prints(capsys, fake_desktop, monkeypatch):
    # given: a notify-send that exits with an error
    monkeypatch.setenv("NOTIFY_EXIT", "1")
    # when
    AlertsService().notify("Done", "all good")
    # then: it was called, failed, and the console got the alert
    assert fake_desktop.exists()
    assert "[regression_lab] Done: all good" in capsys.readouterr().err


# ================================================================================================ MlflowService

def test_mlflow_run_context_records_name_description_and_tags_and_finishes(store):
    import mlflow
    # given: a started service
    service = store.service(experiment_name="services")
    service.start()
    config = MlflowService.RunConfig(name="a-run", description="what this run is for",
                                     tags={"team": "pricing", "round": 3}, log_system_metrics=False)
    try:
        # when: a run opens and closes normally
        with service.run_context(config) as run:
            assert mlflow.active_run().info.run_id == run.info.run_id
            mlflow.log_metric("answer", 42.0)
    finally:
        service.stop()
    # then: the store holds the run, with everything the config said
    recorded = store.client().get_run(run.info.run_id)
    assert recorded.info.status == "FINISHED"
    assert recorded.info.run_name == "a-run"
    assert recorded.info.experiment_id == service_experiment_id(store, "services")
    assert recorded.data.tags["mlflow.note.content"] == "what this run is for"
    assert recorded.data.tags["team"] == "pricing"
    assert recorded.data.tags["round"] == "3"
    assert recorded.data.metrics == {"answer": 42.0}
    assert mlflow.active_run() is None


def service_experiment_id(store, name: str) -> str:
    return store.client().get_experiment_by_name(name).experiment_id


def test_mlflow_run_context_marks_run_failed_and_propagates_the_exception(store):
    import mlflow
    service = store.service(experiment_name="services")
    service.start()
    try:
        # when: an exception leaves the run
        with pytest.raises(ZeroDivisionError):
            with service.run_context(MlflowService.RunConfig(name="doomed", log_system_metrics=False)) as run:
                1 / 0
    finally:
        service.stop()
    # then: the run is FAILED and closed
    assert store.client().get_run(run.info.run_id).info.status == "FAILED"
    assert mlflow.active_run() is None


def test_mlflow_stop_ends_a_run_left_open(store):
    import mlflow
    # given: a run started by hand and never ended
    service = store.service(experiment_name="services")
    service.start()
    run = mlflow.start_run(run_name="left-open", log_system_metrics=False)
    assert mlflow.active_run() is not None
    # when
    service.stop()
    # then: nothing is active, and the run is closed as KILLED
    assert mlflow.active_run() is None
    assert store.client().get_run(run.info.run_id).info.status == "KILLED"


def test_mlflow_default_turns_autologging_on_until_stop(store):
    import sklearn  # noqa: F401 (autologging of an imported library is switched on at once)
    from mlflow.utils.autologging_utils import autologging_is_disabled
    # given: a service with the default autolog settings
    service = MlflowService(tracking_uri=store.uri, registry_uri=store.uri, experiment_name="services")
    assert service.autolog_disable is False
    try:
        # when: it starts, scikit-learn autologging is on
        service.start()
        assert not autologging_is_disabled("sklearn")
    finally:
        service.stop()
    # then: after stop it is off again
    assert autologging_is_disabled("sklearn")


def test_mlflow_tracking_uri_in_missing_folder_raises_service_error(tmp_path):
    # given: a database path whose folder does not exist
    uri = f"sqlite:///{tmp_path}/no-such-folder/mlflow.db"
    service = MlflowService(tracking_uri=uri, registry_uri=f"sqlite:///{tmp_path}/mlflow.db", autolog_disable=True)
    # when / then: the error names the service, the setting and its value
    with pytest.raises(ServiceError) as caught:
        service.start()
    message = str(caught.value)
    assert "MlflowService" in message
    assert f"tracking_uri={uri!r}" in message
    assert not (tmp_path / "no-such-folder").exists()


def test_mlflow_unreachable_tracking_server_raises_service_error_quickly():
    # given: a tracking server address on loopback where nothing listens (port 9, discard)
    uri = "http://127.0.0.1:9"
    service = MlflowService(tracking_uri=uri, registry_uri=uri, autolog_disable=True)
    # when / then: start fails with the service, the setting and the reason, not after minutes of retries
    with pytest.raises(ServiceError) as caught:
        service.start()
    assert f"MlflowService could not start: tracking_uri={uri!r}" in str(caught.value)


def test_mlflow_artifacts_go_to_mlruns_beside_the_database(store):
    import mlflow
    # given: a new experiment in a SQLite store
    service = store.service(experiment_name="artifacts-beside-db")
    service.start()
    try:
        # when: a run logs an artifact
        with service.run_context(MlflowService.RunConfig(name="artifact", log_system_metrics=False)) as run:
            mlflow.log_text("hello", "notes/hello.txt")
    finally:
        service.stop()
    # then: the experiment's artifact root is mlruns/ next to mlflow.db, and the file is there
    mlruns = store.folder / "mlruns"
    experiment = store.client().get_experiment(service_experiment_id(store, "artifacts-beside-db"))
    assert experiment.artifact_location == mlruns.as_uri()
    written = [path for path in mlruns.rglob("hello.txt") if run.info.run_id in path.parts]
    assert len(written) == 1
    assert written[0].read_text() == "hello"


def test_importing_core_disables_mlflow_telemetry():
    # given: an environment without the switch
    env = {key: value for key, value in cli_env().items() if key != "MLFLOW_DISABLE_TELEMETRY"}
    # when
    done = run_python("import os, regression_lab.core; print(os.environ['MLFLOW_DISABLE_TELEMETRY'])", env=env)
    # then
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "true"


def test_importing_core_keeps_a_telemetry_setting_the_user_chose():
    done = run_python("import os, regression_lab.core; print(os.environ['MLFLOW_DISABLE_TELEMETRY'])",
                      env=cli_env(MLFLOW_DISABLE_TELEMETRY="false"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "false"


@pytest.fixture
def mlflow_log_level():
    "MLflow's logger set to DEBUG for the test, put back as it was afterwards."
    import logging
    mlflow_logger = logging.getLogger("mlflow")
    before = mlflow_logger.level
    mlflow_logger.setLevel(logging.DEBUG)
    yield mlflow_logger
    mlflow_logger.setLevel(before)


def test_mlflow_service_quiets_mlflow_logging_while_running_and_restores_it(store, mlflow_log_level):
    import logging
    # given: MLflow's logger at DEBUG
    service = store.service(experiment_name="services")
    # when: the service runs, MLflow logs warnings and worse only
    service.start()
    try:
        assert mlflow_log_level.level == logging.WARNING
    finally:
        service.stop()
    # then: after stop, the level is the user's again
    assert mlflow_log_level.level == logging.DEBUG


def test_mlflow_service_that_cannot_start_leaves_mlflow_logging_as_it_was(tmp_path, mlflow_log_level):
    import logging
    # given: a store that cannot be used
    service = MlflowService(tracking_uri=f"sqlite:///{tmp_path}/missing/mlflow.db", autolog_disable=True)
    # when: starting fails (and, as for any service that did not start, stop is not called)
    with pytest.raises(ServiceError):
        service.start()
    # then: nothing the service changed is left behind
    assert mlflow_log_level.level == logging.DEBUG


# ---------------------------------------------------------------------------------------------- faults (issue 12)

def test_processes_starting_together_on_a_fresh_sqlite_store_all_succeed(tmp_path):
    import subprocess
    import sys
    from conftest import cli_env
    # given: four processes starting a service on one store that does not exist yet
    code = ("import sys; from regression_lab.services import MlflowService; "
            "s = MlflowService(tracking_uri=sys.argv[1], experiment_name='race', autolog_disable=True); "
            "s.start(); print(s.experiment_id); s.stop()")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    processes = [subprocess.Popen([sys.executable, "-c", code, uri], env=cli_env(), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(4)]
    # when: they all race to create the tables and the experiment
    results = [(p.wait(timeout=180), p.stdout.read().strip(), p.stderr.read()) for p in processes]
    # then: all succeed, on one and the same experiment
    assert [code for code, _, _ in results] == [0, 0, 0, 0], [err[-1500:] for _, _, err in results]
    assert len({experiment for _, experiment, _ in results}) == 1


def test_an_unreachable_tracking_server_stops_a_job_at_once_as_bad_input(tmp_path):
    import time
    from conftest import free_port, run_cli
    # given: a tracking URI where no server listens
    began = time.monotonic()
    # when: a job is run against it
    done = run_cli("train", "--model", "ridge", "--tracking-uri", f"http://127.0.0.1:{free_port()}", cwd=tmp_path)
    # then: exit 2 within seconds, one line on stderr, nothing written
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1].startswith("regression-lab: bad input: MlflowService could not start")
    assert "no tracking server answers" in done.stderr
    assert time.monotonic() - began < 60
    assert list(tmp_path.iterdir()) == []


def test_mlflow_retries_a_tracking_server_for_a_bounded_time(monkeypatch):
    from mlflow.environment_variables import (MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR, MLFLOW_HTTP_REQUEST_MAX_RETRIES,
                                              MLFLOW_HTTP_REQUEST_TIMEOUT)
    for name in ("MAX_RETRIES", "BACKOFF_FACTOR", "TIMEOUT"):
        monkeypatch.delenv(f"MLFLOW_HTTP_REQUEST_{name}", raising=False)
    # given: the defaults; when: a service sets MLflow's variables
    MlflowService()._http_settings()
    retries, factor = MLFLOW_HTTP_REQUEST_MAX_RETRIES.get(), MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR.get()
    # then: urllib3's waits (0, then factor * 2**n) add up to between 1 and 3 min, each request at most 20 s
    waits = sum(factor * 2 ** n for n in range(1, retries))
    assert 60 <= waits <= 180, waits
    assert MLFLOW_HTTP_REQUEST_TIMEOUT.get() == 20


def test_an_unreachable_database_store_stops_a_command_at_once_as_bad_input(tmp_path):
    import time
    from conftest import free_port, run_cli
    # given: a PostgreSQL URI where no server listens (MLflow alone retries it for ~100 s)
    began = time.monotonic()
    # when: a command that opens the store runs
    done = run_cli("promote", "--tracking-uri", f"postgresql://ada:s3cr3t@127.0.0.1:{free_port()}/mlflow", cwd=tmp_path)
    # then: exit 2 within seconds, one masked line saying the database does not answer
    last = done.stderr.strip().splitlines()[-1]
    assert (done.returncode, "the database does not answer" in last, "s3cr3t" in done.stderr) == (2, True, False), last
    assert time.monotonic() - began < 60


def test_log_lines_are_coloured_on_a_terminal_and_plain_in_a_pipe():
    import os
    import pty
    import subprocess
    import sys
    from conftest import cli_env
    code = ("from regression_lab.services import LoggerService; s = LoggerService(); s.start(); "
            "s.logger().info('hello'); s.stop()")
    env = {key: value for key, value in cli_env().items() if key not in ("NO_COLOR", "FORCE_COLOR", "CI")}
    # given: stderr a pipe (a CI log, `2> file`)
    piped = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    # given: stderr a terminal
    leader, follower = pty.openpty()
    try:
        subprocess.run([sys.executable, "-c", code], env=env, stderr=follower, timeout=60, check=True)
        on_terminal = os.read(leader, 65536).decode()
    finally:
        os.close(leader), os.close(follower)
    # then: colour codes only on the terminal
    assert "hello" in piped.stderr and "\x1b[" not in piped.stderr
    assert "hello" in on_terminal and "\x1b[" in on_terminal
