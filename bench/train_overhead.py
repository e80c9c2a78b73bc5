"""What does tracking cost? `regression-lab train` against a bare script doing the same learning.

On a generated 50,000-row table with numeric and categorical columns (and holes), both run as fresh processes,
alternating, several times; the table shows medians and the ratio. Target: ratio <= 1.5. A third row shows the
same command with MLflow's scikit-learn autologging switched off (it is on by default, as the services story asks).

    .venv/bin/python bench/train_overhead.py [--repeats 5] [--rows 50000]
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


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


def timed(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"})
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rows", type=int, default=50_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-train-"))
    data = work / "table.csv"
    make_table(args.rows).to_csv(data, index=False)
    store = f"sqlite:///{work}/mlflow.db"
    train = [str(BIN / "regression-lab"), "train", "--data", str(data), "--target", "y", "--tracking-uri", store,
             "--json"]
    commands = {
        "bare script": [sys.executable, str(HERE / "bare_train.py"), str(data), "y"],
        "regression-lab train": train,
        "  same, autolog off": [*train, "-e", "job.mlflow_service.autolog_disable=true"],
    }
    timed(commands["regression-lab train"], work)  # warm-up: creates the store's tables once
    times = {name: [] for name in commands}
    for _ in range(args.repeats):
        for name, command in commands.items():
            times[name].append(timed(command, work))
    bare = statistics.median(times["bare script"])
    print(f"\n{args.rows:,} rows x {make_table(5).shape[1] - 1} columns, {args.repeats} alternating runs, medians\n")
    print(f"| {'command':<22} | {'median s':>9} | {'min s':>7} | {'max s':>7} | {'ratio':>6} |")
    print(f"|{'-' * 24}|{'-' * 11}|{'-' * 9}|{'-' * 9}|{'-' * 8}|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name:<22} | {median:>9.2f} | {min(values):>7.2f} | {max(values):>7.2f} | {median / bare:>6.2f} |")
    ratio = statistics.median(times["regression-lab train"]) / bare
    print(f"\ntarget: ratio <= 1.50; measured {ratio:.2f} -> {'met' if ratio <= 1.5 else 'NOT met'}")


if __name__ == "__main__":
    main()
