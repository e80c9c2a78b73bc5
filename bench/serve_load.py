"""How fast does `regression-lab serve` answer? Requests per second and latency under a bounded local load.

A model is trained on a generated table and registered in a temporary store; the server runs as its own process
(`regression-lab serve`, here through `regression_lab.cli.serve.main` so it runs before the command is wired) on
a free port; this process is the load: `--requests` POSTs to /invocations from `--clients` threads, each a
`dataframe_split` of `--batch` rows. The reference is the same model's pyfunc `predict` on the same rows, called
in this process. The table shows requests per second, median and 95th-percentile latency (under the concurrent load, and for
one client at a time), and the ratios.

    .venv/bin/python bench/serve_load.py [--requests 400] [--clients 8] [--batch 1] [--model ridge]
"""
import argparse
import json
import os
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_overhead import make_table  # noqa: E402

SERVE = "import sys; from regression_lab.cli.serve import main; sys.exit(main(sys.argv[1:]))"
ENV = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}


def train(work: Path, model: str) -> str:
    "Train and register `model` on 5,000 generated rows; the store's URI."
    make_table(5000).to_csv(work / "table.csv", index=False)
    store = f"sqlite:///{work}/mlflow.db"
    code = "import sys; from regression_lab.cli import main; sys.exit(main(sys.argv[1:]))"
    subprocess.run([sys.executable, "-c", code, "train", "--data", str(work / "table.csv"), "--target", "y",
                    "--model", model, "--registry-name", "bench", "-e", "job.figures=false", "--tracking-uri", store],
                   cwd=work, env=ENV, check=True, capture_output=True)
    return store


def post(base: str, body: bytes) -> float:
    started = time.perf_counter()
    request = urllib.request.Request(f"{base}/invocations", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        answer.read()
        assert answer.status == 200
    return time.perf_counter() - started


def measure(call, bodies, clients: int) -> tuple[float, list[float]]:
    "Wall time and the latency of each call, `clients` at a time."
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = list(pool.map(call, bodies))
    return time.perf_counter() - started, latencies


def row(name: str, wall: float, latencies: list[float]) -> tuple[str, float, float, float]:
    ordered = sorted(latencies)
    return name, len(latencies) / wall, statistics.median(ordered) * 1000, ordered[int(0.95 * (len(ordered) - 1))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--batch", type=int, default=1, help="rows per request")
    parser.add_argument("--model", default="ridge")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    store = train(work, args.model)
    table = make_table(args.requests * args.batch, seed=1).drop(columns="y")
    chunks = [table.iloc[i * args.batch:(i + 1) * args.batch] for i in range(args.requests)]
    bodies = [json.dumps({"dataframe_split": json.loads(chunk.to_json(orient="split", index=False))}).encode()
              for chunk in chunks]
    server = subprocess.Popen([sys.executable, "-c", SERVE, "serve", "--model", "models:/bench/1", "--port", "0",
                               "--tracking-uri", store], cwd=work, env=ENV, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        select.select([server.stdout], [], [], 180)
        base = server.stdout.readline().split(" at ")[1].split()[0]
        post(base, bodies[0])  # warm up
        alone = measure(lambda body: post(base, body), bodies[: max(args.requests // 4, 1)], 1)
        served = measure(lambda body: post(base, body), bodies, args.clients)
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=60)
    import mlflow.pyfunc
    mlflow.set_tracking_uri(store)
    mlflow.set_registry_uri(store)
    model = mlflow.pyfunc.load_model("models:/bench/1")
    model.predict(chunks[0])

    def predict(chunk) -> float:
        started = time.perf_counter()
        model.predict(chunk)
        return time.perf_counter() - started

    reference = measure(predict, chunks, 1)
    rows = [row(f"serve over HTTP ({args.clients} clients)", *served), row("pyfunc predict in-process (1 caller)", *reference),
            row("serve over HTTP (1 client, latency)", *alone)]
    print(f"\n{args.model}, {args.requests} requests of {args.batch} row(s); server exit code on SIGTERM: {code}")
    print(f"| {'':40} | requests/s | median ms | p95 ms |")
    print(f"|{'-' * 42}|-----------:|----------:|-------:|")
    for name, rate, median, p95 in rows:
        print(f"| {name:40} | {rate:10.1f} | {median:9.2f} | {p95:6.2f} |")
    (_, rate_s, _, _), (_, rate_r, median_r, _), (_, _, median_a, _) = rows
    print(f"| {'ratio serve / in-process':40} | {rate_s / rate_r:10.2f} | {median_a / median_r:9.2f} |        |")
    print("(requests/s ratio: the concurrent load; median ratio: one client at a time against in-process predict)")


if __name__ == "__main__":
    main()
