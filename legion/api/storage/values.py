"""What every store shares: ``Page`` (one page of a listing and its total) and the checks of arguments.

The checks run before a transaction starts, so that a bad argument is an ``InvalidInputError`` naming the field
on SQLite and PostgreSQL alike (SQLite would store a too-long id that PostgreSQL refuses).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from legion.core.errors import InvalidInputError

T = TypeVar("T")

MAX_PAGE_SIZE = 1000
MAX_PAGE = 10**9
"""The last page number a listing takes: ``page * size`` stays far inside a 64-bit integer (SQLite, PostgreSQL)."""
LABEL_KEY = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._/-]{0,251}[A-Za-z0-9])?")


@dataclass(frozen=True)
class Page(Generic[T]):
    """``items`` of page number ``page`` (from 0) of ``size`` items each, out of ``total`` matches."""

    items: tuple[T, ...]
    total: int
    page: int
    size: int

    @property
    def pages(self) -> int:
        """How many pages the ``total`` makes."""
        return -(-self.total // self.size)


def check_page(page: int, size: int) -> None:
    """Refuse a negative page or a size outside 1..``MAX_PAGE_SIZE``, naming the field."""
    problems: dict[str, str] = {}
    if not 0 <= page <= MAX_PAGE:
        problems["page"] = f"{page} is not between 0 and {MAX_PAGE}; pages count from 0"
    if not 1 <= size <= MAX_PAGE_SIZE:
        problems["size"] = f"{size} is not between 1 and {MAX_PAGE_SIZE}"
    if problems:
        raise InvalidInputError.for_fields(problems, prefix="invalid paging")


def check_names(prefix: str, **names: tuple[str, int]) -> None:
    """Refuse empty or too long names, e.g. ``check_names("invalid key", kind=(kind, 64), id=(id, 253))``."""
    problems: dict[str, str] = {}
    for field, (value, limit) in names.items():
        if not isinstance(value, str) or not value:
            problems[field] = "must be a non-empty string"
        elif len(value) > limit:
            problems[field] = f"is {len(value)} characters long; the limit is {limit}"
    if problems:
        raise InvalidInputError.for_fields(problems, prefix=prefix)


def json_object(value: Mapping[str, Any], field: str) -> dict[str, Any]:
    """A deep copy of ``value`` as the database will give it back (lists for tuples, no NaN), or a 422."""
    if not isinstance(value, Mapping):
        raise InvalidInputError.for_fields({field: f"must be an object, not {type(value).__name__}"})
    try:
        copied: dict[str, Any] = json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InvalidInputError.for_fields({field: f"is not JSON: {exc}"}) from exc
    return copied


def check_labels(labels: Mapping[str, str] | None) -> dict[str, str]:
    """A copy of ``labels``: keys like Kubernetes label keys (``app.kubernetes.io/name``), values strings."""
    if labels is None:
        return {}
    if not isinstance(labels, Mapping):
        raise InvalidInputError.for_fields({"labels": f"must be an object, not {type(labels).__name__}"})
    problems: dict[str, str] = {}
    for key, value in labels.items():
        if not isinstance(key, str) or not LABEL_KEY.fullmatch(key):
            problems[f"labels.{key}"] = "a key is letters, digits and ._/- (253 at most), alphanumeric at both ends"
        elif not isinstance(value, str):
            problems[f"labels.{key}"] = f"the value must be a string, not {type(value).__name__}"
    if problems:
        raise InvalidInputError.for_fields(problems)
    return dict(labels)


def utc_now() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime, field: str) -> datetime:
    """``value`` if it carries a time zone; a naive time is refused rather than guessed."""
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InvalidInputError.for_fields({field: "must be a timezone-aware datetime"})
    return value
