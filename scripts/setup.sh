# Sourced by the other scripts: from the project's root, create .venv when missing and install the project with
# its development and team extras into it (team: the PostgreSQL driver the team tests use); offline switches for
# MLflow. Not meant to be run on its own.
export MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true PIP_DISABLE_PIP_VERSION_CHECK=1
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[dev,team]"
