"""What does a pipeline cost per step? `Pipeline.run` on 2,000 no-op steps against calling them directly.

The reference calls the same 2,000 no-op callables in topological order, each with its keyword arguments looked up
by name: the least any runner must do. `Pipeline.run` does all of it for real: validation (imports, signatures,
cycles, pruning, the plan), a thread pool, each step started the moment its inputs are ready, a summary per step.
Each run gets a freshly built `Pipeline`, so nothing is cached between runs. Cases alternate, several times; the
table shows medians. Target: at most 0.1 ms of overhead per step (Kedro's sequential runner measured about 0.76 ms
per node here). Then validation alone on a 10,000-step pipeline, target under 1 s; also read from a file first, as
JSON (how a program would write it) and as block-style YAML (PyYAML's parser dominates that row).

    .venv/bin/python bench/pipeline_overhead.py [--repeats 7] [--steps 2000] [--validate-steps 10000] [--mlflow]
"""
import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

from regression_lab.pipelines import Pipeline
from regression_lab.services import LoggerService


def noop(**values) -> None:
    "The step: nothing at all."


NOOP = f"{__name__}:noop"  # `__main__:noop` when run as a script: importable in this process, as threads need


def dag(steps: int, seed: int = 0, roots: int = 20, window: int = 100) -> dict:
    "A pipeline of `steps` no-ops: `roots` without inputs, every other step reading two of the `window` before it."
    rng = random.Random(seed)
    spec = []
    for index in range(steps):
        upstream = [] if index < roots else sorted(set(rng.sample(range(max(0, index - window), index), 2)))
        spec.append({"name": f"s{index}", "call": NOOP, "inputs": {f"p{n}": f"v{n}" for n in upstream},
                     "outputs": [f"v{index}"]})
    return {"name": f"dag-{steps}", "imports": [NOOP.partition(":")[0]], "steps": spec}


def chain(steps: int) -> dict:
    "A pipeline of `steps` no-ops, each waiting for the one before: every step is a round trip through the runner."
    spec = [{"name": f"s{index}", "call": NOOP, "inputs": {"p": f"v{index - 1}"} if index else {},
             "outputs": [f"v{index}"]} for index in range(steps)]
    return {"name": f"chain-{steps}", "imports": [NOOP.partition(":")[0]], "steps": spec}


def direct(spec: dict) -> None:
    "The reference: the same callables called one by one in topological order, arguments looked up by name."
    from regression_lab.pipelines import resolve_callable
    values = {}
    for step in spec["steps"]:  # written in topological order
        function = resolve_callable(step["call"])
        kwargs = {parameter: values[value] for parameter, value in step["inputs"].items()}
        result = function(**kwargs)
        for value in step["outputs"]:
            values[value] = result


def timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--validate-steps", type=int, default=10_000)
    parser.add_argument("--mlflow", action="store_true", help="add a run recorded in a SQLite MLflow store")
    args = parser.parse_args()
    quiet = LoggerService(level="WARNING")
    shapes = {"dag": dag(args.steps), "chain": chain(args.steps)}
    store = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))

    def run(spec: dict, **options):
        pipeline = Pipeline.model_validate(spec)  # built outside the timer, validated inside it
        return lambda: pipeline.run(logger_service=quiet, **options)

    cases = {
        "direct calls, DAG (reference)": lambda: (lambda: direct(shapes["dag"])),
        "Pipeline.run, DAG, threads": lambda: run(shapes["dag"]),
        "Pipeline.run, chain, threads": lambda: run(shapes["chain"]),
        "Pipeline.run, DAG, dry run": lambda: run(shapes["dag"], dry_run=True),
    }
    if args.mlflow:
        cases["Pipeline.run, DAG, tracked"] = lambda: run(shapes["dag"], tracking_uri=f"sqlite:///{store}/mlflow.db")
    for case in cases.values():  # warm-up: imports, thread start, the store's tables
        case()()
    times = {name: [] for name in cases}
    for _ in range(args.repeats):
        for name, case in cases.items():
            times[name].append(timed(case()))
    reference = statistics.median(times["direct calls, DAG (reference)"])
    print(f"\n{args.steps:,} no-op steps, {args.repeats} alternating runs, medians "
          f"(DAG: 20 roots, each other step reads 2 of the 100 before it)\n")
    print(f"| {'case':<30} | {'median ms':>9} | {'ms/step':>8} | {'overhead ms/step':>16} | {'ratio':>7} |")
    print(f"|{'-' * 32}|{'-' * 11}|{'-' * 10}|{'-' * 18}|{'-' * 9}|")
    for name, values in times.items():
        median = statistics.median(values)
        overhead = (median - reference) / args.steps * 1000
        print(f"| {name:<30} | {median * 1000:>9.1f} | {median / args.steps * 1000:>8.4f} | "
              f"{overhead:>16.4f} | {median / reference:>7.1f} |")
    worst = max(statistics.median(values) for name, values in times.items() if "threads" in name)
    per_step = (worst - reference) / args.steps * 1000
    print(f"\ntarget: overhead <= 0.100 ms per step; measured {per_step:.4f} ms (worst threaded case) -> "
          f"{'met' if per_step <= 0.1 else 'NOT met'}")

    big = dag(args.validate_steps, window=500)
    folder = Path(tempfile.mkdtemp(prefix="bench-validate-"))
    (folder / "big.yaml").write_text(yaml.safe_dump(big, sort_keys=False))
    (folder / "big.json").write_text(json.dumps(big))
    validate, load, load_json = [], [], []
    for _ in range(max(3, args.repeats // 2)):
        pipeline = Pipeline.model_validate(big)
        validate.append(timed(lambda: pipeline.validate()))
        load.append(timed(lambda: Pipeline.from_yaml(folder / "big.yaml").validate()))
        load_json.append(timed(lambda: Pipeline.from_yaml(folder / "big.json").validate()))
    report = Pipeline.model_validate(big).validate()
    assert report.valid and sum(map(len, report.plan)) == args.validate_steps, report.problems[:3]
    print(f"\n{args.validate_steps:,}-step pipeline ({len(report.plan)} waves), medians of {len(validate)}\n")
    print(f"| {'case':<30} | {'median ms':>9} |")
    print(f"|{'-' * 32}|{'-' * 11}|")
    print(f"| {'validate()':<30} | {statistics.median(validate) * 1000:>9.1f} |")
    print(f"| {'from_yaml(JSON) + validate()':<30} | {statistics.median(load_json) * 1000:>9.1f} |")
    print(f"| {'from_yaml(YAML) + validate()':<30} | {statistics.median(load) * 1000:>9.1f} |")
    seconds = statistics.median(validate)
    print(f"\ntarget: validating {args.validate_steps:,} steps < 1 s; measured {seconds:.3f} s -> "
          f"{'met' if seconds < 1 else 'NOT met'}")


if __name__ == "__main__":
    main()
