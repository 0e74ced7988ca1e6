"""``ImageBuilds``: the ``docker-rest`` packagings, an OCI image of a model built by the API and pushed to a registry.

A PackagingIntegration whose ``entrypoint`` is ``legion model image`` (Legion ships it as ``docker-rest``) is not
run as a sandboxed job: the API builds the image itself with ``legion.images``, in a worker thread, because the
build needs the container tools and their storage, which the sandbox keeps jobs away from. No user code runs on
this machine meanwhile: the build context holds the model's files and Legion's own Containerfile, the manifest is
only read, and pip runs inside the podman build, isolated there.

What a packaging asks for becomes one ``ImagePlan`` (``plan_image``): the ``imageName`` template with ``{name}``
and ``{version}`` filled from the model's manifest, under the registry of the ``docker-push`` target's ``docker``
Connection (``uri`` ``host[:port][/namespace]``; ``http://`` in front for a registry spoken to in plain HTTP, such
as one on loopback), with that connection's user and password, and an optional ``baseImage``. A bad plan is an
``InvalidInputError`` naming the field, which the controller turns into ``failed`` with that reason.

    plan = plan_image(spec, artifact, lookup_connection)       # InvalidInputError names the bad field
    pushed = builds.poll(f"{stored.id}@{stored.generation}", plan)   # None while it builds and pushes

The password reaches podman in an auth file only (``legion.images.registry``), and any tool output in a reason is
redacted of it; the plan's ``repr`` hides it (``Credentials``).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from legion.core.errors import InvalidInputError, LegionError, NotFoundError
from legion.core.resources import Connection, ModelPackagingSpec, PackagingResult
from legion.images import (
    ContainerTools,
    Credentials,
    ImageRequest,
    ImageSettings,
    PushedImage,
    PushTarget,
    build_model_image,
    push_image,
)
from legion.images.builder import validate_reference
from legion.model.manifest import Manifest

log = logging.getLogger(__name__)

IMAGE_ENTRYPOINT: Final = "legion model image"
"""The entrypoint of an integration that the API runs itself as an image build (``docker-rest``)."""
PUSH_TARGET: Final = "docker-push"
BUILDING: Final = "building the model's image and pushing it; the first build also makes the base image"
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
PLACEHOLDERS: Final = ("name", "version")


@dataclass(frozen=True)
class ImagePlan:
    """One image packaging: what to build and where to push it."""

    request: ImageRequest
    target: PushTarget
    connection: str
    """The ``docker-push`` target's connection (named in reasons)."""


def render_image_name(template: str, manifest: Manifest) -> str:
    """``template`` with ``{name}`` and ``{version}`` replaced by the model's; any other ``{...}`` is an error."""
    values = {"name": manifest.name, "version": manifest.version}
    unknown = [m.group(1) for m in _PLACEHOLDER.finditer(template) if m.group(1) not in values]
    if unknown or template.count("{") != len(_PLACEHOLDER.findall(template)):
        raise InvalidInputError.for_fields(
            {"spec.arguments.imageName": f"{template!r} may only hold the placeholders {{name}} and {{version}}"}
        )
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def plan_image(spec: ModelPackagingSpec, artifact: Path, lookup: Callable[[str], Connection | None]) -> ImagePlan:
    """The plan of a ``docker-rest`` packaging of the model in ``artifact``; ``lookup`` finds a Connection by id."""
    template = spec.arguments.get("imageName")
    if not isinstance(template, str) or not template:
        raise InvalidInputError.for_fields({"spec.arguments.imageName": "required: e.g. 'legion/{name}:{version}'"})
    targets = [t for t in spec.targets if t.name == PUSH_TARGET]
    if not targets:
        raise InvalidInputError.for_fields({"spec.targets": f"a {PUSH_TARGET!r} target names the registry"})
    name = targets[0].connection_name
    connection = lookup(name)
    if connection is None:
        raise NotFoundError(f"the {PUSH_TARGET} target's Connection {name!r} does not exist")
    if connection.spec.type != "docker":
        wrong = f"the {PUSH_TARGET} target's Connection {name!r} is of type {connection.spec.type}, not docker"
        raise InvalidInputError.for_fields({"spec.targets": wrong})
    manifest = Manifest.read(artifact)
    uri = connection.spec.uri.strip().rstrip("/")
    plain_http = uri.startswith("http://")
    location = uri.removeprefix("http://").removeprefix("https://")
    reference = f"{location}/{render_image_name(template, manifest)}"
    try:
        validate_reference(reference)
    except InvalidInputError as exc:
        raise InvalidInputError.for_fields(
            {"spec.arguments.imageName": f"{exc.detail} (the connection {name!r} and imageName {template!r})"}
        ) from None
    user, password = connection.spec.username, connection.spec.password
    credentials = Credentials(user, password) if user and password else None
    base = spec.arguments.get("baseImage")
    request = ImageRequest(artifact, reference, base if isinstance(base, str) and base else None)
    return ImagePlan(request, PushTarget(reference, credentials, plain_http=plain_http), name)


def image_results(pushed: PushedImage) -> list[PackagingResult]:
    """What a succeeded image packaging names: the image by digest (what a deployment should run) and its tag."""
    return [PackagingResult(name="image", value=pushed.pinned), PackagingResult(name="tag", value=pushed.reference)]


def failure_reason(plan: ImagePlan, exc: LegionError) -> str:
    """A reason that names the registry and the connection when pushing failed (the detail is already redacted)."""
    registry = plan.target.registry
    if exc.status == 401:
        return f"the registry {registry} refused the credentials of connection {plan.connection!r}: {exc.detail}"
    return exc.detail


class ImageBuilds:
    """Background builds and pushes of packagings' images, one per owner (a packaging's id and generation)."""

    def __init__(self, settings: ImageSettings) -> None:
        self.settings = settings
        self._tasks: dict[str, asyncio.Task[PushedImage]] = {}

    def poll(self, owner: str, plan: ImagePlan) -> PushedImage | None:
        """The pushed image once it is pushed; None while it is being built (the first call starts it). Raises what
        building or pushing raised (``LegionError``s: ``ImageBuildError``, ``UnauthorizedError``, ...)."""
        task = self._tasks.get(owner)
        if task is None:
            self._tasks[owner] = asyncio.get_running_loop().create_task(asyncio.to_thread(self._build, plan))
            return None
        if not task.done():
            return None
        del self._tasks[owner]
        return task.result()

    def forget(self, prefix: str) -> None:
        """Drop what is known of the owners starting with ``prefix`` (a build under way still finishes)."""
        for owner in [o for o in self._tasks if o.startswith(prefix)]:
            self._tasks.pop(owner).add_done_callback(_swallow)

    def _build(self, plan: ImagePlan) -> PushedImage:
        tools = ContainerTools(self.settings)
        log.info("building the image %s from %s", plan.request.tag, plan.request.model_path)
        built = build_model_image(tools, self.settings, plan.request)
        pushed = push_image(tools, built.reference, plan.target)
        log.info("pushed %s", pushed.pinned)
        return pushed


def _swallow(task: asyncio.Task[PushedImage]) -> None:
    """Nobody waits for a forgotten build any more: read its outcome, so that asyncio does not report it."""
    if not task.cancelled() and task.exception() is not None:
        log.warning("a forgotten image build failed: %s", task.exception())
