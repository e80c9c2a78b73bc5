"""Shared helpers for the regression_lab test suite: real MLflow stores, synthetic tables, the console script."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFS = ROOT / "confs"
CLI = Path(sys.executable).parent / "regression-lab"
INPUT_COLUMNS = ["size", "rooms", "age", "city", "condition"]
TARGET = "price"


# A shell that starts the tests in the background (`bash .ci/run &`) ignores Ctrl-C for them, and an ignored signal
# stays ignored in every child. Handled here, it is back to its default in each process the tests start, so the
# tests that press Ctrl-C on a command are heard.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session", autouse=True)
def _quiet_loguru():
    """Start the session with no loguru handler.

    Loguru's import-time stderr handler would otherwise keep writing to whichever stream pytest had installed
    when a `LoggerService` put it back, including streams that pytest closes after a test. Tests that care about
    handlers add their own; the default-handler dance itself is tested in a fresh interpreter.
    """
    from loguru import logger
    logger.remove()
    yield


# ---------------------------------------------------------------------------------------------- MLflow stores

@dataclasses.dataclass
class Store:
    "A real MLflow SQLite store (tracking and registry) in a temporary folder."
    folder: Path

    @property
    def database(self) -> Path:
        return self.folder / "mlflow.db"

    @property
    def uri(self) -> str:
        return f"sqlite:///{self.database}"

    def service(self, **settings):
        "An `MlflowService` on this store (autologging off unless told otherwise)."
        from regression_lab.services import MlflowService
        settings.setdefault("autolog_disable", True)
        return MlflowService(tracking_uri=self.uri, registry_uri=self.uri, **settings)

    def client(self):
        "A client of the store, which it creates or upgrades under the library's lock (a process may be starting on it)."
        from mlflow.tracking import MlflowClient
        from regression_lab.services import store_lock
        with store_lock(self.uri):  # making the client makes the store's tables
            return MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    def runs(self) -> list:
        "Every run in every experiment of the store (none when the database was never created)."
        if not self.database.exists():
            return []
        from mlflow.entities import ViewType
        client = self.client()
        ids = [experiment.experiment_id for experiment in client.search_experiments(view_type=ViewType.ALL)]
        return client.search_runs(ids, run_view_type=ViewType.ALL, max_results=10_000) if ids else []

    def model_versions(self, name: str | None = None) -> list:
        "Every registered model version (of `name` when given; none when the database was never created)."
        if not self.database.exists():
            return []
        return self.client().search_model_versions(f"name='{name}'" if name else None)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    "One MLflow store shared by the tests of a module (creating a SQLite store costs seconds)."
    return Store(tmp_path_factory.mktemp("store"))


# ---------------------------------------------------------------------------------------------- data

def synthetic_table(rows: int = 2000, seed: int = 0) -> pd.DataFrame:
    """A house-price-like table: numeric and categorical (string) inputs, some inputs missing, a numeric target.

    The target is a known function of the inputs plus noise, so a fitted model should explain most of it.
    """
    rng = np.random.default_rng(seed)
    size = rng.normal(120.0, 30.0, rows)
    rooms = rng.integers(1, 7, rows).astype(float)
    age = rng.uniform(0.0, 60.0, rows)
    city = rng.choice(["north", "south", "east", "west"], rows)
    condition = rng.choice(["new", "good", "worn"], rows)
    city_effect = pd.Series(city).map({"north": 80.0, "south": 20.0, "east": 50.0, "west": 0.0}).to_numpy()
    condition_effect = pd.Series(condition).map({"new": 40.0, "good": 15.0, "worn": 0.0}).to_numpy()
    price = 500.0 + 3.0 * size + 25.0 * rooms - 1.5 * age + city_effect + condition_effect + rng.normal(0, 10, rows)
    frame = pd.DataFrame({"size": size, "rooms": rooms, "age": age, "city": city.astype(object),
                          "condition": condition.astype(object), TARGET: price})
    # missing input values, numeric and categorical
    frame.loc[rng.choice(rows, rows // 20, replace=False), "size"] = np.nan
    frame.loc[rng.choice(rows, rows // 20, replace=False), "city"] = None
    return frame


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return synthetic_table()


@pytest.fixture(scope="module")
def csv_file(tmp_path_factory, table) -> Path:
    path = tmp_path_factory.mktemp("data") / "houses.csv"
    table.to_csv(path, index=False)
    return path


# ---------------------------------------------------------------------------------------------- command line

def cli_env(**extra: str) -> dict[str, str]:
    "The environment of a `regression-lab` subprocess: offline, plus `extra`."
    return {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", **extra}


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    "Run the installed `regression-lab` console script with `args` in `cwd`."
    assert CLI.exists(), f"console script not installed at {CLI}"
    return subprocess.run([str(CLI), *map(str, args)], cwd=cwd, env=env or cli_env(),
                          capture_output=True, text=True, timeout=300)


def run_python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    "Run `code` in a fresh interpreter of the test virtualenv."
    return subprocess.run([sys.executable, "-c", code], env=env or cli_env(),
                          capture_output=True, text=True, timeout=120)


# ---------------------------------------------------------------------------------------------- servers and browsers

CHROMIUM = Path("/usr/bin/chromium")  # Debian's: Playwright cannot download its own browser here
OFFLINE_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost"]


def free_port() -> int:
    "A TCP port on 127.0.0.1 that nothing listens on right now."
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def offline_tab(width: int, height: int):
    """A Chromium tab of `width`x`height` that cannot leave the machine.

    Requests to anything but 127.0.0.1 (and data:/blob: URLs) are aborted and listed in `tab.blocked`; uncaught page
    errors are listed in `tab.errors`."""
    if not CHROMIUM.exists():
        pytest.fail(f"Debian's Chromium is missing at {CHROMIUM}: `apt-get install -y chromium` (.ci/run does it)")
    from urllib.parse import urlsplit
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=OFFLINE_ARGS)
        context = browser.new_context(viewport={"width": width, "height": height})
        blocked: list[str] = []

        def offline(route):
            url = route.request.url
            if urlsplit(url).hostname in ("127.0.0.1", None) or url.startswith(("data:", "blob:")):
                route.continue_()
            else:
                blocked.append(url)
                route.abort()

        context.route("**/*", offline)
        tab = context.new_page()
        tab.errors, tab.blocked = [], blocked
        tab.on("pageerror", lambda error: tab.errors.append(str(error)))
        try:
            yield tab
        finally:
            context.close()
            browser.close()


def jupyter_env(folder: Path) -> dict[str, str]:
    "The environment of a Jupyter server in `folder`: offline, this virtualenv first on PATH, Jupyter folders of its own."
    jupyter = folder / "jupyter"
    return cli_env(PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
                   JUPYTER_CONFIG_DIR=str(jupyter / "config"), JUPYTER_RUNTIME_DIR=str(jupyter / "runtime"),
                   JUPYTERLAB_SETTINGS_DIR=str(jupyter / "settings"),
                   JUPYTERLAB_WORKSPACES_DIR=str(jupyter / "workspaces"), JUPYTER_PLATFORM_DIRS="1")


@contextlib.contextmanager
def served(command: list[str], folder: Path, ready: str, name: str, timeout: float = 60,
           headers: dict[str, str] | None = None):
    """The server `command` running in `folder` (its output in `folder/<program>.log`) once `ready` answers 200.

    A server that exits or does not answer within `timeout` seconds fails the test, showing its log; afterwards
    the server and its children (kernels) are stopped with its process group."""
    import signal
    import time
    import urllib.request
    log_path = folder / f"{Path(command[0]).name}.log"
    log = log_path.open("w")
    server = subprocess.Popen(command, cwd=folder, env=jupyter_env(folder), stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(urllib.request.Request(ready, headers=headers or {}), timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{name} did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.3)
        yield server
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(10)
        log.close()


THEMES = {"light": "JupyterLab Light", "dark": "JupyterLab Dark"}


@contextlib.contextmanager
def jupyterlab(folder: Path, theme: str):
    "JupyterLab serving `folder` on 127.0.0.1 in `theme` (light or dark), without its news pop-up: `(base URL, token)`."
    import json
    import secrets
    for name, values in {"apputils-extension/themes": {"theme": THEMES[theme]},  # `news_url=None` alone does not stop it
                         "apputils-extension/notification": {"fetchNews": "false"}}.items():
        path = folder / "jupyter" / "settings" / "@jupyterlab" / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    port, token = free_port(), secrets.token_hex(16)
    command = [str(Path(sys.executable).parent / "jupyter-lab"), "--no-browser", "--ip=127.0.0.1", f"--port={port}",
               "--ServerApp.port_retries=0", "--allow-root", f"--IdentityProvider.token={token}",
               f"--ServerApp.root_dir={folder}", "--LabApp.news_url=None",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.expose_app_in_browser=True"]
    base = f"http://127.0.0.1:{port}"
    with served(command, folder, f"{base}/api/status", "JupyterLab", headers={"Authorization": f"token {token}"}):
        yield base, token
