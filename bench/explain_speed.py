"""How long does an explanation take as the table grows? `ExplanationJob` with its sampling bound, against the
same work without the bound.

A gradient-boosting model and a ridge model are trained on a generated table (8 numeric and 3 text columns, one
with 30 values) and registered in a temporary store. Each is explained, in this process, on tables of growing
size: with the default bound (`max_rows` 1000; the ridge model gets the sampled explainer, bounded by
`sampled_rows` 200) and, for the trees on tables up to `--unbounded-up-to` rows, with `max_rows` set to the whole
table. The reference row is the bare work on the bounded sample: `shap.TreeExplainer` and scikit-learn's
`permutation_importance` with no MLflow, so the ratio is what the job's loading, checks and logging add.

    .venv/bin/python bench/explain_speed.py [--rows 1000,10000,100000] [--unbounded-up-to 10000] [--repeats 2]
"""
import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_overhead import make_table  # noqa: E402


def services(store: str) -> dict:
    from regression_lab.services import AlertsService, LoggerService, MlflowService
    return dict(logger_service=LoggerService(level="WARNING"), alerts_service=AlertsService(enable=False),
                mlflow_service=MlflowService(tracking_uri=store, registry_name="bench", autolog_disable=True))


def train(work: Path, store: str) -> None:
    from regression_lab.data import CsvReader
    from regression_lab.jobs import TrainingJob
    make_table(5000).to_csv(work / "train.csv", index=False)
    for kind in ("HistGradientBoostingModel", "RidgeModel"):
        with TrainingJob(inputs=CsvReader(path=str(work / "train.csv"), drop=["y"]), model={"KIND": kind},
                         targets=CsvReader(path=str(work / "train.csv"), columns=["y"]), figures=False,
                         **services(store)) as job:
            job.run()


def explain(store: str, data: Path, version: int, **settings) -> tuple[float, object]:
    from regression_lab.data import CsvReader
    from regression_lab.jobs.explanation import ExplanationJob
    started = time.perf_counter()
    with ExplanationJob(model_uri=f"models:/bench/{version}", inputs=CsvReader(path=str(data), drop=["y"]),
                        targets=CsvReader(path=str(data), columns=["y"]), **services(store), **settings) as job:
        result = job.run()
    return time.perf_counter() - started, result


def bare(store: str, data: Path, rows: int) -> float:
    "TreeExplainer and permutation importance on a `rows` sample, no MLflow run (the model loaded beforehand)."
    import mlflow.sklearn
    import pandas as pd
    import shap
    from sklearn.inspection import permutation_importance
    mlflow.set_tracking_uri(store)
    mlflow.set_registry_uri(store)
    pipeline = mlflow.sklearn.load_model("models:/bench/1")
    started = time.perf_counter()
    table = pd.read_csv(data)
    sample = table.sample(min(rows, len(table)), random_state=0)
    shap.TreeExplainer(pipeline[-1]).shap_values(pipeline[0].transform(sample.drop(columns="y")), check_additivity=False)
    permutation_importance(pipeline, sample.drop(columns="y"), sample["y"], n_repeats=5, random_state=0)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1000,10000,100000")
    parser.add_argument("--unbounded-up-to", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-explain-"))
    store = f"sqlite:///{work}/mlflow.db"
    train(work, store)
    results = []
    for rows in map(int, args.rows.split(",")):
        data = work / f"table_{rows}.csv"
        make_table(rows, seed=1).to_csv(data, index=False)
        cases = {"trees, bounded (max_rows 1000)": (1, {}),
                 "ridge, sampled explainer (sampled_rows 200)": (2, {})}
        if rows <= args.unbounded_up_to:
            cases["trees, unbounded (max_rows = rows)"] = (1, {"max_rows": rows})
        explain(store, data, 1, max_rows=100)  # warm up: imports, first load
        for name, (version, settings) in cases.items():
            timings = [explain(store, data, version, **settings) for _ in range(args.repeats)]
            seconds = statistics.median(t for t, _ in timings)
            results.append((rows, name, timings[0][1].rows_explained, timings[0][1].explainer, seconds))
        reference = statistics.median(bare(store, data, 1000) for _ in range(args.repeats))
        results.append((rows, "bare shap + permutation_importance, 1000 rows", min(rows, 1000), "TreeExplainer", reference))
    print(f"\n| rows | case | rows explained | explainer | seconds |")
    print("|-----:|------|---------------:|-----------|--------:|")
    for rows, name, explained, explainer, seconds in results:
        print(f"| {rows:,} | {name} | {explained:,} | {explainer} | {seconds:.2f} |")
    for rows in map(int, args.rows.split(",")):
        bounded = next(s for r, n, *_, s in results if r == rows and n.startswith("trees, bounded"))
        reference = next(s for r, n, *_, s in results if r == rows and n.startswith("bare"))
        print(f"{rows:,} rows: bounded job / bare work = {bounded / reference:.2f}")


if __name__ == "__main__":
    main()
