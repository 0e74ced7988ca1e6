"""Fixtures shared by the whole suite: the example models, each trained and saved once per session.

The example tests and the model server tests serve the same models (``examples/*/train.py``), so each is
built once, into a session temporary directory, by calling the script's ``main`` the way a user runs it.
The examples are scripts, not an installed package: the repository root goes on ``sys.path`` so that tests
import them as ``examples.<name>.train``. Saving a model from such a module is the case the SDK must pickle
by value (the code will not be importable where the model is served), which the example tests check.

The model's own virtualenv (``--env-manager virtualenv``, ``envManager: virtualenv``) is made once per session too,
by the first ``legion serve`` that asks for it, into a private cache that the other tests reuse.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
VIRTUALENV_BUILD_DEADLINE_S = 600.0
"""How long making the model's virtualenv may take on a loaded machine (a warm uv cache makes it take seconds)."""
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


@pytest.fixture(scope="session")
def pinned_six_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model pinning another six than this environment's, that answers the six it runs with (``support.pinned``)."""
    from tests.support import pinned

    assert pinned.installed_six() != pinned.PINNED_SIX, "the test needs a six here other than the model's"
    return pinned.train(tmp_path_factory.mktemp("pinned-six") / "model")


@dataclass(frozen=True)
class BuiltVirtualenv:
    """The model's virtualenv as the first ``legion serve --env-manager virtualenv`` made it, in a private cache."""

    cache_dir: Path
    model_dir: Path
    stderr: str
    """What that first start said (that it built the virtualenv)."""
    answer: dict[str, Any]
    """What that first server answered to ``support.pinned.REQUEST``."""


@pytest.fixture(scope="session")
def pinned_six_virtualenv(pinned_six_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> BuiltVirtualenv:
    """Made once per session (uv, from this machine's index configuration and uv cache), shared by the tests that
    serve or package the pinned model in its virtualenv; they find it in ``cache_dir`` and reuse it."""
    import httpx

    from tests.support.pinned import REQUEST
    from tests.support.server import serving

    cache_dir = tmp_path_factory.mktemp("model-envs")
    env = {"LEGION_ENVS_CACHE_DIR": str(cache_dir)}
    args = ["--env-manager", "virtualenv"]
    with serving(pinned_six_model_dir, args, env, startup_deadline_s=VIRTUALENV_BUILD_DEADLINE_S) as server:
        answer = httpx.post(f"{server.url}/api/model/invoke", json=REQUEST, timeout=30).json()
    return BuiltVirtualenv(cache_dir, pinned_six_model_dir, server.stderr, answer)
