"""The three record kinds, with Legion's tags: ``request_response``, ``response_body`` and ``feedback``.

A record is a flat JSON object; ``tag``, ``model_name``, ``model_version`` and ``time`` place it in a sink (Legion's
file layout is built from them). Headers that carry credentials never enter a record.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

REQUEST_RESPONSE: Final = "request_response"
RESPONSE_BODY: Final = "response_body"
FEEDBACK: Final = "feedback"
TAGS: Final = (REQUEST_RESPONSE, RESPONSE_BODY, FEEDBACK)
SECRET_HEADERS: Final = frozenset({"authorization", "cookie", "set-cookie", "proxy-authorization", "x-api-key"})


def public_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers without the ones that carry credentials (names lower-cased)."""
    return {k.lower(): v for k, v in headers.items() if k.lower() not in SECRET_HEADERS}


def now() -> str:
    """A record's ``time``: now, in UTC, ISO 8601."""
    return datetime.now(UTC).isoformat()


def request_response(
    *,
    request_id: str,
    model_name: str,
    model_version: str,
    endpoint: str,
    method: str,
    path: str,
    headers: Mapping[str, str],
    request_body: Any,
    status: int,
    latency_s: float,
    deployment: str | None = None,
    time: str | None = None,
) -> dict[str, Any]:
    return {
        "tag": REQUEST_RESPONSE,
        "request_id": request_id,
        "model_name": model_name,
        "model_version": model_version,
        "model_endpoint": endpoint,
        "request_http_method": method,
        "request_uri": path,
        "request_http_headers": public_headers(headers),
        "request_content": request_body,
        "response_status": status,
        "response_duration_s": latency_s,
        "deployment": deployment,
        "time": time or now(),
    }


def response_body(
    *,
    request_id: str,
    model_name: str,
    model_version: str,
    body: Any,
    deployment: str | None = None,
    time: str | None = None,
) -> dict[str, Any]:
    return {
        "tag": RESPONSE_BODY,
        "request_id": request_id,
        "model_name": model_name,
        "model_version": model_version,
        "response_content": body,
        "deployment": deployment,
        "time": time or now(),
    }


def feedback(
    *,
    request_id: str,
    model_name: str,
    model_version: str,
    payload: Any,
    deployment: str | None = None,
    time: str | None = None,
) -> dict[str, Any]:
    return {
        "tag": FEEDBACK,
        "request_id": request_id,
        "model_name": model_name,
        "model_version": model_version,
        "payload": payload,
        "deployment": deployment,
        "time": time or now(),
    }
