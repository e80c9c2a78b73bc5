"""Faults in team mode, each a real process against the session's team stack, asserting the REQUIRED behaviour.

A SIGTERM (what `timeout`, `kill` and a cancelled CI job send) ends the run as KILLED or FAILED; a model version
exists only for a run that finished; a tuning study adds no stray top-level runs; several tuners on one study
finish with exactly the requested number of configurations, all distinct, and all exit 0.
"""

from __future__ import annotations

import json
import signal
import urllib.parse
import urllib.request

import pytest

from conftest import TARGET, synthetic_table

from .conftest import Team, last_json, stop_process, wait_until


@pytest.fixture(scope="module")
def train_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("fault-data") / "houses.csv"
    synthetic_table(rows=300, seed=2).to_csv(path, index=False)
    return path


def versions_now(team: Team, name: str) -> list[dict]:
    "The versions of `name`, by one light REST call (fast enough to poll every 50 ms)."
    query = urllib.parse.urlencode({"filter": f"name='{name}'"})
    with urllib.request.urlopen(f"{team.tracking_uri}/api/2.0/mlflow/model-versions/search?{query}",
                                timeout=5) as answer:
        return json.load(answer).get("model_versions", [])


def running_runs(team: Team, experiment: str) -> list:
    try:
        return [run for run in team.runs(experiment) if run.info.status == "RUNNING"]
    except Exception:  # the experiment is being created
        return []


def test_sigterm_mid_training_ends_the_run(team: Team, train_csv, tmp_path):
    "SIGTERM while the run is open: the process stops and the run is KILLED or FAILED, never left RUNNING."
    process = team.start_cli("train", "--data", train_csv, "--target", TARGET, "--model", "random_forest",
                             "--registry-name", "fault-sigterm", "--tracking-uri", team.tracking_uri,
                             "--experiment", "fault-sigterm", cwd=tmp_path)
    (run,) = wait_until(lambda: running_runs(team, "fault-sigterm"), 240, 0.2, "the training run to start")
    code = stop_process(process, signal.SIGTERM)
    assert code != 0
    assert team.client().get_run(run.info.run_id).info.status in {"KILLED", "FAILED"}
    assert versions_now(team, "fault-sigterm") == [], "a version was published for a killed run"


def test_a_version_only_for_a_finished_run(team: Team, train_csv, tmp_path):
    "SIGTERM the moment a version appears: the version's run is FINISHED (or the version is gone)."
    process = team.start_cli("train", "--data", train_csv, "--target", TARGET, "--model", "ridge",
                             "--registry-name", "fault-version", "--tracking-uri", team.tracking_uri,
                             "--experiment", "fault-version", cwd=tmp_path)
    wait_until(lambda: versions_now(team, "fault-version") or process.poll() is not None, 240, 0.05,
               "a version or the end of the process")
    killed = stop_process(process, signal.SIGTERM) != 0
    client = team.client()
    for version in team.versions("fault-version"):
        run = client.get_run(version.run_id).info
        assert run.status == "FINISHED", f"version {version.version} of a {run.status} run"
        if not killed:  # the process ended before the signal: then the version must not predate the run's end
            assert version.creation_timestamp >= run.end_time, "the version existed while its run was open"


def test_tuning_leaves_no_stray_runs(team: Team, train_csv, tmp_path):
    "A study of 4 trials on 2 threads adds exactly its run and one nested run per trial, in every experiment."
    from mlflow.entities import ViewType

    client = team.client()

    def all_runs() -> dict:
        ids = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
        return {r.info.run_id: r for r in client.search_runs(ids, run_view_type=ViewType.ALL, max_results=5000)}

    before = all_runs()
    tuned = last_json(team.cli("tune", "--data", train_csv, "--target", TARGET, "--model", "random_forest",
                               "-e", "job.model.n_estimators=10", "--trials", "4", "--n-jobs", "2",
                               "--study", "fault-stray", "--storage", team.storage,
                               "--tracking-uri", team.tracking_uri, "--experiment", "fault-stray", "--json",
                               cwd=tmp_path))
    new = [run for run_id, run in all_runs().items() if run_id not in before]
    strays = [run.info.run_name for run in new
              if run.info.run_id != tuned["run_id"] and run.data.tags.get("mlflow.parentRunId") != tuned["run_id"]]
    assert strays == [], f"{len(strays)} stray runs"
    assert len(new) == 1 + 4


