"""One error tree for all of Legion.

Every error carries the HTTP ``status`` a service answers with and the ``exit_code`` the CLI exits with, so each
surface renders errors in exactly one place (the model APIs as ``{"error": ...}``, the CLI as ``Error: ...``)::

    LegionError (500, exit 1)
    ├── InvalidInputError (422, exit 2)      the caller sent something we cannot accept
    │   ├── BadRequestError (400)            malformed body, wrong content type, missing header
    │   ├── PayloadTooLargeError (413)       body over the configured limit
    │   └── HeadersTooLargeError (431)       request head (request line and headers) over the configured limit
    ├── NotFoundError (404, exit 3)          no such model, endpoint, resource or path
    ├── ConflictError (409, exit 4)          the resource exists already or changed under us
    ├── UnauthorizedError (401, exit 5)      no, bad, expired or revoked credentials
    ├── ForbiddenError (403, exit 6)         valid credentials, not allowed to do this
    ├── UnavailableError (503, exit 7)       not ready yet (model loading, draining); try again
    │   ├── BadGatewayError (502)            an upstream broke off or answered garbage (the gateway)
    │   └── GatewayTimeoutError (504)        an upstream did not answer in time (the gateway)
    ├── ModelFormatError (422, exit 8)       a model directory that cannot be loaded as it is
    ├── ModelError (500, exit 9)             the model's own code raised while predicting
    ├── ImageBuildError (500, exit 10)       a container tool failed to build, push or export an image
    └── EnvironmentBuildError (500, exit 11) uv failed to make a model's virtualenv

Foreign exceptions are translated at the boundary where they are caught (``raise ... from exc``); nothing
below a surface formats a message for a user twice. A client turns a status back into its error with
``error_for_status`` (the typed client of the management API does).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Final


class LegionError(Exception):
    """Base of every error Legion raises on purpose.

    >>> raise NotFoundError("no endpoint 'foo'; valid endpoints: default")
    """

    status: int = 500
    exit_code: int = 1
    title: str = "Internal error"

    def __init__(self, detail: str, *, fields: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.fields: dict[str, str] = dict(fields or {})

    def to_dict(self) -> dict[str, object]:
        """The body a model API answers with: ``{"error": detail}`` plus the bad fields when known."""
        body: dict[str, object] = {"error": self.detail}
        if self.fields:
            body["fields"] = self.fields
        return body


class InvalidInputError(LegionError):
    status = 422
    exit_code = 2
    title = "Invalid input"

    @classmethod
    def for_fields(cls, problems: Mapping[str, str], *, prefix: str = "invalid input") -> InvalidInputError:
        """One error naming every bad field, e.g. ``invalid input: age: 'abc' is not an integer``."""
        listed = "; ".join(f"{name}: {why}" for name, why in problems.items())
        return cls(f"{prefix}: {listed}", fields=problems)


class BadRequestError(InvalidInputError):
    status = 400
    title = "Bad request"


class PayloadTooLargeError(InvalidInputError):
    status = 413
    title = "Payload too large"


class HeadersTooLargeError(InvalidInputError):
    """Answered by ``legion.hosting`` before any app runs: the head is refused unread past the limit."""

    status = 431
    title = "Request header fields too large"


class NotFoundError(LegionError):
    status = 404
    exit_code = 3
    title = "Not found"


class ConflictError(LegionError):
    status = 409
    exit_code = 4
    title = "Conflict"


class UnauthorizedError(LegionError):
    status = 401
    exit_code = 5
    title = "Unauthorized"


class ForbiddenError(LegionError):
    status = 403
    exit_code = 6
    title = "Forbidden"


class UnavailableError(LegionError):
    status = 503
    exit_code = 7
    title = "Unavailable"


class BadGatewayError(UnavailableError):
    status = 502
    title = "Bad gateway"


class GatewayTimeoutError(UnavailableError):
    status = 504
    title = "Gateway timeout"


class ModelFormatError(LegionError):
    """A model directory, zip or manifest that cannot be loaded as it is; ``problems`` lists every reason."""

    status = 422
    exit_code = 8
    title = "Model cannot be loaded"

    def __init__(self, detail: str, *, problems: Sequence[str] = ()) -> None:
        self.problems = list(problems)
        if self.problems:
            detail = detail + ":\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(detail)


class ModelError(LegionError):
    """The model's own code raised; the message names the exception, never a traceback."""

    status = 500
    exit_code = 9
    title = "Model error"


class ImageBuildError(LegionError):
    """A container tool (podman, skopeo, debootstrap) failed; the detail carries the tool's last lines."""

    status = 500
    exit_code = 10
    title = "Image build failed"


class EnvironmentBuildError(LegionError):
    """uv failed to make a model's virtualenv (``legion.environments``); the detail carries uv's last lines."""

    status = 500
    exit_code = 11
    title = "Environment build failed"


def _by_status() -> dict[int, type[LegionError]]:
    """Each status of the tree above to its class: breadth first, in the order the classes are written, the first
    class with a status has it (422 is ``InvalidInputError``, not ``ModelFormatError``; 500 is ``LegionError``).
    Only this module's classes: a service's own subclasses do not change what a status means to a client."""
    table: dict[int, type[LegionError]] = {}
    level: list[type[LegionError]] = [LegionError]
    while level:
        for error in level:
            table.setdefault(error.status, error)
        level = [sub for error in level for sub in error.__subclasses__() if sub.__module__ == __name__]
    return table


BY_STATUS: Final[Mapping[int, type[LegionError]]] = MappingProxyType(_by_status())


def error_for_status(status: int) -> type[LegionError]:
    """The error an HTTP ``status`` stands for (``BY_STATUS``); ``LegionError`` for one the tree does not name.

    >>> error_for_status(504)
    <class 'legion.core.errors.GatewayTimeoutError'>
    """
    return BY_STATUS.get(status, LegionError)
