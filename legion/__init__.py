"""Legion: take a machine-learning model from training to a measured, authenticated production API.

Sub-packages, from the bottom up (import-linter keeps the direction):

- ``legion.core``: the error tree, settings base and wire vocabulary; imports nothing else of Legion.
- ``legion.model``: the model SDK (``legion.model.init``/``export_df``/...) and the on-disk model format.
- ``legion.hosting``: how every service is hosted (uvicorn, the port, worker processes, ``/metrics`` text).
- ``legion.serving``: the model server that loads one model and speaks every model API.
- ``legion.cli``: the ``legion`` / ``legionctl`` command.
"""

__version__ = "0.1.0"
