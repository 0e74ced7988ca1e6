"""The Containerfile of a model image, rendered from values (no I/O here, so it is tested as text).

Layers, from the most to the least stable, so that the build cache does the work::

    FROM <base>                      Debian + Python, built by ``legion.images.base`` (or a given baseImage)
    RUN  useradd, python3 -m venv    the non-root user and an empty venv
    COPY requirements/               the model's pins + Legion's own requirements (constraints.txt of this Legion)
    RUN  pip install -r ...          the heavy layer: rebuilt only when those requirements change (the
                                     packages' test suites are removed in the same step)
    COPY legion-src/ + RUN pip       Legion itself, from this checkout's source (no dependencies): small
    ENV, USER, EXPOSE, STOPSIGNAL, ENTRYPOINT
    COPY model/ /model/              the model as the last layer: a new model version rebuilds only this
    LABEL ...                        OCI and Legion labels (metadata only)

pip reaches the package index only through the CA bundle mounted as the build secret ``pipca``
(``RUN --mount=type=secret``), which no layer keeps; pip keeps no cache in the image either.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

VENV: Final = "/opt/legion/venv"
MODEL_DIR: Final = "/model"
PORT: Final = 5000
USER_ID: Final = 10001
USER_NAME: Final = "legion"
CA_SECRET_ID: Final = "pipca"  # noqa: S105  # the name of a build secret, not a secret
REQUIREMENTS_DIR: Final = "requirements"
"""Build-context directory with ``requirements.txt`` and ``constraints.txt``."""
SOURCE_DIR: Final = "legion-src"
"""Build-context directory with Legion's source (pyproject.toml, README.md, legion/)."""
MODEL_CONTEXT_DIR: Final = "model"
"""Build-context directory with the model."""


@dataclass(frozen=True)
class ContainerfileSpec:
    """Everything the Containerfile depends on."""

    base_image: str
    labels: Mapping[str, str] = field(default_factory=dict)
    ca_secret: bool = True
    """Mount the CA bundle secret for pip (False when this machine has no CA bundle to give)."""


def render(spec: ContainerfileSpec) -> str:
    """The Containerfile text for ``spec``."""
    secret = f"--mount=type=secret,id={CA_SECRET_ID},target=/run/secrets/{CA_SECRET_ID} " if spec.ca_secret else ""
    pip_env = f"PIP_CERT=/run/secrets/{CA_SECRET_ID} " if spec.ca_secret else ""
    pip = f"{pip_env}PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 {VENV}/bin/pip install"
    everywhere = "0.0.0.0"  # noqa: S104  # inside the container; podman publishes the port where it is told
    entrypoint = json.dumps([f"{VENV}/bin/legion", "serve", MODEL_DIR, "--host", everywhere, "--port", str(PORT)])
    lines = [
        "# Written by Legion (legion.images.containerfile).",
        f"FROM {spec.base_image}",
        f"RUN useradd --uid {USER_ID} --user-group --create-home --shell /usr/sbin/nologin {USER_NAME} \\",
        f"    && python3 -m venv {VENV}",
        f"COPY {REQUIREMENTS_DIR}/ /opt/legion/requirements/",
        f"RUN {secret}{pip} --requirement /opt/legion/requirements/requirements.txt \\",
        "    --constraint /opt/legion/requirements/constraints.txt \\",
        # the packages' own test suites (a fifth of a scientific stack) are never run in a model server
        f"    && find {VENV}/lib -depth -type d -path '*/site-packages/*/tests' -exec rm -rf {{}} +",
        f"COPY {SOURCE_DIR}/ /opt/legion/src/",
        f"RUN {secret}{pip} --no-deps /opt/legion/src && rm -rf /opt/legion/src/build /opt/legion/src/*.egg-info",
        f"ENV PATH={VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\",
        "    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1",
        f"WORKDIR /home/{USER_NAME}",
        f"USER {USER_ID}:{USER_ID}",
        f"EXPOSE {PORT}",
        "STOPSIGNAL SIGTERM",
        f"ENTRYPOINT {entrypoint}",
        f"COPY {MODEL_CONTEXT_DIR}/ {MODEL_DIR}/",
    ]
    if spec.labels:  # one instruction: each one is a build step of its own
        pairs = [f"{_quote(key)}={_quote(value)}" for key, value in sorted(spec.labels.items())]
        lines.append("LABEL " + " \\\n      ".join(pairs))
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    """A Containerfile double-quoted word: backslashes and quotes escaped, line breaks flattened."""
    flat = " ".join(text.splitlines())
    return '"' + flat.replace("\\", "\\\\").replace('"', '\\"') + '"'
