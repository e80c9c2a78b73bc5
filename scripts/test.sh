#!/usr/bin/env bash
# Set up .venv (when missing) and run every check of the project, in order:
#   1. notebooks are clean (nbdev-clean changes nothing)
#   2. the package is in sync with the notebooks (nbdev-export changes nothing)
#   3. every notebook runs (nbdev-test)
#   4. the pytest suite (tests/), with the team tests (tests/team/): they start a whole local team stack with
#      scripts/team.sh (PostgreSQL on 127.0.0.1, an `mlflow server`, a Dask scheduler and workers) and stop it;
#      without PostgreSQL's server binaries they skip and say why, unless REGRESSION_LAB_TEAM=required (CI).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"

changed() { git status --porcelain --untracked-files=all -- "$@"; }
before_nbs=$(changed nbs); before_lib=$(changed regression_lab pyproject.toml)

echo "== 1. notebooks are clean"
nbdev-clean
if [ "$(changed nbs)" != "$before_nbs" ]; then
  echo "nbdev-clean changed notebooks: run nbdev-clean and commit"; git status --short -- nbs; exit 1
fi

echo "== 2. package in sync with notebooks"
nbdev-export
if [ "$(changed regression_lab pyproject.toml)" != "$before_lib" ]; then
  echo "nbdev-export changed the package: run nbdev-export and commit"; git status --short -- regression_lab; exit 1
fi

echo "== 3. notebooks run, each in a process of its own, two at a time"
# One process per notebook: a chapter that defines a module or re-runs a patch cell cannot change what another sees.
python -c 'from nbdev.doclinks import nbglob; print("\0".join(map(str, nbglob("nbs", skip_folder_re="^[_.]"))), end="")' \
  | xargs -0 -P 2 -n 1 nbdev-test --n-workers 1

echo "== 4. pytest"
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null; then
  echo "(no PostgreSQL server binaries: the team tests will skip; Debian: apt-get install postgresql)"
fi
python -m pytest tests "$@"
