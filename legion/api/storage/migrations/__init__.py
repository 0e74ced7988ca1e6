"""Alembic scripts of the management API database; run them with ``legion.api.storage.migrate``.

A package (like ``versions/``) so that the scripts are installed with Legion; Alembic skips ``__init__.py``.
"""
