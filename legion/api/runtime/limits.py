"""``Limiter``: the local runtimes hold a job or replica to its ``resources.limits`` with a cgroup of its own.

``LocalJobs`` and ``LocalRuntime`` ask ``Limiter.create(unit, resources)`` for a cgroup before they start user
code, hand its ``cgroup.procs`` files to ``processes.launch`` (the launcher moves the program, not itself, into the
cgroup before it runs, so nothing escapes and the launcher can still record the exit code), ask ``oom_kills`` once
the program has ended (to say "exceeded its memory limit 64Mi" instead of "killed by SIGKILL") and ``remove`` it.

What is enforced, and how:

- memory limit → ``memory.max`` (cgroup v2) or ``memory.limit_in_bytes`` (v1), swap held to the same; past it the
  kernel reclaims the page cache, then kills the largest process of the cgroup. This counts resident memory, as
  Kubernetes does; an address-space limit (``RLIMIT_AS``) would not do: a replica that imports NumPy and
  scikit-learn maps ≈ 2.5× the memory it uses (the census replica: 500 MB mapped, 200 MB resident), so Legion's
  256Mi default would kill it at import.
- CPU limit → a CFS quota per 100 ms period (``cpu.max`` / ``cpu.cfs_quota_us``): 256m runs at most 25.6 ms of
  CPU per 100 ms, throttled, never killed (``RLIMIT_CPU`` kills after N CPU-seconds: no rate limit for a replica).
- requests and GPUs: not enforced. In Kubernetes a request places the pod and (CPU) weighs it against other pods,
  which all have one; here the other processes of the machine run outside any such cgroup, each with the weight of
  a whole core, so a 128m request turned into ``cpu.shares`` would leave a training ~1/8 of the CPU of any other
  process under load (measured: the census training took 210 s instead of 24 s on a busy machine).

The cgroups are made below the API's own cgroup in each hierarchy (read from ``/proc/self/cgroup`` and
``/proc/self/mountinfo``): where the API may write there (root in a container or VM, or a delegated cgroup v2
subtree) limits are enforced; elsewhere ``describe`` says ``mechanism: none`` and why, which the status shows. The
runtimes do nothing of this without a ``Limiter`` (``Limiter.off``), so tests and embedders opt in.

    limiter = Limiter.find()
    cgroup, enforced = limiter.create("legion-1a2b-train-census", spec.resources)
    pid = launch(command, env, ..., cgroups=cgroup.procs if cgroup else ())
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

from legion.api.runtime.base import PermanentRuntimeError
from legion.core.quantities import to_bytes, to_millicores
from legion.core.resources import EnforcedLimits, ResourceRequirements

CPU_PERIOD_US: Final = 100_000
"""The CFS period a CPU quota is given per (Kubernetes' too)."""
MIN_QUOTA_US: Final = 1_000
"""The smallest quota the kernel takes."""
Controller = Literal["memory", "cpu"]
CONTROLLERS: Final[tuple[Controller, ...]] = ("memory", "cpu")
NONE: Final = "none"
_V1_MEMORY: Final = ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes")


@dataclass(frozen=True, slots=True)
class Hierarchy:
    """Where the cgroups of one controller go: the API's own cgroup directory in that controller's hierarchy."""

    version: Literal[1, 2]
    parent: Path


@dataclass(frozen=True, slots=True)
class Cgroup:
    """The cgroup directories of one job or replica (one per hierarchy: v1 has one per controller)."""

    directories: tuple[Path, ...]
    memory: Path | None = None
    """The directory whose counters say whether the memory limit was hit."""

    @property
    def procs(self) -> tuple[Path, ...]:
        """The files the launcher writes the program's pid to."""
        return tuple(directory / "cgroup.procs" for directory in self.directories)

    def oom_kills(self) -> int:
        """How many processes of the cgroup the kernel killed for going over the memory limit (0 when unknown)."""
        for name in ("memory.events", "memory.oom_control"):  # v2, v1
            try:
                lines = (self.memory / name).read_text().splitlines() if self.memory else []
            except OSError:
                continue
            counters = dict(line.split(maxsplit=1) for line in lines if " " in line)
            with contextlib.suppress(ValueError):
                return int(counters.get("oom_kill", "0"))
        return 0

    def remove(self) -> bool:
        """Remove the (empty) cgroup; False while a process is still in it."""
        removed = True
        for directory in self.directories:
            try:
                directory.rmdir()
            except FileNotFoundError:
                continue
            except OSError:
                removed = False
        return removed


@dataclass(frozen=True, slots=True)
class Limiter:
    """Makes a cgroup per job or replica in the hierarchies the API may write; ``off`` enforces nothing."""

    hierarchies: dict[Controller, Hierarchy] = field(default_factory=dict)
    why_not: str | None = None
    """Why some (or every) controller cannot be used here; shown in the status."""
    enabled: bool = True

    @classmethod
    def off(cls, why: str = "switched off") -> Limiter:
        return cls(why_not=why, enabled=False)

    @classmethod
    def find(cls, proc: Path = Path("/proc/self")) -> Limiter:
        """The hierarchies of this machine where the API's own cgroup can have children with limits."""
        try:
            memberships = (proc / "cgroup").read_text().splitlines()
            mounts = (proc / "mountinfo").read_text().splitlines()
        except OSError as exc:
            return cls(why_not=f"no cgroups here ({exc.strerror or exc})")
        found: dict[Controller, Hierarchy] = {}
        problems: list[str] = []
        v2 = _v2_parent(memberships, mounts)
        if v2 is not None:
            available = _read_words(v2 / "cgroup.controllers")
            for controller in CONTROLLERS:
                if controller in available:
                    found[controller] = Hierarchy(2, v2)
        for controller in CONTROLLERS:
            if controller not in found and (parent := _v1_parent(controller, memberships, mounts)) is not None:
                found[controller] = Hierarchy(1, parent)
        for controller, hierarchy in list(found.items()):
            problem = _unwritable(hierarchy, controller)
            if problem is not None:
                problems.append(problem)
                del found[controller]
        missing = [c for c in CONTROLLERS if c not in found and not any(p.startswith(c) for p in problems)]
        problems += [f"{c}: no cgroup hierarchy has this controller" for c in missing]
        return cls(found, "; ".join(problems) or None)

    def describe(self, resources: ResourceRequirements) -> EnforcedLimits:
        """What ``create`` enforces for ``resources`` here (the status field), without making anything."""
        limits = resources.limits
        memory = limits.memory if limits and "memory" in self.hierarchies else None
        cpu = limits.cpu if limits and "cpu" in self.hierarchies else None
        versions = sorted({self.hierarchies[c].version for c in CONTROLLERS if c in self.hierarchies})
        mechanism = " + ".join(f"cgroup v{v}" for v in versions) if self.enabled and versions else NONE
        if mechanism == NONE:
            return EnforcedLimits(mechanism=NONE, detail=f"limits are not enforced locally: {self.why_not}")
        written = ", ".join(f"{name}={value}" for (_, name), value in self._values(resources))
        unenforced = "; ".join(["not enforced locally: requests, GPUs", *([self.why_not] if self.why_not else [])])
        return EnforcedLimits(mechanism=mechanism, cpu=cpu, memory=memory, detail=f"{written}; {unenforced}")

    def create(self, unit: str, resources: ResourceRequirements) -> tuple[Cgroup | None, EnforcedLimits]:
        """A new cgroup ``unit`` (a directory name) with the limits of ``resources``, and what it enforces; no
        cgroup when nothing can be enforced here. Raises ``PermanentRuntimeError`` when a limit cannot be set."""
        enforced = self.describe(resources)
        if enforced.mechanism == NONE:
            return None, enforced
        cgroup = self.cgroup(unit)
        try:
            for directory in cgroup.directories:
                directory.mkdir(exist_ok=True)
            for (controller, name), value in self._values(resources):
                path = self.hierarchies[controller].parent / unit / name
                with contextlib.suppress(FileNotFoundError):  # no swap accounting: nothing to hold to the limit
                    path.write_text(value)
        except OSError as exc:
            cgroup.remove()
            raise PermanentRuntimeError(f"cannot set the resource limits in a cgroup ({exc})") from exc
        return cgroup, enforced

    def cgroup(self, unit: str) -> Cgroup:
        """The cgroup called ``unit`` (made by ``create``, perhaps by an earlier API process)."""
        parents = {h.parent for h in self.hierarchies.values()} if self.enabled else set()
        memory = self.hierarchies.get("memory")
        return Cgroup(tuple(sorted(parent / unit for parent in parents)), memory.parent / unit if memory else None)

    def _values(self, resources: ResourceRequirements) -> list[tuple[tuple[Controller, str], str]]:
        """The files to write, in order, and their contents."""
        limits = resources.limits
        values: list[tuple[tuple[Controller, str], str]] = []
        if (memory := self.hierarchies.get("memory")) and limits and limits.memory:
            size = str(to_bytes(limits.memory))
            # v1: the limit first, as the kernel keeps memory+swap at or above it; then no swap beyond it
            names = ("memory.max", "memory.swap.max") if memory.version == 2 else _V1_MEMORY
            values += [(("memory", names[0]), size), (("memory", names[1]), "0" if memory.version == 2 else size)]
        if (cpu := self.hierarchies.get("cpu")) and limits and limits.cpu:
            quota = max(to_millicores(limits.cpu) * CPU_PERIOD_US // 1000, MIN_QUOTA_US)
            if cpu.version == 2:
                values.append((("cpu", "cpu.max"), f"{quota} {CPU_PERIOD_US}"))
            else:
                values.append((("cpu", "cpu.cfs_period_us"), str(CPU_PERIOD_US)))
                values.append((("cpu", "cpu.cfs_quota_us"), str(quota)))
        return values


def unit_prefix(work_dir: Path) -> str:
    """What the cgroups of one runtime work directory are called by: ``legion-<8 hex>`` (several APIs, or test
    runs, on one machine never share a cgroup name)."""
    return "legion-" + hashlib.sha256(os.fsencode(work_dir.absolute())).hexdigest()[:8]


def memory_exceeded(enforced: EnforcedLimits | None) -> str:
    """The words a failure reason starts with when the kernel killed a process for its memory limit."""
    limit = enforced.memory if enforced and enforced.memory else "?"
    return f"exceeded its memory limit {limit} (killed by the kernel's out-of-memory killer)"


# -- finding the hierarchies --------------------------------------------------------------------------------------


def _mount_entries(mounts: list[str]) -> list[tuple[str, str, str, set[str]]]:
    """``(root, mount point, file system type, super options)`` of each line of ``/proc/self/mountinfo``."""
    entries = []
    for line in mounts:
        mine, _, theirs = line.partition(" - ")
        left, right = mine.split(), theirs.split()
        if len(left) >= 5 and len(right) >= 3:
            entries.append((_unescape(left[3]), _unescape(left[4]), right[0], set(right[2].split(","))))
    return entries


def _unescape(text: str) -> str:
    return text.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def _inside(mount_point: str, mount_root: str, path: str) -> Path | None:
    """The directory of cgroup ``path`` in a hierarchy mounted at ``mount_point`` from ``mount_root``."""
    relative = os.path.relpath(path, mount_root) if path.startswith(mount_root) else path.lstrip("/")
    directory = Path(mount_point) / relative
    return directory if relative != ".." and not relative.startswith("../") and directory.is_dir() else None


def _v2_parent(memberships: list[str], mounts: list[str]) -> Path | None:
    path = next((line[3:] for line in memberships if line.startswith("0::")), None)
    if path is None:
        return None
    for root, point, fstype, _ in _mount_entries(mounts):
        if fstype == "cgroup2" and (directory := _inside(point, root, path)) is not None:
            return directory
    return None


def _v1_parent(controller: Controller, memberships: list[str], mounts: list[str]) -> Path | None:
    for line in memberships:
        _, controllers, path = line.split(":", 2) if line.count(":") >= 2 else ("", "", "")
        if controller in controllers.split(","):
            for root, point, fstype, options in _mount_entries(mounts):
                if fstype == "cgroup" and controller in options:
                    return _inside(point, root, path)
    return None


def _read_words(path: Path) -> set[str]:
    try:
        return set(path.read_text().split())
    except OSError:
        return set()


def _unwritable(hierarchy: Hierarchy, controller: Controller) -> str | None:
    """Why the API cannot make cgroups with ``controller`` below its own (None when it can)."""
    parent = hierarchy.parent
    if not os.access(parent, os.W_OK):
        return f"{controller}: the API may not make cgroups in {parent} (run it as root, or in a delegated cgroup)"
    if hierarchy.version == 1:
        return None
    if controller in _read_words(parent / "cgroup.subtree_control"):
        return None
    try:  # cgroup v2 gives a controller to children only where the parent holds no process itself
        (parent / "cgroup.subtree_control").write_text(f"+{controller}")
    except OSError as exc:
        why = "the API's own cgroup holds processes" if exc.errno == errno.EBUSY else exc.strerror or str(exc)
        return f"{controller}: cannot hand the {controller} controller to cgroups below {parent} ({why})"
    return None
