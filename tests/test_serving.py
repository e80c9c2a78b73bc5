"""The scoring server as a user runs it: a real process on a free port, real HTTP requests, a real SIGTERM."""

from __future__ import annotations

import json
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from conftest import INPUT_COLUMNS, TARGET, Store, cli_env, synthetic_table, free_port

SERVE = "import sys; from regression_lab.cli.serve import main; sys.exit(main(sys.argv[1:]))"


@pytest.fixture(scope="module")
def served_model(tmp_path_factory):
    "A ridge model trained on a synthetic table and registered as `houses` (champion) in a fresh store."
    from regression_lab.data import CsvReader
    from regression_lab.jobs import PromotionJob, TrainingJob
    from regression_lab.services import AlertsService, LoggerService
    folder = tmp_path_factory.mktemp("serving")
    store = Store(folder)
    table = synthetic_table(rows=400, seed=3)
    table.to_csv(folder / "houses.csv", index=False)
    services = dict(logger_service=LoggerService(level="WARNING"), alerts_service=AlertsService(enable=False),
                    mlflow_service=store.service(registry_name="houses"))
    with TrainingJob(inputs=CsvReader(path=str(folder / "houses.csv"), drop=[TARGET]), figures=False,
                     targets=CsvReader(path=str(folder / "houses.csv"), columns=[TARGET]),
                     model={"KIND": "RidgeModel"}, **services) as job:
        trained = job.run()
    with PromotionJob(**services) as job:
        job.run()
    return store, trained.model, table.drop(columns=TARGET)


def start(store: Store, *args: str, port: int = 0) -> tuple[subprocess.Popen, str]:
    "Start `serve` in a new process; its base URL once it printed that it listens."
    process = subprocess.Popen([sys.executable, "-c", SERVE, "serve", "--tracking-uri", store.uri, "--json",
                                "--port", str(port), *args], cwd=store.folder, env=cli_env(), text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ready, _, _ = select.select([process.stdout], [], [], 120)
    line = process.stdout.readline() if ready else ""
    if not line.startswith("serving "):
        process.kill()
        pytest.fail(f"the server did not start: {line!r} {process.stderr.read()[-3000:]}")
    return process, line.split(" at ")[1].split()[0]


@pytest.fixture(scope="module")
def server(served_model):
    store, _, _ = served_model
    process, base = start(store, "--model", "models:/houses@champion")
    yield base
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)


def post(base: str, body, content_type: str = "application/json") -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(f"{base}/invocations", data=data, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def records(frame) -> list[dict]:
    return json.loads(frame.to_json(orient="records"))


def test_every_documented_format_gets_the_models_predictions(served_model, server):
    _, model, inputs = served_model
    rows = inputs.dropna().head(3)
    expected = model.predict(rows)
    split = json.loads(rows.to_json(orient="split", index=False))
    bodies = {"dataframe_split": ({"dataframe_split": split}, "application/json"),
              "dataframe_records": ({"dataframe_records": records(rows)}, "application/json"),
              "inputs": ({"inputs": {name: list(values.values()) for name, values in json.loads(rows.to_json()).items()}},
                         "application/json"),
              "instances": ({"instances": records(rows)}, "application/json"),
              "csv": (rows.to_csv(index=False).encode(), "text/csv")}
    for name, (body, content_type) in bodies.items():
        status, answer = post(server, body, content_type)
        assert status == 200, (name, answer)
        assert np.allclose(answer["predictions"], expected), name
    for path in ("ping", "health"):
        with urllib.request.urlopen(f"{server}/{path}", timeout=30) as answer:
            assert answer.status == 200


def test_a_missing_column_is_refused_with_400_naming_it(served_model, server):
    _, _, inputs = served_model
    status, answer = post(server, {"dataframe_records": records(inputs.head(2).drop(columns="age"))})
    assert status == 400
    assert answer["columns"] == ["age"]
    assert "'age'" in answer["message"] and "missing" in answer["message"]


def test_a_mistyped_column_is_refused_with_400_naming_it(served_model, server):
    _, _, inputs = served_model
    rows = records(inputs.dropna().head(2))
    rows[1]["rooms"] = "three"
    status, answer = post(server, {"dataframe_records": rows})
    assert status == 400
    assert answer["columns"] == ["rooms"] and "three" in answer["message"]


def test_concurrent_requests_each_get_their_own_answer(served_model, server):
    _, model, inputs = served_model
    chunks = [inputs.iloc[start:start + 5] for start in range(0, 120, 5)]

    def ask(chunk):
        return post(server, {"dataframe_split": json.loads(chunk.to_json(orient="split", index=False))})

    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(ask, chunks))
    assert [status for status, _ in answers] == [200] * len(chunks)
    for chunk, (_, answer) in zip(chunks, answers):
        assert np.allclose(answer["predictions"], model.predict(chunk))


def test_sigterm_finishes_requests_in_flight_exits_0_and_frees_the_port(served_model):
    store, _, inputs = served_model
    port = free_port()
    process, base = start(store, "--model", "models:/houses/1", port=port)
    assert base == f"http://127.0.0.1:{port}"
    big = {"dataframe_split": json.loads(inputs.sample(50_000, replace=True, random_state=0)
                                         .to_json(orient="split", index=False))}
    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(post, base, big)
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        status, answer = in_flight.result(timeout=60)
    assert process.wait(timeout=30) == 0
    assert status == 200 and len(answer["predictions"]) == 50_000
    summary = json.loads(process.stdout.read().splitlines()[-1])
    assert summary == {"model_uri": "models:/houses/1", "url": base, "stopped_by": "SIGTERM"}
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0  # nothing listens any more
    with socket.socket() as again:  # and a new server can listen there (TIME_WAIT needs SO_REUSEADDR, as servers set)
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))
        again.listen()


@pytest.mark.parametrize("case", ["unknown model", "no store", "port in use"])
def test_bad_input_exits_2_before_listening(served_model, tmp_path, case):
    store, _, _ = served_model
    args = ["serve", "--model", "models:/houses@champion", "--json", "--port", "0", "--tracking-uri", store.uri]
    with socket.socket() as busy:
        if case == "unknown model":
            args[2], expected = "models:/nothing@champion", "models:/nothing@champion"
        elif case == "no store":
            args[-1], expected = f"sqlite:///{tmp_path}/none.db", "no MLflow store"
        else:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            args[5], expected = str(busy.getsockname()[1]), f"cannot listen on 127.0.0.1:{busy.getsockname()[1]}"
        done = subprocess.run([sys.executable, "-c", SERVE, *args], env=cli_env(), capture_output=True, text=True,
                              timeout=120, cwd=tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    assert expected in done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["exit_code"] == 2
    assert not (tmp_path / "none.db").exists()


def test_refusal_keeps_answers_that_name_no_column():
    from regression_lab.serving import refusal
    assert refusal(b'{"message": "Invalid input"}') == b'{"message": "Invalid input"}'
    body = {"error_code": "INVALID_PARAMETER_VALUE",
            "message": "Failed to predict data 'x'. \nError: Failed to enforce schema of data 'x' with schema 's'. "
                       "Error: Model is missing inputs ['age', 'city']."}
    answer = json.loads(refusal(json.dumps(body).encode()))
    assert answer["columns"] == ["age", "city"] and answer["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "data 'x'" not in answer["detail"]
