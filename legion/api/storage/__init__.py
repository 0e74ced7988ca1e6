"""The storage of the management API: resources, the model registry and revoked tokens, in SQLite or PostgreSQL.

- ``database``: engines (``create_engine``, ``sqlite_url``), ``transaction`` (the one place where SQLAlchemy
  and driver errors become Legion errors) and ``migrate`` (Alembic, scripts in ``migrations/``).
- ``tables``: the typed declarative models; only the stores below use them.
- ``resources.ResourceStore``: every resource kind, with optimistic concurrency, a change log for the reconcile
  loop and secret fields encrypted at rest (``crypto.Cipher``).
- ``registry.ModelRegistry`` and ``tokens.TokenRevocations``.
- ``typed.stored_resource``: a stored row read back as its typed ``legion.core.resources`` model (the stores
  themselves keep JSON and know no schema).

Stores hand out frozen dataclasses, never ORM rows, and raise only ``legion.core.errors``. Validating a spec
against its kind's schema, masking secrets in responses and HTTP belong to the API above, not here.

    engine = create_engine(sqlite_url(data_dir))
    migrate(engine)
    store = ResourceStore(engine, Cipher(keys), secret_fields={"Connection": ["password", "keySecret"]})
"""

from legion.api.storage.crypto import Cipher, SecretDecryptionError
from legion.api.storage.database import alembic_config, create_engine, migrate, sqlite_url, transaction
from legion.api.storage.registry import ModelRegistry, ModelVersion
from legion.api.storage.resources import Change, ChangeAction, ResourceStore, StoredResource
from legion.api.storage.tokens import TokenRevocations
from legion.api.storage.values import MAX_PAGE_SIZE, Page

__all__ = [
    "MAX_PAGE_SIZE",
    "Change",
    "ChangeAction",
    "Cipher",
    "ModelRegistry",
    "ModelVersion",
    "Page",
    "ResourceStore",
    "SecretDecryptionError",
    "StoredResource",
    "TokenRevocations",
    "alembic_config",
    "create_engine",
    "migrate",
    "sqlite_url",
    "transaction",
]
