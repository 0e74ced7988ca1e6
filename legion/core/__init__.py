"""The thin core every other part of Legion stands on.

It owns the error tree (``errors``), the settings base (``settings``), the column-type vocabulary (``dtypes``),
the platform's resource kinds (``resources``), the routing snapshot that the API
serves and the gateway routes by (``routing``), tokens (``tokens``), request ids (``ids``), sockets (``net``) and
log set-up (``logs``).
It imports nothing else of Legion and no web framework, so any component, the SDK inside a training job
included, can use it without pulling in a server.
"""
