"""``legion model image MODEL_PATH --tag REF [--push]``: the model's OCI image, built on this machine.

A data scientist's way to the same image the ``docker-rest`` packaging makes, without the platform: it builds into
the local container storage (``podman images`` lists it; ``LEGION_IMAGES_STORAGE_DIR`` picks a private one),
optionally pushes it and writes an OCI archive, and prints the reference (``REF@sha256:...`` once pushed).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from legion.core.errors import InvalidInputError


@click.command("image")
@click.argument("model_path", type=click.Path(exists=True, path_type=Path))
@click.option("--tag", required=True, help="Image reference, e.g. registry.example:5000/census:1.0.")
@click.option("--push", is_flag=True, help="Push the image to the registry its tag names.")
@click.option("--base-image", default=None, help="Build on this image instead of Legion's Debian base.")
@click.option("--username", default=None, envvar="LEGION_REGISTRY_USERNAME", help="Registry user for --push.")
@click.option("--password-stdin", is_flag=True, help="Read the registry password from standard input.")
@click.option("--plain-http", is_flag=True, help="Speak HTTP, not HTTPS, to the tag's registry (one on loopback).")
@click.option("--archive", type=click.Path(path_type=Path), default=None, help="Also write an OCI archive here.")
def image(
    model_path: Path,
    tag: str,
    push: bool,
    base_image: str | None,
    username: str | None,
    password_stdin: bool,
    plain_http: bool,
    archive: Path | None,
) -> None:
    """Build the OCI image of the Legion model at MODEL_PATH, serving it with `legion serve` on port 5000.

    The password for --push comes from --password-stdin or LEGION_REGISTRY_PASSWORD, never from an option.
    """
    from legion.images import (  # noqa: PLC0415  # only this command builds images
        ContainerTools,
        Credentials,
        ImageRequest,
        ImageSettings,
        PushTarget,
        build_model_image,
        export_archive,
        push_image,
    )
    from legion.images.builder import validate_reference  # noqa: PLC0415

    validate_reference(tag)
    password = sys.stdin.read().rstrip("\n") if password_stdin else os.environ.get("LEGION_REGISTRY_PASSWORD")
    if (username is None) != (password is None):
        raise InvalidInputError("give both a registry user (--username) and a password, or neither")
    if password is not None and not push:
        raise InvalidInputError("registry credentials are only used with --push")
    registry = tag.split("/", 1)[0]
    settings = ImageSettings()
    if plain_http:
        settings = settings.model_copy(update={"insecure_registries": (*settings.insecure_registries, registry)})
    tools = ContainerTools(settings)
    click.echo(f"building {tag} from {model_path} (the first build also makes the base image)", err=True)
    built = build_model_image(tools, settings, ImageRequest(model_path, tag, base_image))
    if archive is not None:
        export_archive(tools, built.reference, archive)
        click.echo(f"wrote {archive}", err=True)
    if push:
        credentials = Credentials(username, password) if username is not None and password is not None else None
        pushed = push_image(tools, built.reference, PushTarget(tag, credentials))
        click.echo(pushed.pinned)
    else:
        click.echo(built.reference)
