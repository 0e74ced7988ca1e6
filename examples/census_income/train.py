"""Census income: does a person earn more than $50K a year? A scikit-learn pipeline on the UCI Adult data.

Run it as ``python examples/census_income/train.py [--output DIR] [--data FILE] [--version V]``: it trains on 80 % of
``data/adult.data``, reports the accuracy on the other 20 % with ``legion.model.send_metric`` and saves a
Legion model whose ``default`` endpoint takes the 14 census columns and answers the probability of each
income class, ``<=50K`` and ``>50K``. The tests and ``benchmarks/serve.py`` import it as a module too.

The version it saves is ``--version``, by default ``$LEGION_MODEL_VERSION``: as a ModelTraining the model is saved
under the training's ``model.version`` (or ``hyperParameters: {version: ...}``, which arrives as ``--version``),
so a retrain under a new version changes the manifest, not this file.

The model is the classic Legion shape: an ``apply_func(df)`` exported with ``export_df`` and a sample of the
training data as its signature. The function is on the serving hot path (the benchmark measures it), so it
does no more than ``predict_proba`` and pairs each class with its column.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import legion.model

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE / "data" / "adult.data"
DEFAULT_OUTPUT = HERE / "build" / "model"
DEFAULT_VERSION = "1.0"
VERSION_HELP = "model version to save (default: $LEGION_MODEL_VERSION, a ModelTraining's model.version; else 1.0)"

NUMERIC = ["age", "fnlwgt", "education_num", "capital_gain", "capital_loss", "hours_per_week"]
CATEGORICAL = [
    "workclass", "education", "marital_status", "occupation", "relationship", "race", "sex", "native_country",
]  # fmt: skip
# The order of the columns in the file.
FEATURES = [
    "age", "workclass", "fnlwgt", "education", "education_num", "marital_status", "occupation",
    "relationship", "race", "sex", "capital_gain", "capital_loss", "hours_per_week", "native_country",
]  # fmt: skip
TARGET = "income"
CLASSES = ("<=50K", ">50K")
MISSING = "unknown"  # the data set writes an unknown category as "?"


def load_data(path: Path | None = None) -> tuple[pd.DataFrame, pd.Series]:
    """The features (14 columns, no missing values) and the ``income`` label of ``adult.data``."""
    frame = pd.read_csv(
        path or DEFAULT_DATA, names=[*FEATURES, TARGET], skipinitialspace=True, na_values="?",
        keep_default_na=False,
    )  # fmt: skip
    frame[CATEGORICAL] = frame[CATEGORICAL].fillna(MISSING)
    return frame[FEATURES], frame[TARGET]


def train(X: pd.DataFrame, y: pd.Series) -> Pipeline:
    """One-hot categories and standardised numbers into a logistic regression; a few seconds on one core."""
    columns = ColumnTransformer(
        [
            ("categories", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
            ("numbers", StandardScaler(), NUMERIC),
        ]
    )
    pipeline = Pipeline([("columns", columns), ("classifier", LogisticRegression(max_iter=1000))])
    return pipeline.fit(X, y)


def evaluate(pipeline: Pipeline, X: pd.DataFrame, y: pd.Series) -> float:
    """Accuracy of ``pipeline`` on data it was not trained on."""
    return float(accuracy_score(y, pipeline.predict(X)))


def apply_function(pipeline: Pipeline) -> Callable[[pd.DataFrame], dict[str, np.ndarray]]:
    """The endpoint's function: ``df`` -> ``{"<=50K": p, ">50K": 1 - p}``, one probability per row."""
    labels = tuple(str(label) for label in pipeline.classes_)
    if labels != CLASSES:
        raise ValueError(f"expected the classes {CLASSES}, the pipeline has {labels}")

    def apply_func(df: pd.DataFrame) -> dict[str, np.ndarray]:
        probabilities = pipeline.predict_proba(df)
        return {CLASSES[0]: probabilities[:, 0], CLASSES[1]: probabilities[:, 1]}

    return apply_func


def export(
    pipeline: Pipeline, X: pd.DataFrame, output: Path, accuracy: float | None = None, version: str = DEFAULT_VERSION
) -> Path:
    """Save ``pipeline`` as the ``census-income`` model; ``X`` gives the signature, ``accuracy`` a metric."""
    legion.model.init("census-income", version)
    legion.model.export_df(apply_function(pipeline), X.head(100))
    if accuracy is not None:
        legion.model.send_metric("accuracy", accuracy)
    return legion.model.save(output)


def main(argv: list[str] | None = None) -> Path:
    """Train on 80 % of the data, measure on the rest, save the model; returns where it was saved."""
    parser = argparse.ArgumentParser(description="Train and save the census income model.")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="model directory or .zip to write")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the UCI Adult data file (adult.data)")
    parser.add_argument("--version", default=None, help=VERSION_HELP)
    args = parser.parse_args(argv)
    version = args.version or os.environ.get("LEGION_MODEL_VERSION") or DEFAULT_VERSION
    X, y = load_data(args.data)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0, stratify=y)
    pipeline = train(X_train, y_train)
    accuracy = evaluate(pipeline, X_test, y_test)
    saved = export(pipeline, X_train, args.output, accuracy=accuracy, version=version)
    print(f"held-out accuracy {accuracy:.4f}; saved {saved}")
    return saved


if __name__ == "__main__":
    main()
