"""Team mode for real: one local team stack per test session, started by `scripts/team.sh` (the script a team uses).

The stack is a private PostgreSQL cluster on 127.0.0.1 with a fresh `mlflow` and `trials` database, an `mlflow
server` on it with an artifact root, a `dask scheduler` and two `dask worker` processes. It costs 10-40 s to start,
so it starts once per session and stops (databases deleted) at the end.

Where PostgreSQL's server binaries or the `team` extra (psycopg) are missing, the team tests skip and say why; in
CI (`CI=true`, or `REGRESSION_LAB_TEAM=required`, which `.ci/run` sets) a missing piece is a failure instead.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import CLI, ROOT, cli_env  # the suite's root conftest (this folder is the package `team`)

TEAM_SCRIPT = ROOT / "scripts" / "team.sh"
MISSING_BINARIES = 3  # scripts/team.sh's exit code when PostgreSQL's server binaries are missing


def team_required() -> bool:
    "In CI a team stack that cannot start fails the tests; on a laptop they skip."
    return os.environ.get("CI", "").lower() == "true" or os.environ.get("REGRESSION_LAB_TEAM") == "required"


def unavailable(reason: str):
    "Skip with the reason, or fail in CI."
    if team_required():
        pytest.fail(f"team stack required in CI: {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclasses.dataclass
class Team:
    "The URIs of a running team stack, and the helpers the tests read it with."
    folder: Path
    tracking_uri: str
    storage: str  # the trials database; no password in it: clients read PGPASSFILE
    scheduler: str
    pgpassfile: str
    script_env: dict = dataclasses.field(default_factory=dict, repr=False)  # TEAM_DIR and the ports of scripts/team.sh

    def script(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        "Run `scripts/team.sh ARGS` on this stack (e.g. `stop-mlflow`, then `start` to bring the server back)."
        return subprocess.run(["bash", str(TEAM_SCRIPT), *args], env=self.script_env, capture_output=True, text=True,
                              timeout=timeout)

    def env(self, **extra: str) -> dict[str, str]:
        "The environment of a `regression-lab` process of this team: offline, the password file, `extra`."
        return cli_env(PGPASSFILE=self.pgpassfile, **extra)

    def client(self):
        from mlflow.tracking import MlflowClient
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def runs(self, experiment: str) -> list:
        "Every run of `experiment` on the server (none when the experiment does not exist)."
        from mlflow.entities import ViewType
        found = self.client().get_experiment_by_name(experiment)
        if found is None:
            return []
        return self.client().search_runs([found.experiment_id], run_view_type=ViewType.ALL, max_results=5000)

    def versions(self, name: str) -> list:
        return self.client().search_model_versions(f"name='{name}'")

    def study(self, name: str):
        import optuna
        return optuna.load_study(study_name=name, storage=self.storage)

    def cli(self, *args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess:
        "Run `regression-lab ARGS` against this team's server and wait for it (a failure after `timeout` s)."
        try:
            return subprocess.run([str(CLI), *map(str, args)], cwd=cwd, env=self.env(), capture_output=True,
                                  text=True, timeout=timeout)
        except subprocess.TimeoutExpired as late:
            err = late.stderr.decode(errors="replace") if isinstance(late.stderr, bytes) else late.stderr or ""
            pytest.fail(f"regression-lab {args[0]} still running after {timeout} s; its log ends:\n{err[-3000:]}")

    def start_cli(self, *args: str, cwd: Path) -> subprocess.Popen:
        "Start `regression-lab ARGS` against this team's server without waiting (output to files in `cwd`)."
        out, err = (open(cwd / f"{time.monotonic_ns()}.{n}", "w") for n in ("out", "err"))
        return subprocess.Popen([str(CLI), *map(str, args)], cwd=cwd, env=self.env(), stdout=out, stderr=err,
                                text=True)


def last_json(completed: subprocess.CompletedProcess) -> dict:
    "The JSON object a `--json` command prints as its last line, or a failure that shows its output."
    assert completed.returncode == 0, f"exit {completed.returncode}\n{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}"
    return json.loads(completed.stdout.strip().splitlines()[-1])


def wait_until(check, timeout: float, interval: float = 0.05, what: str = "condition"):
    "Poll `check()` until it returns something truthy; that value, or a failure after `timeout` seconds."
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def stop_process(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
    "Send `sig`, wait for the process to end; its return code."
    if process.poll() is None:
        process.send_signal(sig)
    return process.wait(timeout=timeout)


@pytest.fixture(scope="session")
def team(tmp_path_factory) -> Team:
    "A whole local team stack, started once per session by `scripts/team.sh` and stopped (and deleted) after."
    try:
        import psycopg  # noqa: F401
    except ImportError:
        unavailable("the PostgreSQL driver is not installed: pip install -e '.[team]'")
    folder = tmp_path_factory.mktemp("team")
    ports = dict(TEAM_PG_PORT=free_port(), TEAM_MLFLOW_PORT=free_port(), TEAM_DASK_PORT=free_port())
    env = {**os.environ, "TEAM_DIR": str(folder), **{k: str(v) for k, v in ports.items()}}
    started = subprocess.run(["bash", str(TEAM_SCRIPT), "start"], env=env, capture_output=True, text=True,
                             timeout=300)
    if started.returncode == MISSING_BINARIES:
        unavailable(started.stderr.strip().splitlines()[-1])
    before = os.environ.get("PGPASSFILE")
    try:
        assert started.returncode == 0, f"scripts/team.sh start failed:\n{started.stdout}\n{started.stderr}"
        values = dict(line.removeprefix("export ").split("=", 1) for line in started.stdout.splitlines()
                      if line.startswith("export "))
        # this process reads the trials database too (optuna in the tests): it finds the password as clients do
        os.environ["PGPASSFILE"] = values["PGPASSFILE"]
        yield Team(folder, values["TRACKING_URI"], values["TRIALS_STORAGE"], values["DASK_SCHEDULER"],
                   values["PGPASSFILE"], env)
    finally:
        os.environ.pop("PGPASSFILE", None) if before is None else os.environ.update(PGPASSFILE=before)
        subprocess.run(["bash", str(TEAM_SCRIPT), "stop", "--purge"], env=env, capture_output=True, timeout=120)
