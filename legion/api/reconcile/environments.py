"""``EnvironmentBuilds``: models' virtualenvs made in the background for the packagings that ask for one.

A ``local`` packaging with ``envManager: virtualenv`` runs its packager in the model's own virtualenv
(``legion.environments``), which records it in the package, so the package's replicas run there too. The API
makes that virtualenv itself, outside the sandbox, because the sandbox keeps user code from writing the shared
caches (the virtualenvs', uv's) that later jobs and replicas trust. So that no user code runs while it does,
only published wheels are installed (``build_sources=False``) and the model's requirement lines are checked to be
requirements by name (``legion.environments.needs``); nothing of the model is loaded.

A build takes from seconds (a warm uv cache) to minutes, longer than a reconcile step should, so it runs in a
worker thread while the packaging is looked at again: ``poll`` starts it and says None until it is made.

    environment = builds.poll(f"{stored.id}@{stored.generation}", artifact)   # None: not yet
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from legion.environments import Environment, EnvironmentSettings, ensure_environment, read_needs

log = logging.getLogger(__name__)


class EnvironmentBuilds:
    """Background builds of models' virtualenvs, one per owner (a packaging's id and generation)."""

    def __init__(self, settings: EnvironmentSettings) -> None:
        self.settings = settings
        self._tasks: dict[str, asyncio.Task[Environment]] = {}

    def poll(self, owner: str, model: Path) -> Environment | None:
        """The virtualenv for the model at ``model`` once it is made; None while it is being made (the first call
        starts making it). Raises what making it raised (``ModelFormatError``, ``EnvironmentBuildError``,
        ``UnavailableError`` when uv is missing)."""
        task = self._tasks.get(owner)
        if task is None:
            needs = read_needs(model)
            self._tasks[owner] = asyncio.get_running_loop().create_task(
                asyncio.to_thread(ensure_environment, needs, self.settings, build_sources=False, report=log.info)
            )
            return None
        if not task.done():
            return None
        del self._tasks[owner]
        return task.result()

    def forget(self, prefix: str) -> None:
        """Drop what is known of the owners starting with ``prefix`` (a build under way still finishes)."""
        for owner in [o for o in self._tasks if o.startswith(prefix)]:
            task = self._tasks.pop(owner)
            task.add_done_callback(_swallow)


def _swallow(task: asyncio.Task[Environment]) -> None:
    """Nobody waits for a forgotten build any more: read its outcome, so that asyncio does not report it."""
    if not task.cancelled() and task.exception() is not None:
        log.warning("a forgotten virtualenv build failed: %s", task.exception())
