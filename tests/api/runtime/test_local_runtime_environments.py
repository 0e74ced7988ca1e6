"""``LocalRuntime`` and a package that records the model's own virtualenv (a packaging with ``envManager:
virtualenv``); the journey that serves one is ``tests/api/test_api_virtualenv_packaging.py``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from legion.api.runtime.base import PermanentRuntimeError
from legion.api.runtime.local import LocalRuntime
from legion.api.runtime.sandbox import Sandbox
from legion.core.resources import ModelDeploymentSpec
from legion.model.package import build_package, package_python


def test_a_package_whose_virtualenv_is_gone_fails_its_deployment_saying_so(
    pinned_six_model_dir: Path, tmp_path: Path
) -> None:
    gone = tmp_path / "envs" / "0123456789abcdef" / "bin" / "python"
    environment = {"manager": "virtualenv", "key": "0123456789abcdef", "python": str(gone)}
    build_package(pinned_six_model_dir, tmp_path / "package", environment=environment)
    assert package_python(tmp_path / "package") == gone
    runtime = LocalRuntime(tmp_path / "work", sandbox=Sandbox.off())
    spec = ModelDeploymentSpec(image=str(tmp_path / "package"), min_replicas=1)
    with pytest.raises(PermanentRuntimeError) as caught:
        asyncio.run(runtime.apply_deployment("six", spec))
    assert f"runs in the model's virtualenv {gone.parent.parent}, which is gone" in caught.value.reason
    assert not list((tmp_path / "work").rglob("replica-*.log"))  # nothing was started
