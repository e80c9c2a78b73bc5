"""Leaderboard speed: `CompareJob` time per model against a bare scikit-learn `cross_validate` loop on the same folds.

The default line-up (eight kinds), 5 folds, RMSE/MAE/R²/MAPE, on a table (the diabetes data by default, or a
synthetic house-price table of --rows rows). In one process, alternating, several repeats, medians:
- bare cross_validate, 1 process: `sklearn.model_selection.cross_validate` of each model's pipeline, one after another;
- bare cross_validate, joblib 2 procs: the same, the models spread over two loky processes by `joblib.Parallel`;
- CompareJob n_jobs=1: in this process, a nested MLflow run per model, the leaderboard logged (CSV and chart);
- CompareJob 1 lane + time limit: the same in one killable worker process (what a time limit costs);
- CompareJob n_jobs=2: two killable worker processes.
Each CompareJob run is a new comparison (`resume=False`) in a store created once, before the timings.

    .venv/bin/python bench/compare_speed.py [--repeats 3] [--rows 0] [--folds 5]
"""
import argparse
import statistics
import tempfile
import time
from pathlib import Path

from threadpoolctl import threadpool_limits

from regression_lab.data import CsvReader, DatasetReader
from regression_lab.jobs.compare import CompareJob, limited
from regression_lab.services import AlertsService, LoggerService, MlflowService


def make_job(folder: Path, readers: tuple, folds: int, **settings) -> CompareJob:
    return CompareJob(inputs=readers[0], targets=readers[1], splitter={"KIND": "KFoldSplitter", "n_splits": folds},
                      resume=False, progress=False,
                      logger_service=LoggerService(sink=str(folder / "bench.log"), level="WARNING"),
                      alerts_service=AlertsService(enable=False),
                      mlflow_service=MlflowService(tracking_uri=f"sqlite:///{folder}/mlflow.db", autolog_disable=True),
                      **settings)


SCORING = {"rmse": "neg_root_mean_squared_error", "mae": "neg_mean_absolute_error", "r2": "r2",
           "mape": "neg_mean_absolute_percentage_error"}


def bare_one(model, inputs, target, folds):
    from sklearn.model_selection import cross_validate
    with threadpool_limits(limits=1):
        return cross_validate(limited(model, 1).build(inputs), inputs, target, cv=folds, scoring=SCORING)


def bare(job: CompareJob, n_jobs: int) -> None:
    "Every model of `job` cross-validated by scikit-learn on the same folds, with no tracking."
    from joblib import Parallel, delayed
    inputs, targets = job.inputs.read(), job.targets.read()
    folds = list(job.splitter.split(inputs, targets))
    target = targets.iloc[:, 0]
    if n_jobs == 1:
        for model in job.models:
            bare_one(model, inputs, target, folds)
    else:
        Parallel(n_jobs=n_jobs, backend="loky")(delayed(bare_one)(m, inputs, target, folds) for m in job.models)


def readers(rows: int, folder: Path) -> tuple:
    if not rows:
        return DatasetReader(drop=["target"]), DatasetReader(columns=["target"])
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from conftest import synthetic_table
    path = folder / "houses.csv"
    synthetic_table(rows=rows).to_csv(path, index=False)
    return CsvReader(path=str(path), drop=["price"]), CsvReader(path=str(path), columns=["price"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, default=0, help="synthetic table rows (0: the diabetes data, 442 rows)")
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-compare-"))
    data = readers(args.rows, folder)
    warm = make_job(folder, data, args.folds, models=["RidgeModel"], n_jobs=1)  # creates the store, outside the timings
    with warm:
        warm.run()
    n_models = len(make_job(folder, data, args.folds).models)
    runs = {
        "bare cross_validate, 1 process": lambda: bare(make_job(folder, data, args.folds), 1),
        "bare cross_validate, joblib 2 procs": lambda: bare(make_job(folder, data, args.folds), 2),
        "CompareJob n_jobs=1": lambda: make_job(folder, data, args.folds, n_jobs=1),
        "CompareJob 1 lane + time limit": lambda: make_job(folder, data, args.folds, n_jobs=1, time_limit=600),
        "CompareJob n_jobs=2": lambda: make_job(folder, data, args.folds, n_jobs=2),
    }
    times = {name: [] for name in runs}
    for repeat in range(args.repeats):
        for name, make in runs.items():
            start = time.perf_counter()
            job = make()
            if isinstance(job, CompareJob):
                with job:
                    result = job.run()
                assert result.leaderboard["status"].eq("done").all(), result.leaderboard
            times[name].append(time.perf_counter() - start)
            print(f"repeat {repeat + 1}: {name}: {times[name][-1]:.2f} s", flush=True)
    medians = {name: statistics.median(values) for name, values in times.items()}
    table = f"{args.rows} synthetic rows" if args.rows else "diabetes, 442 rows"
    print(f"\n{n_models} model kinds (the default line-up), {args.folds} folds, {table}; "
          f"{args.repeats} alternating repeats, medians\n")
    print(f"| {'run':<36} | {'median s':>8} | {'per model s':>11} | {'vs bare 1 proc':>14} | {'vs bare same procs':>18} |")
    print(f"|{'-' * 38}|{'-' * 10}|{'-' * 13}|{'-' * 16}|{'-' * 20}|")
    one, two = medians["bare cross_validate, 1 process"], medians["bare cross_validate, joblib 2 procs"]
    for name, median in medians.items():
        same = two if ("2" in name.split(",")[-1] or "n_jobs=2" in name) else one
        print(f"| {name:<36} | {median:>8.2f} | {median / n_models:>11.3f} | {median / one:>14.2f} | {median / same:>18.2f} |")


if __name__ == "__main__":
    main()
