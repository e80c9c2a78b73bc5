"""`regression-lab trials ...` and `regression-lab resources` in real subprocesses, on a study tuned from a held-out
CSV table by the real `regression-lab tune`."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import cli_env, run_cli

STANDALONE = "import sys; from regression_lab.cli.trials import main; sys.exit(main(sys.argv[1:]))"


def trials(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    "Run the trials commands' standalone `main` (what `regression-lab trials|resources` dispatches to) in a subprocess."
    return subprocess.run([sys.executable, "-c", STANDALONE, *map(str, args)], cwd=cwd, env=cli_env(),
                          capture_output=True, text=True, timeout=120)


def answer(done: subprocess.CompletedProcess) -> dict:
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
def study(tmp_path_factory, csv_file):
    "`(folder, storage URL, tune summary)` of a ridge study of four trials on the house table."
    folder = tmp_path_factory.mktemp("trials-cli")
    storage = f"sqlite:///{folder}/optuna.db"
    done = run_cli("tune", "--data", csv_file, "--target", "price", "--model", "ridge", "--trials", "4",
                   "--study", "houses", "--storage", storage, "--tracking-uri", f"sqlite:///{folder}/mlflow.db",
                   "--json", cwd=folder)
    return folder, storage, answer(done)


def test_list_and_show_the_tuned_study(study):
    folder, storage, tuned = study
    listed = answer(trials("trials", "list", "--storage", storage, "--json", cwd=folder))["studies"]
    assert [(row["study"], row["status"], row["complete"] + row["pruned"]) for row in listed] == [("houses", "finished", 4)]
    shown = answer(trials("trials", "show", "houses", "--storage", storage, "--json", cwd=folder))
    assert shown["best"]["params"] == tuned["best_params"] and shown["config"]["model"]["KIND"] == "RidgeModel"
    people = trials("trials", "list", "--storage", storage, cwd=folder)
    assert people.returncode == 0 and "houses" in people.stdout and "finished" in people.stdout


def test_history_and_best_in_both_directions(study):
    folder, storage, tuned = study
    history = answer(trials("trials", "history", "houses", "--storage", storage, "--json", cwd=folder))["history"]
    values = [row["value"] for row in history if row["state"] == "COMPLETE"]
    assert len(history) == 4 and {row["params.alpha"] is not None for row in history} == {True}
    best = {flag: answer(trials("trials", "best", "houses", *flag, "--storage", storage, "--json", cwd=folder))
            for flag in ((), ("--minimize",), ("--maximize",))}
    assert best[()]["score"] == pytest.approx(tuned["best_value"]) == pytest.approx(min(values))
    assert best[("--minimize",)]["score"] == best[()]["score"]
    assert best[("--maximize",)]["score"] == pytest.approx(max(values))
    assert best[()]["params"] == tuned["best_params"]


def test_intermediate_results_by_trial_and_by_status(study):
    folder, storage, _ = study
    one = answer(trials("trials", "intermediate", "houses", "--trial", "0", "--storage", storage, "--json", cwd=folder))
    assert list(one["intermediate"]) == ["0"] and 1 <= len(one["intermediate"]["0"]) <= 5  # a fold score each
    done = answer(trials("trials", "intermediate", "houses", "--status", "complete", "--storage", storage, "--json",
                         cwd=folder))["intermediate"]
    assert done and all(len(scores) == 5 for scores in done.values())
    assert answer(trials("trials", "intermediate", "houses", "--status", "running", "--storage", storage, "--json",
                         cwd=folder))["intermediate"] == {}


def test_bad_input_exits_2_naming_it_and_writes_nothing(study):
    folder, storage, _ = study
    unknown = trials("trials", "best", "huoses", "--storage", storage, "--json", cwd=folder)
    assert unknown.returncode == 2
    assert "no study 'huoses'" in unknown.stderr and "studies: houses" in unknown.stderr
    assert "Traceback" not in unknown.stderr and json.loads(unknown.stdout.splitlines()[-1])["exit_code"] == 2
    missing = trials("trials", "list", "--storage", f"sqlite:///{folder}/nothing.db", cwd=folder)
    assert missing.returncode == 2 and "--storage: no trial store at" in missing.stderr
    assert not (folder / "nothing.db").exists()
    bad = trials("trials", "intermediate", "houses", "--status", "done", "--storage", storage, cwd=folder)
    assert bad.returncode == 2 and "unknown job status 'done'" in bad.stderr


def test_resources_lists_the_slots_of_this_machine(study):
    folder, storage, _ = study
    pool = answer(trials("resources", "--storage", storage, "--json", cwd=folder))["resources"]
    # the tuner registered this machine's CPU slots and gave every lease back
    cpu = [row for row in pool if row["type"].startswith("cpu@")]
    assert len(cpu) == 1 and cpu[0]["total"] == len(os.sched_getaffinity(0)) and cpu[0]["in_use"] == 0


def test_end_and_delete_a_study(study, tmp_path):
    folder, storage, _ = study
    copy = tmp_path / "optuna.db"  # a copy, so that the other tests keep the study
    with sqlite3.connect(storage.removeprefix("sqlite:///")) as source, sqlite3.connect(copy) as target:
        source.backup(target)
    url = f"sqlite:///{copy}"
    assert answer(trials("trials", "end", "houses", "--interrupted", "--storage", url, "--json", cwd=tmp_path))["status"] == "interrupted"
    assert answer(trials("trials", "delete", "houses", "--storage", url, "--json", cwd=tmp_path))["deleted"] is True
    assert answer(trials("trials", "list", "--storage", url, "--json", cwd=tmp_path))["studies"] == []
    assert trials("trials", "delete", "houses", "--storage", url, cwd=tmp_path).returncode == 2


def test_the_commands_are_wired_into_regression_lab(study):
    folder, storage, _ = study
    listed = run_cli("trials", "list", "--storage", storage, "--json", cwd=folder)
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert [row["study"] for row in json.loads(listed.stdout.splitlines()[-1])["studies"]] == ["houses"]
    assert run_cli("resources", "--storage", storage, "--json", cwd=folder).returncode == 0
    assert run_cli("trials", "show", "nope", "--storage", storage, cwd=folder).returncode == 2
