"""Revisions of the management API schema, oldest first (``0001_initial``, ``0002_...``)."""
