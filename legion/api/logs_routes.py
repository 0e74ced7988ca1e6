"""``GET /api/v1/<training|packaging|deployment path>/{id}/log[?follow=true]``: logs as plain text.

A deployment's log is its current replicas' output, each line prefixed with the replica (``[replica-2] ...``);
following it lasts until the client goes away.

Without ``follow`` the log so far; with it, the response streams new lines as the job writes them and ends when the
job does (``legion logs -f``). A job's log stays after it ended, failed or not, until its spec changes or it is
deleted. A job that has not started yet has no log (404 that says so), nor one that failed before it could start
(404 with the reason it failed).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final, Protocol, runtime_checkable

from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse

from legion.api.auth import Caller
from legion.api.runtime.jobs import FOLLOW_INTERVAL_S, PACKAGINGS, TRAININGS, JobKind, LocalJobs
from legion.api.storage import ResourceStore, StoredResource
from legion.core.errors import NotFoundError
from legion.core.resources import KINDS

REPLICA_CHUNK_BYTES: Final = 1 << 20
"""The most read of one replica's log per look (a long log is sent in pieces)."""


@runtime_checkable
class ReplicaLogs(Protocol):
    """A runtime that keeps its replicas' output in files (the local runtime)."""

    def replica_logs(self, deployment_id: str) -> list[tuple[str, Path, int]]: ...


def logs_router(
    store: ResourceStore, jobs: LocalJobs | None, caller: Any, replicas: ReplicaLogs | None = None
) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["logs"])

    @router.get(f"{KINDS['ModelDeployment'].path}/{{resource_id}}/log", summary="The logs of a deployment's replicas")
    async def deployment_log(
        resource_id: str, follow: bool = False, who: Caller = Depends(caller)
    ) -> StreamingResponse:
        who.can_read()
        await asyncio.to_thread(store.get, "ModelDeployment", resource_id)
        if replicas is None:
            raise NotFoundError(f"ModelDeployment {resource_id!r} has no logs: this runtime keeps none")
        return StreamingResponse(_replica_text(replicas, resource_id, follow), media_type="text/plain; charset=utf-8")

    job_kinds: dict[str, JobKind] = {"ModelTraining": TRAININGS, "ModelPackaging": PACKAGINGS}
    for name, job_kind in job_kinds.items():
        info = KINDS[name]

        def route(info_name: str = name, kind: JobKind = job_kind) -> Any:
            async def log(resource_id: str, follow: bool = False, who: Caller = Depends(caller)) -> StreamingResponse:
                who.can_read()
                stored = await asyncio.to_thread(store.get, info_name, resource_id)  # 404 for an unknown id
                if jobs is None:
                    raise NotFoundError(f"{info_name} {resource_id!r} has no log: this API runs no jobs")
                if await jobs.observe(resource_id, kind) is None:
                    raise NotFoundError(_no_log(stored))
                lines = jobs.follow_log(resource_id, follow=follow, kind=kind)
                return StreamingResponse(_text(lines), media_type="text/plain; charset=utf-8")

            return log

        router.add_api_route(
            f"{info.path}/{{resource_id}}/log", route(), methods=["GET"], summary=f"The log of a {name}"
        )
    return router


def _no_log(stored: StoredResource) -> str:
    """Why a job has no log: its run of the current spec has not started, or it failed before it could start
    (its reason then is the cause to read; saying "not started yet" would send the user waiting), or it is no job
    (a ``docker-rest`` packaging, which the API builds itself)."""
    status = stored.status
    what = f"{stored.kind} {stored.id!r}"
    current = status.get("observedGeneration") == stored.generation
    if current and status.get("state") == "failed":
        return f"{what} failed before it started, so it has no log: {status.get('reason') or 'no reason given'}"
    if current and status.get("state") in {"running", "succeeded"}:  # no job: a docker-rest image the API builds
        return f"{what} is built by the API itself, not run as a job, so it has no log; its status says how it went"
    return f"{what} has not started yet: no log"


async def _replica_text(replicas: ReplicaLogs, deployment_id: str, follow: bool) -> AsyncIterator[bytes]:
    """Each replica's lines of this run, prefixed with its label; with ``follow``, new lines as they come (until the
    client goes away)."""
    offsets: dict[Path, int] = {}
    pending: dict[Path, bytes] = {}
    while True:
        for label, path, start in replicas.replica_logs(deployment_id):
            position = max(offsets.get(path, start), start)
            try:
                with path.open("rb") as file:
                    file.seek(position)
                    chunk = file.read(REPLICA_CHUNK_BYTES)
            except FileNotFoundError:
                continue
            offsets[path] = position + len(chunk)
            *lines, pending[path] = (pending.get(path, b"") + chunk).split(b"\n")
            if lines:
                yield b"".join(f"[{label}] ".encode() + line + b"\n" for line in lines)
        if not follow:
            return
        await asyncio.sleep(FOLLOW_INTERVAL_S)


async def _text(lines: AsyncIterator[str]) -> AsyncIterator[bytes]:
    async for line in lines:
        yield (line + "\n").encode()
