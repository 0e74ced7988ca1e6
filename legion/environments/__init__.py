"""A model's own environment: what it needs installed, and that made as a virtualenv with uv, cached.

MLflow's two answers to a model trained with other package versions than the server's are a warning (Legion's
``--env-manager local``, the default) and the model's own virtualenv (``--env-manager virtualenv``). This package is
the second::

    needs = read_needs(model_path)                        # the model's Python and requirements, nothing loaded
    env = ensure_environment(needs, EnvironmentSettings())
    os.execv(env.python, [env.python, "-m", "legion", "serve", model_path])

It owns reading a model's needs (``needs``), the requirement set of Legion's serving runtime and Legion's source
that every model environment installs (``serving``, shared with the OCI image of ``legion.images``), and the
virtualenv cache (``virtualenv``, with its ``settings``). It imports ``legion.core`` and ``legion.model`` only;
running a server in the environment is its callers' (the ``legion serve`` command, the local runtime).
"""

from legion.environments.needs import ModelNeeds, read_needs
from legion.environments.serving import LegionSource
from legion.environments.settings import EnvironmentSettings
from legion.environments.virtualenv import Environment, RunningEnvironment, ensure_environment, running_environment

__all__ = [
    "Environment",
    "EnvironmentSettings",
    "LegionSource",
    "ModelNeeds",
    "RunningEnvironment",
    "ensure_environment",
    "read_needs",
    "running_environment",
]
