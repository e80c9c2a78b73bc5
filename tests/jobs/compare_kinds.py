"""Model kinds for the comparison tests: importable by module path, so worker processes and subprocesses find them."""
import os
import time
import typing as T
from pathlib import Path

from regression_lab.models import Model


class SleepyModel(Model):
    "A ridge model whose fit sleeps first ($SLEEPY_SECONDS, else `seconds`) and leaves its pid in $SLEEPY_PIDS."
    KIND: T.Literal["SleepyModel"] = "SleepyModel"
    seconds: float = 60.0

    def regressor(self):
        from sklearn.linear_model import Ridge
        if os.environ.get("SLEEPY_PIDS"):
            (Path(os.environ["SLEEPY_PIDS"]) / str(os.getpid())).touch()
        time.sleep(float(os.environ.get("SLEEPY_SECONDS", self.seconds)))
        return Ridge()


class FlakyModel(Model):
    "A ridge model whose first fit raises; the mark lives in the folder $FLAKY_DIR."
    KIND: T.Literal["FlakyModel"] = "FlakyModel"

    def regressor(self):
        from sklearn.linear_model import Ridge
        mark = Path(os.environ["FLAKY_DIR"]) / "failed-once"
        if not mark.exists():
            mark.touch()
            raise RuntimeError("resource busy")
        return Ridge()