def test_three_tuners_on_one_study(team: Team, train_csv, tmp_path):
    "3 processes asked for 6 trials of one study: exactly 6 finished configurations, all distinct, all exit 0."
    processes = [team.start_cli("tune", "--data", train_csv, "--target", TARGET, "--model", "ridge",
                                "--trials", "6", "--study", "fault-shared", "--storage", team.storage,
                                "--tracking-uri", team.tracking_uri, "--experiment", "fault-shared", cwd=tmp_path)
                 for _ in range(3)]
    codes = [process.wait(timeout=300) for process in processes]
    errors = "\n".join(path.read_text()[-2000:] for path in sorted(tmp_path.glob("*.err")))
    assert codes == [0, 0, 0], f"exit codes {codes}\n{errors}"
    trials = team.study("fault-shared").trials
    complete = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]  # a pruned configuration counts as done
    configurations = {tuple(sorted(t.params.items())) for t in complete}
    assert (len(complete), len(configurations)) == (6, 6), (
        f"{len(complete)} finished, {len(configurations)} distinct; states {[t.state.name for t in trials]}")


def test_a_tracking_server_restart_mid_training_loses_nothing(team: Team, tmp_path):
    "The server stops for 20 s while a training runs, then comes back: the job waits (retries), finishes, exit 0."
    import time
    data = tmp_path / "houses.csv"
    synthetic_table(rows=2000, seed=3).to_csv(data, index=False)
    process = team.start_cli("train", "--data", data, "--target", TARGET, "--model", "random_forest",
                             "--registry-name", "fault-restart", "--tracking-uri", team.tracking_uri,
                             "--experiment", "fault-restart", cwd=tmp_path)
    (run,) = wait_until(lambda: running_runs(team, "fault-restart"), 240, 0.2, "the training run to start")
    stopped = team.script("stop-mlflow")
    assert stopped.returncode == 0, stopped.stderr
    assert process.poll() is None, "the training ended before the server stopped: nothing was tested"
    down = time.monotonic()
    time.sleep(20)
    restarted = team.script("start")
    assert restarted.returncode == 0, restarted.stderr[-3000:]
    outage = time.monotonic() - down
    code = process.wait(timeout=240)
    errors = "\n".join(path.read_text()[-3000:] for path in sorted(tmp_path.glob("*.err")))
    assert code == 0, f"exit {code} after a server outage of {outage:.0f} s\n{errors}"
    assert team.client().get_run(run.info.run_id).info.status == "FINISHED"
    assert [v["run_id"] for v in versions_now(team, "fault-restart")] == [run.info.run_id]


def test_runs_clean_through_http_closes_a_killed_training(team: Team, train_csv, tmp_path):
    "SIGKILL (nothing can be cleaned up by the process) mid-training; `runs clean` on the server ends the run KILLED."
    import subprocess
    import sys
    process = team.start_cli("train", "--data", train_csv, "--target", TARGET, "--model", "random_forest",
                             "--registry-name", "fault-sigkill", "--tracking-uri", team.tracking_uri,
                             "--experiment", "fault-sigkill", cwd=tmp_path)
    (run,) = wait_until(lambda: running_runs(team, "fault-sigkill"), 240, 0.2, "the training run to start")
    stop_process(process, signal.SIGKILL)
    assert team.client().get_run(run.info.run_id).info.status == "RUNNING"  # what a killed process leaves
    clean = subprocess.run([sys.executable, "-c", "import sys; from regression_lab.cli.runs import main; "
                            "sys.exit(main(sys.argv[1:]))", "runs", "clean", "--tracking-uri", team.tracking_uri,
                            "--experiment", "fault-sigkill", "--storage", team.storage, "--json"],
                           cwd=tmp_path, env=team.env(), capture_output=True, text=True, timeout=180)
    answer = last_json(clean)
    assert [(r["run_id"], r["closed"]) for r in answer["runs"]] == [(run.info.run_id, True)]
    assert team.client().get_run(run.info.run_id).info.status == "KILLED"
    assert versions_now(team, "fault-sigkill") == []
