"""Tuning speed: two workers against one and against this machine's own two-process speed-up; tracking against bare CV.

Two trial sizes, each 5-fold cross-validated random forests:
- small: 50 trees on the diabetes data (442 rows), about a third of a second a trial;
- large: 100 trees on 4,000 generated rows, a second or more a trial.

For each size, in one run of this script, alternating, medians of `--repeats`:
- calibration: the bare cross-validation of the same configurations by one process, then split in two halves done by
  two processes at once (each imported and loaded before a common start); the machine's two-process speed-up is
  one's time over two's. It is what this machine gives two independent processes in the same period;
- bare: the same cross-validation in a plain loop in this process (no Optuna, no MLflow);
- TuningJob n_jobs=1, and n_jobs=2 (`workers="auto"`: worker processes), Optuna SQLite store, a nested MLflow run
  per trial. The first two-worker search of a process also starts the worker server; that one-time cost is shown
  apart, and the timed searches run after it.

Below the table, for n_jobs=1, where a search's time goes: before its first trial (service, run, lineage, study),
inside its trials (each trial's cross-validation, timed on its thread, against the bare work), between trials
(telling the study, tracking, leasing, asking the next) and after its last (the best trial's record, the nested runs
still being written).

Targets: n_jobs=2 speed-up >= 90% of the calibration; n_jobs=1 at most 5% over bare; no stray MLflow runs (a search
leaves its own run and one nested run per attempt, nothing else).

    .venv/bin/python bench/tuning_speed.py [--repeats 3] [--small 24] [--large 10] [--only small|large]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

SIZES = {"small": {"n_estimators": 50}, "large": {"n_estimators": 100}}
SPACE = {"max_depth": {"KIND": "IntParam", "low": 3, "high": 12},
         "min_samples_leaf": {"KIND": "IntParam", "low": 1, "high": 10},
         "max_features": {"KIND": "FloatParam", "low": 0.3, "high": 1.0}}


def readers(size: str, folder: Path) -> tuple[dict, dict]:
    "The job's inputs and targets readers for `size`: the diabetes data, or 4,000 generated rows in a CSV file."
    if size == "small":
        return {"KIND": "DatasetReader", "drop": ["target"]}, {"KIND": "DatasetReader", "columns": ["target"]}
    path = folder / "large.csv"
    if not path.exists():
        rng = np.random.default_rng(0)
        table = pd.DataFrame(rng.normal(size=(4000, 10)), columns=[f"x{i}" for i in range(10)])
        table["y"] = np.sin(table["x0"]) * 3 + table["x1"] ** 2 + table["x2"] * table["x3"] + rng.normal(size=4000)
        table.to_csv(path, index=False)
    return {"KIND": "CsvReader", "path": str(path), "drop": ["y"]}, {"KIND": "CsvReader", "path": str(path), "columns": ["y"]}


def make_job(size: str, folder: Path, study: str, trials: int, n_jobs: int):
    from regression_lab.jobs import TuningJob
    from regression_lab.services import AlertsService, LoggerService, MlflowService
    from regression_lab.trials import NoPruner, RandomSampler, TrialStore
    inputs, targets = readers(size, folder)
    return TuningJob(
        inputs=inputs, targets=targets, model={"KIND": "RandomForestModel", **SIZES[size]}, search_space=SPACE,
        sampler=RandomSampler(seed=7), pruner=NoPruner(), n_trials=trials, n_jobs=n_jobs, study_name=study,
        store=TrialStore(url=f"sqlite:///{folder}/optuna.db"), progress=False,
        logger_service=LoggerService(sink=str(folder / "bench.log"), level="WARNING"),
        alerts_service=AlertsService(enable=False),
        mlflow_service=MlflowService(tracking_uri=f"sqlite:///{folder}/mlflow.db", autolog_disable=True))


def bare(size: str, folder: Path, configurations: list[dict]) -> None:
    "The trials' cross-validation of `configurations` in a plain loop, one thread, as a trial runs it."
    from threadpoolctl import threadpool_limits
    job = make_job(size, folder, "bare", 1, 1)
    inputs, targets = job.inputs.read(), job.targets.read()
    metrics = job.scored_metrics()
    with threadpool_limits(limits=1):
        for params in configurations:
            model = job.configured_model(params)
            for train, test in job.splitter.split(inputs, targets):
                predicted = model.fit(inputs.iloc[train], targets.iloc[train]).predict(inputs.iloc[test])
                [metric.score(targets.iloc[test], predicted) for metric in metrics]


def calibrate(size: str, folder: Path, configurations: list[dict], processes: int) -> float:
    "Seconds for `processes` fresh processes, started together once loaded, to share the bare work of `configurations`."
    shares = [configurations[i::processes] for i in range(processes)]
    children = [subprocess.Popen([sys.executable, __file__, "--share", size, str(folder), json.dumps(share)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for share in shares]
    for child in children:  # each says it is ready once imported, with its data read
        assert child.stdout.readline().strip() == "ready"
    for child in children:
        child.stdin.write("go\n")
        child.stdin.flush()
    return max(float(child.communicate()[0].strip()) for child in children)


def share(size: str, folder: str, configurations: str) -> None:
    "A calibration process: load, say ready, wait for go, do the bare work, print its seconds."
    bare(size, Path(folder), [])  # imports and reads once before the clock starts
    print("ready", flush=True)
    sys.stdin.readline()
    start = time.perf_counter()
    bare(size, Path(folder), json.loads(configurations))
    print(time.perf_counter() - start, flush=True)


EVALUATIONS: list[tuple[float, float]] = []  # (start, end) of each trial evaluated on a thread of this process


def _timing_evaluations() -> None:
    "Record when each trial run on a thread of this process (n_jobs=1) starts and ends its cross-validation."
    import regression_lab.jobs.tuning as tuning
    evaluate = tuning.evaluate_trial
    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return evaluate(*args, **kwargs)
        finally:
            EVALUATIONS.append((start, time.perf_counter()))
    tuning.evaluate_trial = timed


def where_it_goes(start: float, end: float) -> dict[str, float]:
    "Seconds of a search before its first trial, inside its trials, between them, and after its last."
    spans = sorted(EVALUATIONS)
    gaps = [later[0] - earlier[1] for earlier, later in zip(spans, spans[1:])]
    return {"before": spans[0][0] - start, "inside": sum(e - s for s, e in spans), "between": sum(gaps),
            "gap": statistics.median(gaps) if gaps else 0.0, "after": end - spans[-1][1]}


def tracked(size: str, folder: Path, study: str, trials: int, n_jobs: int,
            spans: list | None = None) -> tuple[float, int]:
    "Seconds of a TuningJob search, and the MLflow runs it left beyond its own and one per attempt."
    job = make_job(size, folder, study, trials, n_jobs)
    EVALUATIONS.clear()
    start = time.perf_counter()
    with job:
        result = job.run()
    elapsed = time.perf_counter() - start
    if spans is not None and EVALUATIONS:
        spans.append(where_it_goes(start, start + elapsed))
    client = job.mlflow_service.client()
    experiment = client.get_run(result.run_id).info.experiment_id
    since = client.get_run(result.run_id).info.start_time
    runs = client.search_runs([experiment], f"attributes.start_time >= {since}", max_results=10_000)
    attempts = len(job.store.history(study))
    return elapsed, len(runs) - 1 - attempts


def configurations_of(size: str, folder: Path, trials: int) -> list[dict]:
    "The configurations a seeded search proposes, from a first untimed n_jobs=1 search (it also creates the stores)."
    job = make_job(size, folder, f"{size}-configurations", trials, 1)
    with job:
        job.run()
    history = job.store.history(job.study_name).sort_values("trial")
    return [{"max_depth": int(row["params.max_depth"]), "min_samples_leaf": int(row["params.min_samples_leaf"]),
             "max_features": float(row["params.max_features"])} for row in history.to_dict("records")]


def measure(size: str, folder: Path, trials: int, repeats: int) -> dict:
    configurations = configurations_of(size, folder, trials)
    started = time.perf_counter()
    tracked(size, folder, f"{size}-first-two", 2, 2)  # starts the worker server of this process, untimed
    first_two = time.perf_counter() - started
    times = {name: [] for name in ("one process", "two processes", "bare", "n_jobs=1", "n_jobs=2")}
    stray, spans = 0, []
    for repeat in range(repeats):
        times["one process"].append(calibrate(size, folder, configurations, 1))
        times["two processes"].append(calibrate(size, folder, configurations, 2))
        start = time.perf_counter()
        bare(size, folder, configurations)
        times["bare"].append(time.perf_counter() - start)
        for n_jobs in (1, 2):
            elapsed, extra = tracked(size, folder, f"{size}-{n_jobs}-{repeat}", trials, n_jobs,
                                     spans if n_jobs == 1 else None)
            times[f"n_jobs={n_jobs}"].append(elapsed)
            stray += extra
    where = {part: statistics.median(span[part] for span in spans) for part in spans[0]} if spans else {}
    return {"times": times, "stray": stray, "first_two": first_two, "trials": trials, "where": where}


def report(results: dict, repeats: int) -> None:
    print(f"\nRandom-forest trials, 5 folds, {repeats} alternating repeats, medians; ratios of medians\n")
    print(f"| {'size':<5} | {'what':<38} | {'median s':>8} | {'ms/trial':>8} | {'ratio':>6} | {'target':>14} |")
    print(f"|{'-' * 7}|{'-' * 40}|{'-' * 10}|{'-' * 10}|{'-' * 8}|{'-' * 16}|")
    for size, result in results.items():
        median = {name: statistics.median(values) for name, values in result["times"].items()}
        machine = median["one process"] / median["two processes"]
        two = median["n_jobs=1"] / median["n_jobs=2"]
        tracking = median["n_jobs=1"] / median["bare"]
        rows = [("calibration: 1 process, bare", median["one process"], "", ""),
                ("calibration: 2 processes at once, bare", median["two processes"], f"{machine:.2f}x", "machine"),
                ("bare cross-validation, this process", median["bare"], "1.00", ""),
                ("TuningJob n_jobs=1 (vs bare)", median["n_jobs=1"], f"{tracking:.2f}", "<= 1.05"),
                ("TuningJob n_jobs=2 (speed-up vs n_jobs=1)", median["n_jobs=2"], f"{two:.2f}x",
                 f">= {0.9 * machine:.2f}x")]
        for name, seconds, ratio, target in rows:
            print(f"| {size:<5} | {name:<38} | {seconds:>8.2f} | {1000 * seconds / result['trials']:>8.0f} | "
                  f"{ratio:>6} | {target:>14} |")
        print(f"| {size:<5} | {'  n_jobs=2 share of the machine':<38} | {'':>8} | {'':>8} | "
              f"{two / machine:>6.0%} | {'>= 90%':>14} |")
        print(f"| {size:<5} | {'  stray MLflow runs, all searches':<38} | {'':>8} | {'':>8} | "
              f"{result['stray']:>6} | {'0':>14} |")
        print(f"| {size:<5} | {'  first 2-worker search (starts server)':<38} | {result['first_two']:>8.2f} | "
              f"{'':>8} | {'':>6} | {'':>14} |")
    for size, result in results.items():
        if where := result["where"]:
            bare_s = statistics.median(result["times"]["bare"])
            print(f"\n{size}, n_jobs=1, where a search's time goes (medians): before its first trial "
                  f"{where['before']:.2f} s; inside its trials {where['inside']:.2f} s ({where['inside'] / bare_s:.2f}x the bare "
                  f"work); between trials {where['between']:.2f} s ({1000 * where['gap']:.0f} ms each); "
                  f"after its last {where['after']:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--small", type=int, default=24, help="trials of the small search")
    parser.add_argument("--large", type=int, default=10, help="trials of the large search")
    parser.add_argument("--only", choices=list(SIZES))
    parser.add_argument("--share", nargs=3, help=argparse.SUPPRESS)  # a calibration process
    args = parser.parse_args()
    if args.share:
        return share(*args.share)
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    folder = Path(tempfile.mkdtemp(prefix="bench-tuning-"))
    sizes = [args.only] if args.only else list(SIZES)
    _timing_evaluations()
    results = {size: measure(size, folder, getattr(args, size), args.repeats) for size in sizes}
    report(results, args.repeats)


if __name__ == "__main__":
    main()
