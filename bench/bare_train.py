"""The reference for bench/train_overhead.py: read, split, fit, predict and score, with no tracking at all.

    .venv/bin/python bench/bare_train.py TABLE.csv TARGET
"""
import sys

import pandas as pd
from sklearn.metrics import mean_absolute_error, mean_absolute_percentage_error, r2_score, root_mean_squared_error
from sklearn.model_selection import train_test_split

from regression_lab.models import HistGradientBoostingModel


def bare_train(path: str, target: str) -> dict[str, float]:
    "The learning a TrainingJob does, untracked: the same model, split and metrics."
    table = pd.read_csv(path)
    inputs, targets = table.drop(columns=[target]), table[target]
    train_x, test_x, train_y, test_y = train_test_split(inputs, targets, test_size=0.2, random_state=42)
    pipeline = HistGradientBoostingModel().build(train_x).fit(train_x, train_y)
    predicted = pipeline.predict(test_x)
    return {f.__name__: f(test_y, predicted) for f in
            (root_mean_squared_error, mean_absolute_error, r2_score, mean_absolute_percentage_error)}


if __name__ == "__main__":
    print(bare_train(sys.argv[1], sys.argv[2]))
