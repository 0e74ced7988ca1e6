"""``read_document``: the JSON body of a request, read once for every router that takes one.

The size limit is checked against ``Content-Length`` first and again while the body streams in, so an oversized
body is refused (413) before it is held in memory; a body that is not JSON is a 400 that says why.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from legion.core.errors import BadRequestError, PayloadTooLargeError


async def read_document(request: Request, limit: int) -> Any:
    """The JSON body, refusing an oversized one (413) or one that is not JSON (400)."""
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind and kind != "application/json":
        raise BadRequestError(f"content type {kind!r} is not supported; send application/json")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"request body of {declared} bytes is over the limit of {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLargeError(f"request body is over the limit of {limit} bytes")
    if not body.strip():
        raise BadRequestError("the request body is empty; send the resource as JSON")
    try:
        return json.loads(body)
    except ValueError as exc:
        raise BadRequestError(f"the request body is not valid JSON: {exc}") from None
