"""The experiment store against a real SQLite trial database: a study tuned on a held-out table and read back
through the connector, leases shared and expired across real processes, a closed store refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import cli_env

from regression_lab.core import ConfigError
from regression_lab.data import CsvReader
from regression_lab.experiments import ExperimentStore, StoreClosedError, cpu_type
from regression_lab.jobs import TuningJob
from regression_lab.services import AlertsService, LoggerService
from regression_lab.trials import NoPruner, RandomSampler, TrialStore


@pytest.fixture(scope="module")
def tuned(store, csv_file, tmp_path_factory):
    "A ridge study of five trials on the house table, in a trial store of its own; the job and its result."
    folder = tmp_path_factory.mktemp("trials")
    job = TuningJob(inputs=CsvReader(path=str(csv_file), drop=["price"]), targets=CsvReader(path=str(csv_file), columns=["price"]),
                    model={"KIND": "RidgeModel"}, n_trials=5, study_name="houses", sampler=RandomSampler(seed=1),
                    pruner=NoPruner(), splitter={"KIND": "KFoldSplitter", "n_splits": 3}, progress=False,
                    store=TrialStore(url=f"sqlite:///{folder}/optuna.db"),
                    logger_service=LoggerService(sink=str(folder / "job.log"), colorize=False),
                    alerts_service=AlertsService(enable=False), mlflow_service=store.service())
    with job:
        return job, job.run()


def test_a_tuned_study_reads_back_through_the_connector(tuned):
    job, result = tuned
    with ExperimentStore(job.store) as experiments:
        # then: the study is listed, for its user, finished
        table = experiments.experiments(user=experiments.user).set_index("study")
        assert table.loc["houses", "status"] == "finished" and table.loc["houses", "complete"] == 5
        assert experiments.experiment_status("houses") == "finished"
        assert experiments.experiments(user="somebody else").empty
        # then: best in the study's direction is the job's best; maximising gives the worst job
        best, worst = experiments.best("houses"), experiments.best("houses", maximize=True)
        history = experiments.history("houses")
        assert best.score == pytest.approx(result.best_value) == pytest.approx(history["value"].min())
        assert best.params == result.best_params
        assert worst.score == pytest.approx(history["value"].max())
        assert experiments.best("houses", maximize=False) == best
        # then: every job has its three fold scores and its final results
        intermediate = experiments.experiment_intermediate_results("houses", status="complete")
        assert sorted(intermediate) == sorted(history["job"]) and all(len(v) == 3 for v in intermediate.values())
        assert experiments.intermediate_results_of([best.job]) == {best.job: intermediate[best.job]}
        assert set(experiments.final_results(best.job)) == {"rmse", "mae", "r2", "mape"}
        assert experiments.running_jobs("houses") == []
        assert experiments.errors("houses").empty


def test_jobs_attempts_results_and_errors_round_trip(tmp_path):
    with ExperimentStore(f"sqlite:///{tmp_path}/optuna.db", user="ada") as experiments:
        study = experiments.create_experiment("manual", {"space": "alpha"}, direction="maximize")
        assert experiments.experiment_status(study) == "created"
        experiments.start_experiment("manual", {"space": "alpha"})
        slot = experiments.register_cpu_slots(1)[0]
        # a job on a slot: its first attempt fails, its retry finishes
        job = experiments.start_job(study, {"alpha": 1.0}, resource=slot)
        assert experiments.available_resources(cpu_type()) == [] and experiments.running_jobs(study) == [job]
        experiments.save_intermediate(job, 0.4)
        experiments.fail_job(job, "MemoryError: fold 2", resource=slot)
        assert experiments.job_status(job) == "fail" and experiments.available_resources(cpu_type()) == [slot]
        attempt = experiments.retry_job(job, resource=slot)
        assert experiments.job_of(attempt) == job and experiments.job_status(job) == "running"
        for score in (0.5, 0.7):
            experiments.save_intermediate(job, score)
        experiments.save_results(job, {"r2": 0.5}, step=0)
        experiments.save_results(job, {"r2": 0.7, "rmse": 3.0}, step=1)
        assert experiments.set_last_results(job) == {"r2": 0.7, "rmse": 3.0}
        experiments.finish_job(job, 0.7, resource=slot)
        other = experiments.start_job(study, {"alpha": 9.0})
        experiments.set_job_status(other, "pruned")
        # then
        assert experiments.intermediate_results(job) == [0.5, 0.7]
        assert experiments.experiment_intermediate_results(study, status="pruned") == {other: []}
        assert experiments.best(study).job == job and experiments.best(study).score == 0.7
        assert experiments.errors(study, job=job)["message"].tolist() == ["MemoryError: fold 2"]
        history = experiments.history(study)
        assert history[history["job"] == job]["attempt"].tolist() == [1, 2]
        assert history["params.alpha"].tolist() == [1.0, 1.0, 9.0]
        experiments.end_experiment(study)
        assert experiments.experiment_status("manual") == "finished"
        assert experiments.restart_experiment("manual") == study and experiments.experiment_status(study) == "running"
        experiments.delete_experiment(study)
        with pytest.raises(ConfigError, match="no study 'manual'"):
            experiments.best("manual")


def test_a_closed_store_refuses_every_call(tmp_path):
    experiments = ExperimentStore(f"sqlite:///{tmp_path}/optuna.db")
    experiments.start_experiment("x")
    experiments.close()
    assert experiments.is_closed()
    for call in (lambda: experiments.experiments(), lambda: experiments.best("x"), lambda: experiments.resources(),
                 lambda: experiments.start_job("x")):
        with pytest.raises(StoreClosedError, match="is closed"):
            call()


HOLDER = textwrap.dedent("""
    import sys, time
    from regression_lab.experiments import ExperimentStore, cpu_type
    from regression_lab.trials import TrialStore
    store = ExperimentStore(TrialStore(url=sys.argv[1], grace_period=2))
    store.register_cpu_slots(2)
    taken = [store.take_any(cpu_type()) for _ in range(int(sys.argv[2]))]
    print(" ".join(map(str, taken)), flush=True)
    for _ in range(240):  # the heartbeat: renew the leases held
        store.renew_resources([t for t in taken if t is not None])
        time.sleep(0.25)
""")


def test_leases_are_shared_by_processes_and_expire_when_their_holder_dies(tmp_path):
    url = f"sqlite:///{tmp_path}/optuna.db"
    holders = []
    try:
        # when: two processes each ask for two of the two slots
        for _ in range(2):
            holder = subprocess.Popen([sys.executable, "-c", HOLDER, url, "2"], stdout=subprocess.PIPE, text=True,
                                      env=cli_env())
            holders.append((holder, holder.stdout.readline().split()))
        # then: the first got both, the second none
        assert [len([t for t in taken if t != "None"]) for _, taken in holders] == [2, 0]
        experiments = ExperimentStore(TrialStore(url=url, grace_period=2))
        assert experiments.resources().set_index("type").loc[cpu_type(), ["total", "in_use"]].tolist() == [2, 2]
        # when: the holder is killed; then: its leases run out after the grace period
        os.kill(holders[0][0].pid, signal.SIGKILL)
        holders[0][0].wait()
        assert experiments.available_resources(cpu_type()) == []
        time.sleep(2.5)
        assert len(experiments.available_resources(cpu_type())) == 2
    finally:
        for holder, _ in holders:
            holder.kill()
            holder.wait()
