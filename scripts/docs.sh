#!/usr/bin/env bash
# Build the docs site into _docs/ from the notebooks in nbs/, offline; open _docs/index.html in a browser.
# Sets up .venv (when missing) as scripts/test.sh does, then runs docs/build.py:
#   nbdev-proc-nbs (nbdev's own processing, into _proc/) → docs/build.py's conversion → Sphinx + MyST-NB.
# Notebooks are not re-executed: the pages show the outputs saved in them.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

.venv/bin/python docs/build.py
