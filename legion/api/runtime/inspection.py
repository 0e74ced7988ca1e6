"""``inspect_model``: load a user's model in the sandbox to check it, and bring back its manifest.

Importing a model into the registry (``POST /api/v1/model``) checks that it loads; loading unpickles the user's
code, which must never run inside the API process (it could read the API's keys and memory). So the check runs
``load_model`` in a short-lived Python process in the ``sandbox``, with the model path readable, and reads back
its manifest (or the reasons it cannot be loaded) as one JSON line.

    manifest = inspect_model(Path("/models/wine"), sandbox)
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Final

from pydantic import ValidationError

from legion.api.runtime.base import PermanentRuntimeError
from legion.api.runtime.processes import child_environment
from legion.api.runtime.sandbox import Mounts, Sandbox
from legion.core.errors import ModelFormatError, UnavailableError
from legion.model import Manifest

INSPECT_TIMEOUT_S: Final = 300.0

# Runs as ``python -c _PROGRAM MODEL_PATH``; prints {"manifest": …} or {"error": …, "problems": […]}.
_PROGRAM: Final = """\
import json, sys
from legion.core.errors import LegionError
from legion.model.loader import load_model
try:
    model = load_model(sys.argv[1])
    answer = {"manifest": model.manifest.model_dump(mode="json", by_alias=True, exclude_none=True)}
except LegionError as exc:
    answer = {"error": str(exc), "problems": list(getattr(exc, "problems", []))}
except Exception as exc:
    answer = {"error": f"the model cannot be loaded: {type(exc).__name__}: {exc}", "problems": []}
print("\\n" + json.dumps(answer), flush=True)
"""


def inspect_model(path: Path, sandbox: Sandbox, *, python: str = sys.executable) -> Manifest:
    """The manifest of the model at ``path`` once it has loaded in ``sandbox``.

    Raises ``ModelFormatError`` (with every problem) when it cannot be loaded, ``UnavailableError`` when the check
    could not run (no usable sandbox here, a path it hides, a timeout).
    """
    with tempfile.TemporaryDirectory(prefix="legion-inspect-") as scratch:
        mounts = Mounts(cwd=Path(scratch), scratch=Path(scratch), readable=(path,))
        try:
            command, env = sandbox.wrap([python, "-c", _PROGRAM, str(path)], mounts, child_environment())
        except PermanentRuntimeError as exc:  # no usable sandbox here
            raise UnavailableError(f"the model cannot be checked here: {exc.reason}") from exc
        try:
            done = subprocess.run(  # our own argv, no shell
                command, env=env, cwd=scratch, capture_output=True, text=True, timeout=INSPECT_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise UnavailableError(f"loading the model took over {INSPECT_TIMEOUT_S:g} s") from exc
    lines = done.stdout.strip().splitlines()
    try:
        answer = json.loads(lines[-1]) if lines else {}
        if "manifest" in answer:
            return Manifest.model_validate(answer["manifest"])
    except (ValueError, ValidationError, TypeError):
        answer = {}
    if "error" in answer:
        raise ModelFormatError(str(answer["error"]).split(":\n")[0], problems=answer.get("problems") or ())
    tail = (done.stderr.strip() or done.stdout.strip() or f"exit code {done.returncode}")[-2000:]
    raise ModelFormatError(f"the model cannot be loaded: {tail}")
