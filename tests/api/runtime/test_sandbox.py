"""``Sandbox`` with the real bubblewrap: what user code sees, writes and inherits, and the refusal without it.

Each case runs a small Python program in the sandbox the way the runtimes do (``wrap`` then ``launch``) and reads
what it printed. The "platform's data" is a directory in ``tmp_path`` holding a keys file.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from legion.api.runtime.base import PermanentRuntimeError
from legion.api.runtime.processes import child_environment, launch
from legion.api.runtime.sandbox import Mounts, Sandbox

DEADLINE_S = 60.0

# Prints one JSON object: what it could read, write and see.
PROBE = """
import json, os, sys
data, out, elsewhere = sys.argv[1:4]
def read(path):
    try:
        with open(path) as file:
            return file.read()
    except OSError as exc:
        return type(exc).__name__
def write(path):
    try:
        with open(path, "w") as file:
            file.write("x")
        return "written"
    except OSError as exc:
        return type(exc).__name__
print(json.dumps({
    "keys": read(os.path.join(data, "keys.json")),
    "listing": sorted(os.listdir(data)) if os.path.isdir(data) else None,
    "input": read(os.path.join(data, "models", "m", "model.txt")),
    "out": write(os.path.join(out, "model.txt")),
    "elsewhere": write(elsewhere),
    "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
    "env": {k: v for k, v in os.environ.items() if k.startswith(("LEGION", "SECRET", "TMPDIR", "HOME"))},
}), flush=True)
"""


@pytest.fixture
def platform(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    (data / "models" / "m").mkdir(parents=True)
    (data / "keys.json").write_text('{"tokenSecret": "s3cret"}')
    (data / "models" / "m" / "model.txt").write_text("weights")
    return data


def run(sandbox: Sandbox, tmp_path: Path, platform: Path, *, readable: tuple[Path, ...] = ()) -> dict[str, object]:
    out, scratch = tmp_path / "out", tmp_path / "scratch"
    out.mkdir(exist_ok=True)
    scratch.mkdir(exist_ok=True)
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    argv = [sys.executable, str(script), str(platform), str(out), str(tmp_path / "elsewhere.txt")]
    mounts = Mounts(cwd=scratch, scratch=scratch, writable=(out,), readable=readable)
    env = child_environment({"SECRET_OF_THE_JOB": "given"}, environ={**os.environ, "LEGION_API_TOKEN_SECRET": "t"})
    command, env = sandbox.wrap(argv, mounts, env)
    log = tmp_path / "probe.log"
    pid = launch(command, env, python=sys.executable, cwd=scratch, log_path=log)
    end = time.monotonic() + DEADLINE_S
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        assert time.monotonic() < end, "the probe did not end"
        time.sleep(0.05)
    lines = log.read_text().splitlines()
    assert lines, "the probe printed nothing"
    result: dict[str, object] = json.loads(lines[-1])
    return result


def test_user_code_does_not_see_hidden_paths_and_writes_only_its_own(tmp_path: Path, platform: Path) -> None:
    sandbox = Sandbox(hidden=(platform,), shared=(platform / "models",))
    seen = run(sandbox, tmp_path, platform, readable=(platform / "models" / "m",))
    assert seen["keys"] == "FileNotFoundError"
    assert seen["listing"] == ["models"]  # only the mount point of the input it was given
    assert seen["input"] == "weights"
    assert seen["out"] == "written"
    assert seen["elsewhere"] == "OSError"  # read-only file system
    assert not (tmp_path / "elsewhere.txt").exists()
    assert seen["pids"] == [1, 2]  # its own pid namespace: bubblewrap's init and the program; not the API's
    scratch = str((tmp_path / "scratch").resolve())
    assert seen["env"] == {"SECRET_OF_THE_JOB": "given", "TMPDIR": scratch, "HOME": scratch}


def test_without_the_sandbox_the_same_code_reads_the_keys(tmp_path: Path, platform: Path) -> None:
    """The unsafe opt-out, and what the sandbox protects from: the environment stays an allow-list though."""
    seen = run(Sandbox.off((platform,)), tmp_path, platform)
    assert seen["keys"] == '{"tokenSecret": "s3cret"}'
    assert seen["elsewhere"] == "written"
    env = seen["env"]
    assert isinstance(env, dict)
    assert env.get("SECRET_OF_THE_JOB") == "given"
    assert not any(name.startswith("LEGION") for name in env)


def test_a_missing_bubblewrap_refuses_user_code_and_says_what_to_do(tmp_path: Path, platform: Path) -> None:
    sandbox = Sandbox(hidden=(platform,), program="no-such-bwrap")
    with pytest.raises(PermanentRuntimeError) as refused:
        sandbox.wrap([sys.executable, "-c", "pass"], Mounts(cwd=tmp_path, scratch=tmp_path), {})
    assert "user code cannot be isolated: 'no-such-bwrap' (bubblewrap) is not installed" in refused.value.reason
    assert "apt-get install bubblewrap" in refused.value.reason
    assert "LEGION_API_SANDBOX=false" in refused.value.reason


def test_an_input_in_a_hidden_path_is_refused_unless_it_is_in_a_shared_store(tmp_path: Path, platform: Path) -> None:
    sandbox = Sandbox(hidden=(platform,), shared=(platform / "models",))
    link = tmp_path / "innocent"
    link.symlink_to(platform)  # a model path swapped for a link to the platform's data after the API checked it
    for readable in (platform, link, platform / "keys.json", link / "runtime"):
        with pytest.raises(PermanentRuntimeError, match="leads into the platform's own data"):
            sandbox.wrap(["true"], Mounts(cwd=tmp_path, scratch=tmp_path, readable=(readable,)), {})
    with pytest.raises(PermanentRuntimeError, match="leads into the platform's own data"):
        sandbox.check_source(link / "keys.json", "localPath")


def test_a_hidden_directory_inside_a_writable_one_stays_hidden(tmp_path: Path) -> None:
    """A data directory inside the working copy: binding the copy must not bring the data back."""
    work = tmp_path / "work"
    data = work / "data"
    data.mkdir(parents=True)
    (data / "keys.json").write_text("secret")
    (tmp_path / "out").mkdir()
    sandbox = Sandbox(hidden=(data,))
    mounts = Mounts(cwd=work, scratch=work, writable=(tmp_path / "out",))
    command, env = sandbox.wrap([sys.executable, "-c", "import os; print(os.listdir('data'))"], mounts, {})
    log = tmp_path / "log"
    pid = launch(command, env, python=sys.executable, cwd=work, log_path=log)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, log.read_text()
    assert log.read_text().strip() == "[]"
