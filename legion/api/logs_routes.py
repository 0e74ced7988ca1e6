"""``GET /api/v1/<training|packaging path>/{id}/log[?follow=true]``: a job's log as plain text.

Without ``follow`` the log so far; with it, the response streams new lines as the job writes them and ends when the
job does (``legion logs -f``). A job that has not started yet has no log (404 that says so).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse

from legion.api.auth import Caller
from legion.api.runtime.jobs import PACKAGINGS, TRAININGS, JobKind, LocalJobs
from legion.api.storage import ResourceStore
from legion.core.errors import NotFoundError
from legion.core.resources import KINDS


def logs_router(store: ResourceStore, jobs: LocalJobs | None, caller: Any) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["logs"])
    job_kinds: dict[str, JobKind] = {"ModelTraining": TRAININGS, "ModelPackaging": PACKAGINGS}
    for name, job_kind in job_kinds.items():
        info = KINDS[name]

        def route(info_name: str = name, kind: JobKind = job_kind) -> Any:
            async def log(resource_id: str, follow: bool = False, who: Caller = Depends(caller)) -> StreamingResponse:
                who.can_read()
                await asyncio.to_thread(store.get, info_name, resource_id)  # 404 for an unknown id
                if jobs is None:
                    raise NotFoundError(f"{info_name} {resource_id!r} has no log: this API runs no jobs")
                if await jobs.observe(resource_id, kind) is None:
                    raise NotFoundError(f"{info_name} {resource_id!r} has not started yet: no log")
                lines = jobs.follow_log(resource_id, follow=follow, kind=kind)
                return StreamingResponse(_text(lines), media_type="text/plain; charset=utf-8")

            return log

        router.add_api_route(
            f"{info.path}/{{resource_id}}/log", route(), methods=["GET"], summary=f"The log of a {name}"
        )
    return router


async def _text(lines: AsyncIterator[str]) -> AsyncIterator[bytes]:
    async for line in lines:
        yield (line + "\n").encode()
