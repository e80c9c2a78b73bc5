"""What does tracking cost? A TrainingJob against bare scikit-learn doing the same learning, cold and warm.

On a generated 50,000-row table with numeric and categorical columns (and holes), in one run of this script:

- cold: `regression-lab train` and a bare script (`bench/bare_train.py`: read, split, fit, predict, score), each
  as a fresh process, alternating; a third row is the same command with MLflow's autologging switched off (it is
  on by default, for the user's own code, as the services story asks). Target: ratio <= 1.5.
- warm: in this one process, after a first untimed run of each, a TrainingJob (`with job: job.run()`) against
  the same bare work as a function, alternating, as a notebook kernel runs them. Target: ratio <= 1.25.

The table shows medians, min and max of each, and the ratio of medians to its own bare reference. Below it,
where the time of a tracked run goes: the steps of the job, from the timestamps of its own log lines (median over
the warm runs; the cold line adds the time from process start to the first step).

    .venv/bin/python bench/train_overhead.py [--repeats 5] [--rows 50000] [--only cold|warm] [--threads N]

`--threads N` limits the fit's OpenMP threads (both sides alike): on a busy machine, two spinning OpenMP threads
make the fit's time, and so every ratio, swing widely.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(HERE))
from bare_train import bare_train  # noqa: E402  (the reference work, the same function the bare script runs)


def make_table(rows: int, seed: int = 0) -> pd.DataFrame:
    "A regression table: 8 numeric and 3 categorical columns, 5% holes in the inputs, a non-linear target."
    rng = np.random.default_rng(seed)
    numeric = rng.normal(size=(rows, 8))
    table = pd.DataFrame(numeric, columns=[f"x{i}" for i in range(8)])
    table["city"] = rng.choice([f"city_{i}" for i in range(30)], size=rows)
    table["kind"] = rng.choice(["flat", "house", "loft", "studio"], size=rows)
    table["grade"] = rng.choice(list("ABCDE"), size=rows)
    effect = {"flat": 0.0, "house": 3.0, "loft": 1.5, "studio": -1.0}
    table["y"] = (5 * np.sin(numeric[:, 0]) + numeric[:, 1] ** 2 + 2 * numeric[:, 2] * numeric[:, 3]
                  + table["kind"].map(effect) + rng.normal(scale=0.5, size=rows) + 50)
    for column in table.columns[:-1]:
        table.loc[rng.random(rows) < 0.05, column] = None
    return table


ENV = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
STEP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}).*? - (\[(?:\d+/11|START\] mlflow)[^\n]*)")


def timed(command: list[str], cwd: Path, keep: list | None = None) -> float:
    "Wall seconds of `command` as a fresh process; with `keep`, its start time and stderr lines are appended."
    start, started = time.perf_counter(), time.time()
    done = subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          env=ENV, text=True)
    elapsed = time.perf_counter() - start
    if keep is not None:
        keep.append((started, done.stderr.splitlines()))
    return elapsed


def steps_of(started: float, lines: list[str]) -> dict[str, float]:
    "Seconds spent before each logged step (from the previous one, the first from `started`)."
    spans, last = {}, started
    for line in lines:
        match = STEP.match(re.sub(r"\x1b\[[0-9;]*m", "", line))
        if match:
            moment = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
            spans[match.group(2).split("]")[0].strip("[")] = moment - last
            last = moment
    return spans


def cold(data: Path, work: Path, repeats: int) -> tuple[dict, dict]:
    store = f"sqlite:///{work}/cold.db"
    train = [str(BIN / "regression-lab"), "train", "--data", str(data), "--target", "y", "--tracking-uri", store,
             "--json"]
    commands = {
        "cold: bare script": [sys.executable, str(HERE / "bare_train.py"), str(data), "y"],
        "cold: regression-lab train": train,
        "cold:   same, autolog off": [*train, "-e", "job.mlflow_service.autolog_disable=true"],
    }
    timed(commands["cold: regression-lab train"], work)  # warm-up: creates the store's tables once
    times, logs = {name: [] for name in commands}, []
    for _ in range(repeats):
        for name, command in commands.items():
            keep = logs if name == "cold: regression-lab train" else None
            times[name].append(timed(command, work, keep))
    return times, _median_steps([steps_of(started, lines) for started, lines in logs])


def _median_steps(runs: list[dict[str, float]]) -> dict[str, float]:
    return {step: statistics.median(run.get(step, 0.0) for run in runs) for step in runs[0]} if runs else {}


def warm(data: Path, work: Path, repeats: int) -> tuple[dict, dict]:
    from loguru import logger
    from regression_lab.data import CsvReader
    from regression_lab.jobs import TrainingJob
    from regression_lab.services import AlertsService, LoggerService, MlflowService
    job = TrainingJob(inputs=CsvReader(path=str(data), drop=["y"]), targets=CsvReader(path=str(data), columns=["y"]),
                      logger_service=LoggerService(level="WARNING"), alerts_service=AlertsService(enable=False),
                      mlflow_service=MlflowService(tracking_uri=f"sqlite:///{work}/warm.db"))
    records: list[tuple[float, str]] = []
    logger.add(lambda message: records.append((message.record["time"].timestamp(), message.record["message"])),
               level="INFO", filter=lambda record: record["message"].startswith(("[", "[START]")))

    def tracked():
        with job:
            job.run()

    def bare():
        bare_train(str(data), "y")

    runs = {"warm: bare work": bare, "warm: TrainingJob": tracked}
    for work_ in runs.values():  # first runs, not timed: imports, the store's tables, autolog patching
        work_()
    times, spans = {name: [] for name in runs}, []
    for _ in range(repeats):
        for name, work_ in runs.items():
            records.clear()
            start, started = time.perf_counter(), time.time()
            work_()
            times[name].append(time.perf_counter() - start)
            if name == "warm: TrainingJob":
                spans.append(_spans(started, records))
    return times, _median_steps(spans)


def _spans(started: float, records: list[tuple[float, str]]) -> dict[str, float]:
    spans, last = {}, started
    for moment, message in records:
        if re.match(r"\[\d+/11\]", message):
            spans[message[1:message.index("]")]] = moment - last
            last = moment
    return spans


STEP_NAMES = {"1/11": "enter, read, validate (cold: + process start, imports, config)",
              "START": "MLflow service start (import, store, autolog patching)",
              "2/11": "open run, tag, job.json, lineage (+ MLflow service start; cold: the fork fits meanwhile)",
              "3/11": "log params, split",
              "4/11": "fit (cold: importing skops and matplotlib, then waiting for the fork)",
              "5/11": "predict test rows", "6/11": "score, log metrics",
              "7/11": "signature", "8/11": "log_model", "9/11": "figures", "10/11": "register",
              "11/11": "end run, notify"}


def print_table(rows: int, repeats: int, times: dict[str, list[float]], steps: dict[str, dict]) -> None:
    threads = f", fit threads {ENV['OMP_NUM_THREADS']}" if "OMP_NUM_THREADS" in ENV else ""
    print(f"\n{rows:,} rows x 11 columns, {repeats} alternating runs, medians{threads}\n")
    print(f"| {'what':<28} | {'median s':>9} | {'min s':>7} | {'max s':>7} | {'ratio':>6} | {'target':>6} |")
    print(f"|{'-' * 30}|{'-' * 11}|{'-' * 9}|{'-' * 9}|{'-' * 8}|{'-' * 8}|")
    for name, values in times.items():
        kind = name.split(":")[0]
        reference = statistics.median(times[f"{kind}: bare script" if kind == "cold" else f"{kind}: bare work"])
        median = statistics.median(values)
        target = "" if "bare" in name else ("1.50" if kind == "cold" else "1.25") if "autolog" not in name else ""
        print(f"| {name:<28} | {median:>9.2f} | {min(values):>7.2f} | {max(values):>7.2f} | "
              f"{median / reference:>6.2f} | {target:>6} |")
    for kind, spans in steps.items():
        if spans:
            print(f"\n{kind}: where a tracked run's time goes (median seconds up to each logged step)")
            print("  " + ", ".join(f"{STEP_NAMES.get(step, step)} {value:.2f}" for step, value in spans.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--only", choices=["cold", "warm"])
    parser.add_argument("--threads", type=int, help="OpenMP threads of the fit (default: the library's own)")
    args = parser.parse_args()
    if args.threads:
        ENV["OMP_NUM_THREADS"] = str(args.threads)
    work = Path(tempfile.mkdtemp(prefix="bench-train-"))
    data = work / "table.csv"
    make_table(args.rows).to_csv(data, index=False)
    times, steps = {}, {}
    if args.only != "warm":
        cold_times, steps["cold"] = cold(data, work, args.repeats)
        times |= cold_times
    if args.only != "cold":
        from threadpoolctl import threadpool_limits
        with threadpool_limits(args.threads):
            warm_times, steps["warm"] = warm(data, work, args.repeats)
        times |= warm_times
    print_table(args.rows, args.repeats, times, steps)


if __name__ == "__main__":
    main()
