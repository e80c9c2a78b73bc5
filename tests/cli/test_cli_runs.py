"""`regression-lab runs clean` and the automatic clean-up at start, against real processes killed with SIGKILL: a
process that cannot end its run or its trials leaves them RUNNING; the command (and the next service to start in
the experiment) ends them, and leaves what a live process holds alone."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import cli_env, free_port

STANDALONE = "import sys; from regression_lab.cli.runs import main; sys.exit(main(sys.argv[1:]))"

# a process that opens a run and a trial (heartbeat every 0.3 s), says "ready" and waits to be killed
HOLDER = """
import sys, threading, time, warnings
warnings.simplefilter("ignore")
import optuna
from regression_lab.services import MlflowService
from regression_lab.trials import TrialStore
tracking_uri, storage_url, name = sys.argv[1:]
service = MlflowService(tracking_uri=tracking_uri, experiment_name="nightly", autolog_disable=True)
service.start()
storage = TrialStore(url=storage_url, heartbeat_interval=1, grace_period=1).storage()  # retries a fresh store's race
study = optuna.create_study(study_name=name, storage=storage, load_if_exists=True)
trial = study.ask()
with service.run_context(MlflowService.RunConfig(name=name, log_system_metrics=False)) as run:
    storage.record_heartbeat(trial._trial_id)  # before saying so: a process killed right after has a heartbeat
    print(run.info.run_id, trial.number, flush=True)
    while True:
        time.sleep(0.3)
        storage.record_heartbeat(trial._trial_id)
"""


def runs(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    "Run the runs command's standalone `main` (what `regression-lab runs` dispatches to) in a subprocess."
    return subprocess.run([sys.executable, "-c", STANDALONE, *map(str, args)], cwd=cwd, env=cli_env(),
                          capture_output=True, text=True, timeout=timeout)


def answer(done: subprocess.CompletedProcess) -> dict:
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


def start_holder(folder: Path, name: str) -> subprocess.Popen:
    "A started HOLDER process."
    return subprocess.Popen([sys.executable, "-c", HOLDER, f"sqlite:///{folder}/mlflow.db",
                             f"sqlite:///{folder}/optuna.db", name], cwd=folder, env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def holding(process: subprocess.Popen) -> tuple[subprocess.Popen, str, int]:
    "`process` once it holds its run and trial, its run id and its trial number."
    line = process.stdout.readline().split()
    assert line, process.stderr.read()[-2000:]
    return process, line[0], int(line[1])


@pytest.fixture
def killed_and_live(tmp_path):
    "A store where one holder was killed with SIGKILL and another one is alive; stopped after the test."
    starting = start_holder(tmp_path, "killed"), start_holder(tmp_path, "live")  # both at once: a fresh store too
    (killed, killed_run, killed_trial), (live, live_run, live_trial) = map(holding, starting)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=30)
    time.sleep(1.5)  # past the grace period of 1 s
    yield tmp_path, (killed_run, killed_trial), (live_run, live_trial)
    live.kill()
    live.wait(timeout=30)


def statuses(folder: Path) -> tuple[dict[str, str], dict[tuple[str, int], str]]:
    "The status of every run (by name) and of every trial (by study and number) of the store."
    import mlflow
    import optuna
    client = mlflow.MlflowClient(f"sqlite:///{folder}/mlflow.db")
    experiment = client.get_experiment_by_name("nightly")
    run_status = {run.info.run_name: run.info.status for run in client.search_runs([experiment.experiment_id])}
    storage = f"sqlite:///{folder}/optuna.db"
    trial_state = {(summary.study_name, trial.number): trial.state.name
                   for summary in optuna.get_all_study_summaries(storage)
                   for trial in optuna.load_study(study_name=summary.study_name, storage=storage).trials}
    return run_status, trial_state


def test_clean_ends_the_killed_process_run_and_trial_and_nothing_of_the_live_one(killed_and_live):
    folder, (killed_run, _), _ = killed_and_live
    # a dry run lists what the killed process left, and changes nothing
    found = answer(runs("runs", "clean", "--grace", "1", "--dry-run", "--json", cwd=folder))
    assert [(r["run_id"], r["closed"]) for r in found["runs"]] == [(killed_run, False)]
    assert "is gone" in found["runs"][0]["reason"]
    assert [(t["study"], t["trial"], t["failed"]) for t in found["trials"]] == [("killed", 0, False)]
    assert statuses(folder) == ({"killed": "RUNNING", "live": "RUNNING"},
                                {("killed", 0): "RUNNING", ("live", 0): "RUNNING"})
    # the clean ends them
    cleaned = answer(runs("runs", "clean", "--grace", "1", "--json", cwd=folder))
    assert [(r["run_id"], r["closed"]) for r in cleaned["runs"]] == [(killed_run, True)]
    assert [(t["study"], t["failed"]) for t in cleaned["trials"]] == [("killed", True)]
    assert statuses(folder) == ({"killed": "KILLED", "live": "RUNNING"},
                                {("killed", 0): "FAIL", ("live", 0): "RUNNING"})
    # and a second clean finds nothing; the people's output says so
    again = runs("runs", "clean", "--grace", "1", cwd=folder)
    assert again.returncode == 0
    assert again.stdout.splitlines() == ["runs: none left RUNNING by a dead process",
                                         "trials: none left RUNNING by a dead process"]


def test_older_than_closes_runs_that_cannot_be_checked(killed_and_live):
    import mlflow
    folder, _, _ = killed_and_live
    client = mlflow.MlflowClient(f"sqlite:///{folder}/mlflow.db")
    experiment = client.get_experiment_by_name("nightly").experiment_id
    untagged = client.create_run(experiment, run_name="from another tool")  # no process tags: cannot be checked
    young = answer(runs("runs", "clean", "--experiment", "nightly", "--older-than", "3600", "--json",
                        "--storage", f"sqlite:///{folder}/none.db", cwd=folder))
    assert {r["name"] for r in young["runs"]} == {"killed"}  # the untagged run is too young to be taken for dead
    old = answer(runs("runs", "clean", "--older-than", "0", "--json", cwd=folder))
    assert {r["name"] for r in old["runs"]} == {"from another tool"}
    assert client.get_run(untagged.info.run_id).info.status == "KILLED"
    assert statuses(folder)[0]["live"] == "RUNNING"  # a live process of this host: never, whatever its age
    assert not (folder / "none.db").exists()


def test_the_next_service_to_start_closes_the_killed_run(killed_and_live):
    from regression_lab.services import MlflowService
    folder, _, _ = killed_and_live
    service = MlflowService(tracking_uri=f"sqlite:///{folder}/mlflow.db", experiment_name="nightly",
                            autolog_disable=True)
    service.start()
    service.stop()
    assert statuses(folder)[0] == {"killed": "KILLED", "live": "RUNNING"}


def test_nothing_to_clean_is_bad_input_and_creates_nothing(tmp_path):
    done = runs("runs", "clean", "--json", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip().startswith("regression-lab: bad input: nothing to clean: no MLflow store at")
    assert json.loads(done.stdout.splitlines()[-1])["exit_code"] == 2
    assert list(tmp_path.iterdir()) == []


def test_a_server_that_does_not_answer_is_bad_input_at_once(tmp_path):
    began = time.monotonic()
    done = runs("runs", "clean", "--tracking-uri", f"http://127.0.0.1:{free_port()}", cwd=tmp_path)
    assert (done.returncode, len(done.stderr.strip().splitlines())) == (2, 1), done.stderr
    assert "no tracking server answers" in done.stderr
    assert time.monotonic() - began < 30
