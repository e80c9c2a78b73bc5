"""Model kinds for the tuning tests: importable by module path, so subprocesses and Dask workers find them."""
import os
import time
import typing as T
from pathlib import Path

from regression_lab.models import Model


class SlowRidgeModel(Model):
    "A ridge model that takes `delay` seconds per fit: room to interrupt a search mid-trial."
    KIND: T.Literal["SlowRidgeModel"] = "SlowRidgeModel"
    alpha: float = 1.0
    delay: float = 0.5

    def regressor(self):
        from sklearn.linear_model import Ridge
        time.sleep(self.delay)
        return Ridge(alpha=self.alpha)


class FlakyRidgeModel(Model):
    "A ridge model whose first fit of each alpha raises; the marks live in the folder $FLAKY_DIR."
    KIND: T.Literal["FlakyRidgeModel"] = "FlakyRidgeModel"
    alpha: float = 1.0

    def regressor(self):
        from sklearn.linear_model import Ridge
        mark = Path(os.environ["FLAKY_DIR"]) / f"{self.alpha!r}"
        if not mark.exists():
            mark.touch()
            raise RuntimeError(f"resource busy for alpha={self.alpha!r}")
        return Ridge(alpha=self.alpha)
