"""TuningJob against a real Optuna SQLite store and a real MLflow store: resume, retries, workers, Dask, pruning."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import textwrap
from pathlib import Path

import pytest

from conftest import CLI, ROOT, Store, cli_env, run_cli

from regression_lab.data import DatasetReader
from regression_lab.jobs import TuningJob
from regression_lab.services import AlertsService, LoggerService
from regression_lab.trials import FloatParam, MedianPruner, NoPruner, RandomSampler, TrialStore

TESTS = Path(__file__).resolve().parent  # tuning_kinds.py lives here


def tuning_job(store: Store, trials_db, **settings) -> TuningJob:
    "A ridge search on the diabetes data, quiet, tracked in `store`, trials in `trials_db`."
    settings = {"model": {"KIND": "RidgeModel"}, "sampler": RandomSampler(seed=0), "pruner": NoPruner(),
                "n_trials": 6, "study_name": "study", "progress": False,
                "splitter": {"KIND": "KFoldSplitter", "n_splits": 3}, **settings}
    return TuningJob(inputs=DatasetReader(drop=["target"]), targets=DatasetReader(columns=["target"]),
                     store=TrialStore(url=f"sqlite:///{trials_db}", heartbeat_interval=1, grace_period=2),
                     logger_service=LoggerService(sink=str(trials_db.parent / "job.log"), colorize=False),
                     alerts_service=AlertsService(enable=False), mlflow_service=store.service(), **settings)


def run(job):
    with job:
        return job.run()


def states(history) -> list[str]:
    return history.sort_values("trial")["state"].tolist()


@pytest.mark.parametrize("workers", ["processes", "threads"])
def test_parallel_workers_fill_the_study_exactly_with_distinct_trials(store, tmp_path, workers):
    # when: eight trials on two workers (processes, as `auto` picks for the package's kinds, or threads)
    job = tuning_job(store, tmp_path / "optuna.db", n_trials=8, n_jobs=2, workers=workers, study_name=workers)
    result = run(job)
    history = job.store.history(workers)
    # then: exactly eight, each finished once, each a different configuration
    assert result.n_trials == 8
    assert states(history) == ["COMPLETE"] * 8
    assert history["params.alpha"].nunique() == 8
    assert result.best_value == pytest.approx(history["value"].min())
    # then: each fold's running score was reported
    assert set(history["folds"]) == {3}


def test_worker_processes_run_the_trials_and_the_parent_tracks_them_without_stray_runs(store, tmp_path):
    # when: a search of six trials with n_jobs=2 and the package's kinds (workers="auto")
    job = tuning_job(store, tmp_path / "optuna.db", n_trials=6, n_jobs=2, study_name="processes-only")
    result = run(job)
    # then: two processes other than this one ran the trials
    trials = job.store.load("processes-only").trials
    workers = {trial.user_attrs["worker"] for trial in trials}
    assert len(workers) == 2 and not any(worker.endswith(f":{os.getpid()}") for worker in workers)
    # then: MLflow holds the search's run and one nested run per trial, nothing else
    client = store.client()
    experiment_id = client.get_run(result.run_id).info.experiment_id
    runs = client.search_runs([experiment_id], f"attributes.start_time >= {client.get_run(result.run_id).info.start_time}")
    assert sorted(run.data.tags.get("mlflow.parentRunId", "") == result.run_id for run in runs) == [False] + [True] * 6


def test_a_worker_process_killed_mid_trial_leaves_its_trial_failed_and_retried(store, tmp_path, monkeypatch):
    # given: slow trials on two worker processes
    monkeypatch.syspath_prepend(str(TESTS))
    import tuning_kinds  # noqa: F401 (registers the kinds; the workers import the module too)
    job = tuning_job(store, tmp_path / "optuna.db", n_trials=4, n_jobs=2, study_name="killed-worker",
                     model={"KIND": "SlowRidgeModel", "delay": 1.0},
                     search_space={"alpha": FloatParam(low=0.01, high=10, log=True)})
    outcome = {}
    searcher = threading.Thread(target=lambda: outcome.setdefault("result", run(job)))
    searcher.start()
    # when: the worker of the first running trial is killed
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            trials = job.store.load("killed-worker").trials
        except Exception:  # no database or no study yet
            trials = []
        running = [trial for trial in trials if trial.state.name == "RUNNING" and "worker" in trial.user_attrs]
        if running:
            os.kill(int(running[0].user_attrs["worker"].rsplit(":", 1)[1]), signal.SIGKILL)
            break
        time.sleep(0.1)
    searcher.join(180)
    # then: the search ends with four finished configurations; what the dead worker held failed and was retried
    assert outcome["result"].n_trials == 4
    history = job.store.history("killed-worker")
    failed = history[history["state"] == "FAIL"]
    assert len(failed) >= 1 and all("process" in error.lower() for error in failed["error"])
    assert history[history["state"] == "COMPLETE"]["configuration"].nunique() == 4


def test_resuming_runs_only_the_missing_trials(store, tmp_path):
    # given: a finished study of four trials
    first = tuning_job(store, tmp_path / "optuna.db", n_trials=4)
    run(first)
    before = first.store.history("study")
    # when: the same study is asked for ten
    resumed = run(tuning_job(store, tmp_path / "optuna.db", n_trials=10))
    after = first.store.history("study")
    # then: six more trials ran, the first four untouched, no configuration tried twice
    assert resumed.n_trials == 10
    assert len(after) == 10
    assert after.head(4)[["trial", "value", "params.alpha"]].equals(before[["trial", "value", "params.alpha"]])
    assert after["params.alpha"].nunique() == 10
    # then: the store lists the study as finished
    studies = first.store.studies().set_index("study")
    assert studies.loc["study", "status"] == "finished"
    assert studies.loc["study", "complete"] == 10


def test_a_trial_that_raises_is_retried_and_every_attempt_recorded(store, tmp_path, monkeypatch):
    # given: a model whose first fit of each configuration raises
    monkeypatch.syspath_prepend(str(TESTS))
    import tuning_kinds  # noqa: F401 (registers the kinds)
    monkeypatch.setenv("FLAKY_DIR", str(tmp_path))
    job = tuning_job(store, tmp_path / "optuna.db", model={"KIND": "FlakyRidgeModel"}, n_trials=3, max_attempts=2,
                     search_space={"alpha": FloatParam(low=0.01, high=10, log=True)})
    # when
    result = run(job)
    history = job.store.history("study").sort_values("trial")
    # then: each configuration failed once, with its error, and finished on its second attempt
    assert result.n_trials == 3
    assert states(history) == ["FAIL", "COMPLETE"] * 3
    assert history.groupby("configuration")["attempt"].apply(list).tolist() == [[1, 2]] * 3
    failed = history[history["state"] == "FAIL"]
    assert all(error.startswith("RuntimeError: resource busy for alpha=") for error in failed["error"])
    # then: MLflow has one nested run per attempt under the search's run, failures marked FAILED
    client = store.client()
    children = client.search_runs([job.mlflow_service.experiment_id or client.get_run(result.run_id).info.experiment_id],
                                  f"tags.mlflow.parentRunId = '{result.run_id}'")
    assert sorted(child.info.status for child in children) == ["FAILED"] * 3 + ["FINISHED"] * 3
    assert all("resource busy" in c.data.tags["regression_lab.error"] for c in children if c.info.status == "FAILED")


def test_a_configuration_out_of_attempts_counts_as_done(store, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(TESTS))
    import tuning_kinds  # noqa: F401
    monkeypatch.setenv("FLAKY_DIR", str(tmp_path))
    # given: one attempt allowed, so the first configuration fails for good
    job = tuning_job(store, tmp_path / "optuna.db", model={"KIND": "FlakyRidgeModel"}, n_trials=2, max_attempts=1,
                     search_space={"alpha": FloatParam(low=0.01, high=10, log=True)})
    # when / then: the search has no finished trial to pick a best from, and says why
    with pytest.raises(RuntimeError, match="has no finished trial; last error: RuntimeError: resource busy"):
        run(job)
    history = job.store.history("study")
    assert states(history) == ["FAIL", "FAIL"]
    assert job.store.studies().set_index("study").loc["study", "status"] == "finished"


def test_the_parent_run_holds_the_best_parameters_and_the_history(store, tmp_path):
    job = tuning_job(store, tmp_path / "optuna.db", n_trials=5)
    result = run(job)
    parent = store.client().get_run(result.run_id)
    assert float(parent.data.params["best.alpha"]) == pytest.approx(result.best_params["alpha"])
    assert parent.data.metrics["best_value"] == pytest.approx(result.best_value)
    assert parent.data.metrics["trials_finished"] == 5
    artifacts = [a.path for a in store.client().list_artifacts(result.run_id)]
    assert "trials.csv" in artifacts and "job.json" in artifacts


def test_hopeless_trials_are_pruned_after_their_first_folds(store, tmp_path):
    # given: a space where most alphas are far too large, a pruner that starts after two trials
    job = tuning_job(store, tmp_path / "optuna.db", n_trials=14, pruner=MedianPruner(n_startup_trials=2, n_warmup_steps=0),
                     search_space={"alpha": FloatParam(low=1e-3, high=1e6, log=True)},
                     splitter={"KIND": "KFoldSplitter", "n_splits": 5})
    result = run(job)
    history = job.store.history("study")
    pruned = history[history["state"] == "PRUNED"]
    # then: some trials stopped before their last fold, and they still count towards the fourteen
    assert result.n_trials == 14
    assert len(pruned) >= 1
    assert (pruned["folds"] < 5).all()


def test_a_study_cannot_be_resumed_with_another_model(store, tmp_path):
    run(tuning_job(store, tmp_path / "optuna.db", n_trials=2))
    other = tuning_job(store, tmp_path / "optuna.db", n_trials=4, model={"KIND": "HistGradientBoostingModel"})
    with pytest.raises(Exception, match="another model, metric or search space"):
        run(other)


def test_a_search_space_naming_no_model_field_is_refused(store, tmp_path):
    with pytest.raises(ValueError, match="'depth' not a field of RidgeModel"):
        tuning_job(store, tmp_path / "optuna.db", search_space={"depth": {"KIND": "IntParam", "low": 1, "high": 3}})


# ------------------------------------------------------------------------------------------- interrupted process

def trial_states(db) -> dict[str, int]:
    "Trial states in the Optuna database `db`, read with plain sqlite3 (no Optuna in the test process)."
    import sqlite3
    with sqlite3.connect(db) as connection:
        return dict(connection.execute("select state, count(*) from trials group by state").fetchall())


def slow_search(tmp_path: Path, study: str, n_trials: int, grace: float, seed: int,
                n_jobs: int = 1) -> tuple[list[str], dict, Path]:
    "The command, environment and trial database of a search whose trials take about 1.2 s each."
    config = tmp_path / "tune.yaml"
    config.write_text(textwrap.dedent(f"""
        imports: [tuning_kinds]
        job:
          KIND: TuningJob
          inputs: {{KIND: DatasetReader, drop: [target]}}
          targets: {{KIND: DatasetReader, columns: [target]}}
          model: {{KIND: SlowRidgeModel, delay: 0.4}}
          search_space: {{alpha: {{KIND: FloatParam, low: 0.01, high: 10, log: true}}}}
          splitter: {{KIND: KFoldSplitter, n_splits: 3}}
          sampler: {{KIND: RandomSampler, seed: {seed}}}
          pruner: {{KIND: NoPruner}}
          n_trials: {n_trials}
          n_jobs: {n_jobs}
          study_name: {study}
          store: {{url: "sqlite:///optuna.db", heartbeat_interval: 1, grace_period: {grace}}}
          progress: false
    """))
    command = [str(CLI), "run", str(config), "--json", "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"]
    return command, cli_env(PYTHONPATH=str(TESTS)), tmp_path / "optuna.db"


def wait_for_trials(db: Path, process: subprocess.Popen, complete: int, timeout: float = 120, running: int = 1) -> None:
    "Wait until `db` holds `complete` finished trials and `running` running; fail the test if it never does."
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            counts = trial_states(db) if db.exists() else {}
        except Exception:
            counts = {}
        if counts.get("COMPLETE", 0) >= complete and counts.get("RUNNING", 0) == running:
            return
        time.sleep(0.1)
    process.kill()
    pytest.fail(f"the search never reached {complete} finished trials: {process.communicate()[1][-2000:]}")


def finished(command: list[str], cwd: Path, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    "`command` run to its end; past `timeout` it is aborted and the test fails with every thread's stack."
    process = subprocess.Popen(command, cwd=cwd, env={**env, "PYTHONFAULTHANDLER": "1"}, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGABRT)  # faulthandler prints where each thread waits
        stacks = process.communicate()[1].split("\nExtension modules")[0]
        pytest.fail(f"still running after {timeout:g} s: {stacks[-6000:]}")
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def test_a_killed_search_resumes_with_an_exact_count_and_retries_the_interrupted_trial(tmp_path):
    # given: a search whose trials are slow enough to interrupt
    command, env, db = slow_search(tmp_path, "interrupted", n_trials=5, grace=2, seed=3)
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True)
    # when: the process is killed once two trials are complete and a third is running
    wait_for_trials(db, process, complete=2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    before = trial_states(db)
    assert before.get("RUNNING") == 1
    time.sleep(3)  # past the grace period: the running trial's heartbeat is stale
    # when: the same command runs again
    done = finished(command, tmp_path, env)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.splitlines()[-1])
    # then: exactly five configurations finished; the interrupted one failed and was retried; none ran twice
    assert summary["n_trials"] == 5
    from regression_lab.trials import TrialStore
    history = TrialStore(url=f"sqlite:///{db}").history("interrupted").sort_values("trial")
    complete = history[history["state"] == "COMPLETE"]
    assert len(complete) == 5
    assert complete["configuration"].nunique() == 5
    failed = history[history["state"] == "FAIL"]
    assert len(failed) == 1
    retried = history[history["configuration"] == failed["configuration"].iloc[0]]
    assert retried["attempt"].tolist() == [1, 2]
    assert retried["state"].tolist() == ["FAIL", "COMPLETE"]


def test_a_trial_whose_process_died_before_its_first_heartbeat_is_failed_and_retried(tmp_path):
    # given: a finished search of two trials, then a third trial asked by a process killed before it recorded a heartbeat
    import optuna
    command, env, db = slow_search(tmp_path, "orphaned", n_trials=2, grace=2, seed=5)
    assert finished(command, tmp_path, env).returncode == 0
    study = optuna.load_study(study_name="orphaned", storage=f"sqlite:///{db}")
    orphan = study.ask()
    # when: the search is resumed for three trials
    command, env, db = slow_search(tmp_path, "orphaned", n_trials=3, grace=2, seed=5)
    done = finished(command, tmp_path, env, timeout=120)
    # then: it ends with three finished configurations instead of waiting for the orphan forever; the orphan failed
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.splitlines()[-1])["n_trials"] == 3
    assert "died before their first heartbeat" in done.stderr
    assert study.get_trials()[orphan.number].state.name == "FAIL"


# ------------------------------------------------------------------------------------------------------- Dask

def test_trials_run_on_a_dask_cluster(store, tmp_path):
    from distributed import LocalCluster
    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as cluster:
        job = tuning_job(store, tmp_path / "optuna.db", n_trials=6, scheduler=cluster.scheduler_address)
        result = run(job)
        workers = set(cluster.scheduler_info["workers"]) if isinstance(cluster.scheduler_info, dict) else None
    history = job.store.history("study")
    assert result.n_trials == 6
    assert states(history) == ["COMPLETE"] * 6
    study = job.store.load("study")
    used = {trial.user_attrs["worker"] for trial in study.get_trials()}
    assert len(used) >= 1 and all(address.startswith("tcp://127.0.0.1:") for address in used)
    if workers:
        assert used <= workers


def test_a_dask_worker_that_dies_leaves_its_trial_failed_and_retried(store, tmp_path, monkeypatch):
    from distributed import Client, LocalCluster
    monkeypatch.syspath_prepend(str(TESTS))
    monkeypatch.setenv("PYTHONPATH", str(TESTS))
    import tuning_kinds  # noqa: F401
    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        job = tuning_job(store, tmp_path / "optuna.db", n_trials=3, scheduler=cluster.scheduler_address,
                         model={"KIND": "SlowRidgeModel", "delay": 1.0},
                         search_space={"alpha": FloatParam(low=0.01, high=10, log=True)})
        outcome = {}
        searcher = threading.Thread(target=lambda: outcome.setdefault("result", run(job)))
        searcher.start()
        # when: a worker is killed while it holds a trial
        killed = None
        deadline = time.time() + 120
        while killed is None and time.time() < deadline:
            try:
                for trial in job.store.load("study").get_trials():
                    if trial.state.name == "RUNNING" and "worker" in trial.user_attrs:
                        pids = client.run(os.getpid, workers=[trial.user_attrs["worker"]])
                        os.kill(pids[trial.user_attrs["worker"]], signal.SIGKILL)
                        killed = trial.number
                        break
            except Exception:
                pass
            time.sleep(0.1)
        searcher.join(timeout=240)
    assert killed is not None, "no trial was seen running on a worker"
    assert "result" in outcome, "the search did not finish"
    history = job.store.history("study").set_index("trial")
    # then: the killed trial is FAIL with the dead worker named, and its configuration finished on a retry
    assert history.loc[killed, "state"] == "FAIL"
    assert "died during the trial" in history.loc[killed, "error"]
    configuration = history.loc[killed, "configuration"]
    assert "COMPLETE" in history[history["configuration"] == configuration]["state"].tolist()
    assert outcome["result"].n_trials == 3
    assert "RUNNING" not in history["state"].tolist()


# ------------------------------------------------------------------------------------------------ command line

def test_tune_command_prints_the_study_and_its_best(tmp_path):
    done = run_cli("tune", "--model", "ridge", "--trials", "4", "--study", "cli", "--n-jobs", "2",
                   "--storage", f"sqlite:///{tmp_path}/trials.db", "--json",
                   "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.splitlines()[-1])
    assert {"study", "n_trials", "best_params", "best_value"} <= set(summary)
    assert summary["study"] == "cli" and summary["n_trials"] == 4
    assert set(summary["best_params"]) == {"alpha"}


# ------------------------------------------------------------------------------------- several tuners, one study

def most_at_once(history) -> int:
    "The largest number of trials of `history` that were running at the same moment."
    events = sorted([(start, 1) for start in history["started"]] + [(end, -1) for end in history["ended"]])
    running = peak = 0
    for _, change in events:
        running += change
        peak = max(peak, running)
    return peak


def test_three_tuner_processes_fill_one_study_exactly_with_distinct_configurations_on_the_shared_slots(tmp_path):
    # given: a fresh study, and an MLflow store made beforehand (creating it is not what this test is about)
    tracking = Store(tmp_path)
    service = tracking.service()
    service.start()
    service.stop()
    storage = f"sqlite:///{tmp_path}/optuna.db"
    command = [str(CLI), "tune", "--model", "ridge", "--trials", "6", "--study", "shared", "--n-jobs", "2",
               "--storage", storage, "--tracking-uri", tracking.uri, "--json"]
    # when: three tuners with autologging on (the command's default) fill the study together
    tuners = [subprocess.Popen(command, cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True) for _ in range(3)]
    outputs = [tuner.communicate(timeout=300) for tuner in tuners]
    assert [tuner.returncode for tuner in tuners] == [0, 0, 0], [err[-2000:] for _, err in outputs]
    # then: exactly six configurations, each tried once and finished (or pruned), all different
    history = TrialStore(url=storage).history("shared")
    assert len(history) == 6 and set(history["state"]) <= {"COMPLETE", "PRUNED"}
    assert history["params.alpha"].nunique() == 6
    assert {json.loads(out.splitlines()[-1])["n_trials"] for out, _ in outputs} == {6}
    # then: never more trials at once than this machine's slots, whatever each tuner's --n-jobs
    assert most_at_once(history) <= len(os.sched_getaffinity(0))
    # then: one run per tuner and one nested run per trial; no stray runs from autologging in the trial threads
    runs = tracking.runs()
    top = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    assert sorted(run.data.tags.get("regression_lab.job") for run in top) == ["TuningJob"] * 3
    assert len(runs) - len(top) == 6


# ------------------------------------------------------------------------------------------------------- alerts

def test_a_failed_search_alerts_once_with_its_error_and_keeps_it_with_the_experiment(store, tmp_path, monkeypatch, capfd):
    monkeypatch.syspath_prepend(str(TESTS))
    import tuning_kinds  # noqa: F401
    monkeypatch.setenv("FLAKY_DIR", str(tmp_path))
    job = tuning_job(store, tmp_path / "optuna.db", model={"KIND": "FlakyRidgeModel"}, n_trials=1, max_attempts=1,
                     search_space={"alpha": FloatParam(low=0.01, high=10, log=True)})
    with pytest.raises(RuntimeError, match="has no finished trial"):
        run(job)
    alerts = [line for line in capfd.readouterr().err.splitlines() if line.startswith("[regression_lab]")]
    assert len(alerts) == 1 and alerts[0].startswith("[regression_lab] TuningJob failed: study: RuntimeError: study")
    from regression_lab.experiments import ExperimentStore
    with ExperimentStore(job.store) as experiments:
        errors = experiments.errors("study")
    assert errors["job"].isna().tolist() == [False, True]  # the trial's error, then the search's own
    assert errors["message"].iloc[1].startswith("RuntimeError: study 'study' has no finished trial")


def test_a_finished_search_alerts_with_its_best_result(store, tmp_path, capfd):
    result = run(tuning_job(store, tmp_path / "optuna.db", n_trials=2))
    alerts = [line for line in capfd.readouterr().err.splitlines() if line.startswith("[regression_lab]")]
    assert alerts == [f"[regression_lab] TuningJob finished: study: best rmse={result.best_value:.4g} "
                      f"with {result.best_params} after 2 trials"]


# ------------------------------------------------------------------ checked before anything is written (issue 11)

def test_more_folds_than_rows_is_refused_on_entering_before_any_store_is_created(tmp_path):
    # given: a ten-row table, ten folds asked of it, both stores in an empty folder
    fresh = Store(tmp_path / "mlflow")
    fresh.folder.mkdir()
    job = tuning_job(fresh, tmp_path / "trials.db", splitter={"KIND": "KFoldSplitter", "n_splits": 10}).model_copy(
        update={"inputs": DatasetReader(drop=["target"], limit=10), "targets": DatasetReader(columns=["target"], limit=10)})
    # when / then: entering the job names the setting and the row count
    from regression_lab.core import DataError
    with pytest.raises(DataError, match=r"splitter.n_splits: KFoldSplitter: 10 row\(s\) cannot make 10 folds"):
        run(job)
    # then: no trial store, no MLflow store, the refusal logged in one line
    assert not (tmp_path / "trials.db").exists() and list(fresh.folder.iterdir()) == []
    assert "TuningJob stopped on bad input: splitter.n_splits" in (tmp_path / "job.log").read_text()


def test_a_study_made_for_another_search_is_refused_before_the_mlflow_store_opens(store, tmp_path):
    # given: a finished study of ridge models
    run(tuning_job(store, tmp_path / "trials.db", n_trials=2))
    # when: the same study name is searched with another metric, tracked in a new MLflow store
    fresh = Store(tmp_path / "mlflow")
    fresh.folder.mkdir()
    from regression_lab.core import ConfigError
    with pytest.raises(ConfigError, match="was created for another model, metric or search space"):
        run(tuning_job(fresh, tmp_path / "trials.db", n_trials=2, metric={"KIND": "MAE"}))
    # then: the MLflow store was never created and the study is as it was
    assert list(fresh.folder.iterdir()) == []
    assert len(TrialStore(url=f"sqlite:///{tmp_path / 'trials.db'}").history("study")) == 2


def test_a_password_in_the_trial_store_url_is_masked_in_the_error_and_the_log(tmp_path):
    # given: a trial store on a server that does not answer, with a password in its URL
    fresh = Store(tmp_path / "mlflow")
    fresh.folder.mkdir()
    job = tuning_job(fresh, tmp_path / "trials.db").model_copy(
        update={"store": TrialStore(url="postgresql+psycopg://ada:s3cr3t-pw@127.0.0.1:9/optuna")})
    # when / then: entering refuses, naming the setting, the password masked
    from regression_lab.core import ConfigError
    with pytest.raises(ConfigError, match=r"store.url: the trial store 'postgresql\+psycopg://ada:\*\*\*@127.0.0.1:9/optuna'") as refused:
        run(job)
    logged = (tmp_path / "job.log").read_text()
    assert "s3cr3t-pw" not in str(refused.value) and "s3cr3t-pw" not in logged and "ada:***@127.0.0.1:9" in logged
    assert list(fresh.folder.iterdir()) == []


def test_caveats_about_the_data_are_warned_and_tagged_on_the_search_run(store, tmp_path):
    # given: twenty rows, enough for three folds and too few to trust
    job = tuning_job(store, tmp_path / "trials.db", n_trials=2, study_name="few").model_copy(
        update={"inputs": DatasetReader(drop=["target"], limit=20), "targets": DatasetReader(columns=["target"], limit=20)})
    # when
    result = run(job)
    # then: one warning in the log, and the tag on the search's run
    logged = (tmp_path / "job.log").read_text()
    assert logged.count("WARNING") >= 1 and logged.count("caveat: only 20 rows") == 1
    tag = store.client().get_run(result.run_id).data.tags["regression_lab.caveats"]
    assert tag.startswith("only 20 rows from ") and tag.endswith("scores will be noisy")


def test_an_unreachable_scheduler_is_refused_before_any_store_is_created(tmp_path):
    fresh = Store(tmp_path / "mlflow")
    fresh.folder.mkdir()
    from regression_lab.core import ConfigError
    started = time.monotonic()
    with pytest.raises(ConfigError, match="scheduler: 'tcp://127.0.0.1:9' cannot be reached"):
        run(tuning_job(fresh, tmp_path / "trials.db", scheduler="tcp://127.0.0.1:9"))
    assert time.monotonic() - started < 30
    assert not (tmp_path / "trials.db").exists() and list(fresh.folder.iterdir()) == []


def test_ctrl_c_fails_the_trials_in_flight_and_a_resume_at_once_reaches_the_exact_count(tmp_path):
    # given: a search of slow trials, with a grace period far longer than the test waits
    command, env, db = slow_search(tmp_path, "stopped", n_trials=4, grace=600, seed=5)
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_trials(db, process, complete=1)
    # when: Ctrl-C
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    # then: exit 130 with one line, and no trial left RUNNING
    assert process.returncode == 130, err[-2000:]
    assert err.strip().splitlines()[-1] == "regression-lab: stopped (Ctrl-C)"
    assert trial_states(db).get("RUNNING", 0) == 0 and trial_states(db).get("FAIL") == 1
    # when: the same command at once, well inside the grace period
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    # then: exactly the requested count, the stopped configuration retried
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.splitlines()[-1])["n_trials"] == 4
    assert trial_states(db) == {"COMPLETE": 4, "FAIL": 1}


def test_ctrl_c_stops_the_worker_processes_and_fails_their_trials(tmp_path):
    import psutil
    # given: a search of slow trials on two worker processes, both busy
    command, env, db = slow_search(tmp_path, "stopped-workers", n_trials=6, grace=600, seed=7, n_jobs=2)
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_trials(db, process, complete=1, running=2)
    helpers = psutil.Process(process.pid).children(recursive=True)  # the worker server and its workers
    # when: Ctrl-C reaches the search's process alone (not its process group)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    # then: exit 130, both trials in flight failed, and no worker left running one
    assert process.returncode == 130, err[-2000:]
    assert trial_states(db).get("RUNNING", 0) == 0 and trial_states(db).get("FAIL", 0) >= 1, err[-3000:]
    assert len(helpers) >= 3
    _, alive = psutil.wait_procs(helpers, timeout=15)
    assert alive == [], [helper.cmdline() for helper in alive]
