"""The thin core every other part of Legion stands on.

It owns the error tree (``errors``), the settings base (``settings``) and the column-type vocabulary
(``dtypes``). It imports nothing else of Legion and no web framework, so any component, the SDK inside a
training job included, can use it without pulling in a server.
"""
