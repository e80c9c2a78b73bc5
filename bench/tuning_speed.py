"""Tuning speed: 2 workers against 1, and what per-trial tracking costs against bare cross-validation.

32 trials of a 50-tree random forest, 5-fold cross-validated on the diabetes data (TRIALS.md's reference trial).
In one process, alternating, several repeats, medians:
- bare: the same 32 configurations cross-validated in a plain loop (no Optuna, no MLflow);
- TuningJob, n_jobs=1 and n_jobs=2: Optuna SQLite trial store, one nested MLflow run per trial;
- TuningJob on a Dask LocalCluster of 2 worker processes (started once, before the timings, as a cluster is).
Targets: 2 workers >= 1.7x faster than 1; tracking <= 10% over bare.

    .venv/bin/python bench/tuning_speed.py [--repeats 3] [--trials 32]
"""
import argparse
import statistics
import tempfile
import time
from pathlib import Path

from threadpoolctl import threadpool_limits

from regression_lab.data import DatasetReader
from regression_lab.jobs import TuningJob
from regression_lab.services import AlertsService, LoggerService, MlflowService
from regression_lab.trials import NoPruner, RandomSampler, TrialStore


def make_job(folder: Path, study: str, trials: int, n_jobs: int, scheduler: str | None = None) -> TuningJob:
    return TuningJob(
        inputs=DatasetReader(drop=["target"]), targets=DatasetReader(columns=["target"]),
        model={"KIND": "RandomForestModel", "n_estimators": 50},
        search_space={"max_depth": {"KIND": "IntParam", "low": 3, "high": 12},
                      "min_samples_leaf": {"KIND": "IntParam", "low": 1, "high": 10},
                      "max_features": {"KIND": "FloatParam", "low": 0.3, "high": 1.0}},
        sampler=RandomSampler(seed=7), pruner=NoPruner(), n_trials=trials, n_jobs=n_jobs, study_name=study,
        scheduler=scheduler,
        store=TrialStore(url=f"sqlite:///{folder}/optuna.db"), progress=False,
        logger_service=LoggerService(sink=str(folder / "bench.log"), level="WARNING"),
        alerts_service=AlertsService(enable=False),
        mlflow_service=MlflowService(tracking_uri=f"sqlite:///{folder}/mlflow.db",
                                     registry_uri=f"sqlite:///{folder}/mlflow.db", autolog_disable=True))


def bare(job: TuningJob, configurations: list[dict]) -> None:
    "The same cross-validation as the trials, in a plain loop."
    inputs, targets = job.inputs.read(), job.targets.read()
    metrics = job.scored_metrics()
    with threadpool_limits(limits=1):
        for params in configurations:
            model = job.configured_model(params)
            for train, test in job.splitter.split(inputs, targets):
                predicted = model.fit(inputs.iloc[train], targets.iloc[train]).predict(inputs.iloc[test])
                [metric.score(targets.iloc[test], predicted) for metric in metrics]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--trials", type=int, default=32)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-tuning-"))
    warm = make_job(folder, "warm-up", 2, 1)  # creates both stores' tables once, outside the timings
    with warm:
        warm.run()
    configurations = None
    from distributed import LocalCluster
    cluster = LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None)
    times = {"TuningJob n_jobs=1": [], "bare cross-validation": [], "TuningJob n_jobs=2": [],
             "TuningJob Dask 2 procs": []}
    for repeat in range(args.repeats):
        for name in times:
            start = time.perf_counter()
            if name.startswith("bare"):
                bare(warm, configurations)
            elif "Dask" in name:
                job = make_job(folder, f"dask-{repeat}", args.trials, 1, scheduler=cluster.scheduler_address)
                with job:
                    job.run()
            else:
                job = make_job(folder, f"{name[-1]}-{repeat}", args.trials, int(name[-1]))
                with job:
                    job.run()
                if configurations is None:
                    history = job.store.history(job.study_name)
                    configurations = [{k.removeprefix("params."): v for k, v in row.items() if k.startswith("params.")}
                                      for row in history.to_dict("records")]
                    configurations = [{k: (int(v) if k != "max_features" else v) for k, v in c.items()}
                                      for c in configurations]
            times[name].append(time.perf_counter() - start)
    cluster.close()
    medians = {name: statistics.median(times[name]) for name in
               ("bare cross-validation", "TuningJob n_jobs=1", "TuningJob n_jobs=2", "TuningJob Dask 2 procs")}
    base = medians["bare cross-validation"]
    print(f"\n{args.trials} trials (50-tree forest, 5 folds, diabetes), {args.repeats} alternating repeats, medians\n")
    print(f"| {'run':<22} | {'median s':>8} | {'per trial ms':>12} | {'vs bare':>7} |")
    print(f"|{'-' * 24}|{'-' * 10}|{'-' * 14}|{'-' * 9}|")
    for name, median in medians.items():
        print(f"| {name:<22} | {median:>8.2f} | {1000 * median / args.trials:>12.0f} | {median / base:>7.2f} |")
    speedup = medians["TuningJob n_jobs=1"] / medians["TuningJob n_jobs=2"]
    overhead = medians["TuningJob n_jobs=1"] / base - 1
    dask = medians["TuningJob n_jobs=1"] / medians["TuningJob Dask 2 procs"]
    print(f"\n2 workers vs 1: threads {speedup:.2f}x, Dask processes {dask:.2f}x "
          f"(target >= 1.70: {'met' if max(speedup, dask) >= 1.7 else 'NOT met'})")
    print(f"tracking overhead per trial: {100 * overhead:+.1f}% (target <= 10%: {'met' if overhead <= 0.10 else 'NOT met'})")


if __name__ == "__main__":
    main()
