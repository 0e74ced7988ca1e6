"""Fixtures shared by the whole suite: the example models, each trained and saved once per session.

The example tests and the model server tests serve the same models (``examples/*/train.py``), so each is
built once, into a session temporary directory, by calling the script's ``main`` the way a user runs it.
The examples are scripts, not an installed package: the repository root goes on ``sys.path`` so that tests
import them as ``examples.<name>.train``. Saving a model from such a module is the case the SDK must pickle
by value (the code will not be importable where the model is served), which the example tests check.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def census_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The census income model (``examples/census_income``) saved as a directory."""
    from examples.census_income import train

    return train.main(["--output", str(tmp_path_factory.mktemp("census-income") / "model")])


@pytest.fixture(scope="session")
def digits_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The digit recognition model (``examples/digits``) saved as a directory."""
    from examples.digits import train

    return train.main(["--output", str(tmp_path_factory.mktemp("digits") / "model")])


@pytest.fixture(scope="session")
def summation_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Legion's summation test model (``examples/summation``) saved as a directory."""
    from examples.summation import train

    return train.main(["--output", str(tmp_path_factory.mktemp("summation") / "model")])
