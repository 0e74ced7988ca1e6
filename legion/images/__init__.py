"""OCI images of Legion models, built on this machine with daemonless tools (podman, buildah, skopeo).

What ``legion model image`` (and later the ``docker-rest`` packaging integration) runs::

    settings = ImageSettings()                        # LEGION_IMAGES_* ; private storage in tests
    tools = ContainerTools(settings)
    built = build_model_image(tools, settings, ImageRequest(model_path, "localhost/census:1.0"))
    pushed = push_image(tools, built.reference, PushTarget("127.0.0.1:5000/census:1.0", credentials))

This package owns the Debian base image (``base``: debootstrap, cached by a hash of its inputs, never pulled), the
Containerfile of a model image (``containerfile``: pure text from values), the build context and the build
(``builder``), pushing and exporting (``registry``), and the one adapter that runs the container tools and turns
their failures into ``legion.core`` errors (``tools``). What an image installs (the model's requirements, Legion's
serving runtime from this checkout) is ``legion.environments.serving``'s, shared with the model's virtualenv. It
imports ``legion.core``, ``legion.environments`` and ``legion.model`` only: no service, no HTTP framework. Running
containers (the container runtime) does not belong here.
"""

from legion.images.builder import BuiltImage, ImageRequest, build_model_image
from legion.images.registry import Credentials, PushedImage, PushTarget, export_archive, push_image
from legion.images.settings import ImageSettings
from legion.images.tools import ContainerTools

__all__ = [
    "BuiltImage",
    "ContainerTools",
    "Credentials",
    "ImageRequest",
    "ImageSettings",
    "PushTarget",
    "PushedImage",
    "build_model_image",
    "export_archive",
    "push_image",
]
