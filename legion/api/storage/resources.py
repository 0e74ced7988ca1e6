"""``ResourceStore``: every resource kind in one table, the store the management API reads and writes.

The API stores desired state (``create``, ``update``); the reconcile loop reads it, asks a runtime to converge
and writes back what it saw (``update_status``). Two counters keep them honest, as in Kubernetes:

- ``generation`` changes only when the spec does: the loop records the generation it acted on and passes it as
  ``expected_generation`` so that a status computed for an older spec is refused;
- ``version`` changes on every write: a client that read version ``v`` passes ``expected_version=v`` and gets a
  ``ConflictError`` instead of overwriting someone else's change.

Every write also appends a ``Change`` numbered by a store-wide ``revision``, committed in order, so the loop
polls ``revision()`` (one indexed read) and fetches ``changes_since(seen)`` only when it moved. Deletion is two
steps: ``mark_deleting`` (the loop tears the runtime objects down), then ``delete``.

Secret fields (``secret_fields={"Connection": ["password", "keySecret"]}``) are encrypted with the ``Cipher``
before a row is written and decrypted when it is read; callers only ever see plaintext. Masking them in API
responses is the API's job.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Engine, Row, func, insert, select, update
from sqlalchemy import delete as sql_delete

from legion.api.storage.crypto import Cipher
from legion.api.storage.database import EngineUser, transaction
from legion.api.storage.tables import ID_LENGTH, KIND_LENGTH, EventRow, ResourceRow, RevisionRow
from legion.api.storage.values import Page, check_labels, check_names, check_page, json_object, utc_now
from legion.core.errors import ConflictError, NotFoundError

_RESOURCES = ResourceRow.__table__
_EVENTS = EventRow.__table__


@dataclass(frozen=True)
class StoredResource:
    """One resource as stored: the envelope ``{kind, id, spec, status}`` and its metadata."""

    kind: str
    id: str
    spec: dict[str, Any]
    status: dict[str, Any]
    labels: dict[str, str]
    created_at: datetime
    updated_at: datetime
    generation: int
    version: int
    deleting: bool


class ChangeAction(StrEnum):
    """What a write did to a resource."""

    CREATED = "created"
    UPDATED = "updated"
    STATUS = "status"
    DELETING = "deleting"
    DELETED = "deleted"


@dataclass(frozen=True)
class Change:
    """One write: store ``revision`` (gap-free, in commit order), what it did, and the spec generation after it."""

    revision: int
    kind: str
    id: str
    action: ChangeAction
    generation: int
    at: datetime


class ResourceStore(EngineUser):
    """Create, read, list, update and delete resources of any kind.

    >>> store = ResourceStore(engine, Cipher([key]), secret_fields={"Connection": ["password"]})
    >>> store.create("Connection", "docker-hub", {"type": "docker", "password": "s3cret"}, {"team": "ml"})
    >>> store.list("Connection", labels={"team": "ml"}).items[0].spec["password"]
    's3cret'

    Give it an ``Engine`` to share one pool with the other stores; a URL makes an engine that ``close`` disposes.
    The database must be migrated first (``migrate``).
    """

    def __init__(
        self, bind: Engine | str, cipher: Cipher, *, secret_fields: Mapping[str, Sequence[str]] | None = None
    ) -> None:
        super().__init__(bind)
        self._cipher = cipher
        self._secret_fields = {kind: tuple(fields) for kind, fields in (secret_fields or {}).items()}

    def create(
        self, kind: str, id: str, spec: Mapping[str, Any], labels: Mapping[str, str] | None = None
    ) -> StoredResource:
        """Store a new resource at generation 1, version 1; ``ConflictError`` if ``kind``/``id`` exists."""
        _check_key(kind, id)
        spec_doc = json_object(spec, "spec")
        labels_doc = check_labels(labels)
        now = utc_now()
        with transaction(self._engine, write=True, conflict=f"{kind} {id!r} already exists") as connection:
            connection.execute(
                insert(ResourceRow).values(
                    kind=kind,
                    id=id,
                    spec=self._seal(kind, spec_doc),
                    status={},
                    labels=labels_doc,
                    created_at=now,
                    updated_at=now,
                    generation=1,
                    version=1,
                    deleting=False,
                )
            )
            _record(connection, kind, id, ChangeAction.CREATED, generation=1, at=now)
        return StoredResource(kind, id, spec_doc, {}, labels_doc, now, now, 1, 1, False)

    def get(self, kind: str, id: str) -> StoredResource:
        """The resource, or ``NotFoundError`` naming it."""
        _check_key(kind, id)
        with transaction(self._engine) as connection:
            row = connection.execute(select(_RESOURCES).where(*_key(kind, id))).one_or_none()
        if row is None:
            raise _not_found(kind, id)
        return self._stored(row)

    def list(
        self,
        kind: str,
        *,
        labels: Mapping[str, str] | None = None,
        search: str | None = None,
        page: int = 0,
        size: int = 100,
    ) -> Page[StoredResource]:
        """Resources of ``kind`` ordered by id, page ``page`` (from 0) of ``size``.

        ``labels`` keeps those that carry every given label with that value; ``search`` those whose id contains
        the text (ignoring case).
        """
        check_names("invalid listing", kind=(kind, KIND_LENGTH))
        check_page(page, size)
        conditions = [ResourceRow.kind == kind]
        conditions += [ResourceRow.labels[key].as_string() == value for key, value in check_labels(labels).items()]
        if search:
            conditions.append(func.lower(ResourceRow.id).contains(search.lower(), autoescape=True))
        with transaction(self._engine) as connection:
            total = connection.execute(select(func.count()).select_from(_RESOURCES).where(*conditions)).scalar_one()
            rows = connection.execute(
                select(_RESOURCES).where(*conditions).order_by(ResourceRow.id).offset(page * size).limit(size)
            ).all()
        return Page(tuple(self._stored(row) for row in rows), total, page, size)

    def all(self, kind: str) -> Sequence[StoredResource]:
        """Every resource of ``kind``, ordered by id, read in one query (not page after page: a check that must see
        every object, as deleting a referenced one does, sees one consistent state)."""
        check_names("invalid listing", kind=(kind, KIND_LENGTH))
        query = select(_RESOURCES).where(ResourceRow.kind == kind).order_by(ResourceRow.id)
        with transaction(self._engine) as connection:
            rows = connection.execute(query).all()
        return tuple(self._stored(row) for row in rows)

    def update(
        self,
        kind: str,
        id: str,
        spec: Mapping[str, Any],
        labels: Mapping[str, str] | None = None,
        *,
        expected_version: int | None = None,
    ) -> StoredResource:
        """Replace the spec (and the labels, unless ``None``); the version always moves, the generation when the
        spec differs. ``ConflictError`` when ``expected_version`` is not the stored one or the resource is being
        deleted."""
        _check_key(kind, id)
        spec_doc = json_object(spec, "spec")
        labels_doc = None if labels is None else check_labels(labels)
        now = utc_now()
        with transaction(self._engine, write=True) as connection:
            row = _locked(connection, kind, id)
            _check_version(row, expected_version)
            if row.deleting:
                raise ConflictError(f"{kind} {id!r} is being deleted; its spec cannot change")
            spec_changed = self._unseal(kind, id, row.spec) != spec_doc
            generation = row.generation + 1 if spec_changed else row.generation
            labels_doc = row.labels if labels_doc is None else labels_doc
            connection.execute(
                update(ResourceRow)
                .where(*_key(kind, id))
                .values(
                    spec=self._seal(kind, spec_doc) if spec_changed else row.spec,
                    labels=labels_doc,
                    generation=generation,
                    version=row.version + 1,
                    updated_at=now,
                )
            )
            _record(connection, kind, id, ChangeAction.UPDATED, generation=generation, at=now)
        return StoredResource(
            kind, id, spec_doc, row.status, labels_doc, row.created_at, now, generation, row.version + 1, False
        )

    def update_status(
        self, kind: str, id: str, status: Mapping[str, Any], *, expected_generation: int | None = None
    ) -> StoredResource:
        """Replace the status (the generation stays); ``ConflictError`` when the spec moved past
        ``expected_generation`` meanwhile. Allowed while the resource is being deleted."""
        _check_key(kind, id)
        status_doc = json_object(status, "status")
        now = utc_now()
        with transaction(self._engine, write=True) as connection:
            row = _locked(connection, kind, id)
            if expected_generation is not None and row.generation != expected_generation:
                raise ConflictError(
                    f"{kind} {id!r} is at generation {row.generation}, not {expected_generation}: "
                    "its spec changed after this status was computed"
                )
            connection.execute(
                update(ResourceRow)
                .where(*_key(kind, id))
                .values(status=status_doc, version=row.version + 1, updated_at=now)
            )
            _record(connection, kind, id, ChangeAction.STATUS, generation=row.generation, at=now)
        return self._stored(row, status=status_doc, updated_at=now, version=row.version + 1)

    def mark_deleting(self, kind: str, id: str) -> StoredResource:
        """Flag the resource for deletion (the reconcile loop tears it down, then calls ``delete``); idempotent."""
        _check_key(kind, id)
        now = utc_now()
        with transaction(self._engine, write=True) as connection:
            row = _locked(connection, kind, id)
            if row.deleting:
                return self._stored(row)
            connection.execute(
                update(ResourceRow)
                .where(*_key(kind, id))
                .values(deleting=True, version=row.version + 1, updated_at=now)
            )
            _record(connection, kind, id, ChangeAction.DELETING, generation=row.generation, at=now)
        return self._stored(row, deleting=True, updated_at=now, version=row.version + 1)

    def delete(self, kind: str, id: str) -> None:
        """Remove the resource for good; ``NotFoundError`` if it is not there."""
        _check_key(kind, id)
        now = utc_now()
        with transaction(self._engine, write=True) as connection:
            generation = connection.execute(
                sql_delete(ResourceRow).where(*_key(kind, id)).returning(ResourceRow.generation)
            ).scalar_one_or_none()
            if generation is None:
                raise _not_found(kind, id)
            _record(connection, kind, id, ChangeAction.DELETED, generation=generation, at=now)

    def kinds_count(self) -> dict[str, dict[str, int]]:
        """How many resources there are of each kind in each ``status.state`` (``""`` when it has none)."""
        states = select(ResourceRow.kind, ResourceRow.status["state"].as_string().label("state")).subquery()
        query = select(states.c.kind, states.c.state, func.count()).group_by(states.c.kind, states.c.state)
        counts: dict[str, dict[str, int]] = {}
        with transaction(self._engine) as connection:
            for kind, state, count in connection.execute(query):
                counts.setdefault(kind, {})[state or ""] = count
        return counts

    def revision(self) -> int:
        """The number of writes so far (0 for a new database); it moves whenever any resource changes."""
        with transaction(self._engine) as connection:
            value: int = connection.execute(select(RevisionRow.value).where(RevisionRow.id == 1)).scalar_one()
        return value

    def changes_since(self, revision: int, *, limit: int = 1000) -> tuple[Change, ...]:
        """The changes after ``revision``, oldest first, at most ``limit`` (call again from the last one's)."""
        check_page(0, limit)
        query = select(_EVENTS).where(EventRow.revision > revision).order_by(EventRow.revision).limit(limit)
        with transaction(self._engine) as connection:
            rows = connection.execute(query).all()
        return tuple(
            Change(row.revision, row.kind, row.resource_id, ChangeAction(row.action), row.generation, row.at)
            for row in rows
        )

    def prune_changes(self, before: int) -> int:
        """Forget the changes older than revision ``before``; how many went. ``revision()`` is unaffected."""
        with transaction(self._engine, write=True) as connection:
            result = connection.execute(sql_delete(EventRow).where(EventRow.revision < before))
        return int(result.rowcount)

    def rotate_secrets(self) -> int:
        """Re-encrypt every stored secret under the cipher's first key; how many values changed.

        Run it after putting a new key first, before dropping the old keys. Versions do not move: the
        plaintext is the same.
        """
        rotated = 0
        with transaction(self._engine, write=True) as connection:
            for kind, fields in self._secret_fields.items():
                rows = connection.execute(
                    select(ResourceRow.id, ResourceRow.spec)
                    .where(ResourceRow.kind == kind)
                    .order_by(ResourceRow.id)  # the same lock order as any other rotation
                    .with_for_update()
                )
                for id, spec in rows.all():
                    new_spec = dict(spec)
                    for field in fields:
                        if Cipher.is_encrypted(spec.get(field)):
                            new_spec[field] = self._cipher.rotate(spec[field], where=_where(kind, id, field))
                            rotated += 1
                    if new_spec != spec:
                        connection.execute(update(ResourceRow).where(*_key(kind, id)).values(spec=new_spec))
        return rotated

    def _seal(self, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
        sealed = dict(spec)
        for field in self._secret_fields.get(kind, ()):
            value = sealed.get(field)
            if isinstance(value, str):
                sealed[field] = self._cipher.encrypt(value)
        return sealed

    def _unseal(self, kind: str, id: str, spec: dict[str, Any]) -> dict[str, Any]:
        plain = dict(spec)
        for field in self._secret_fields.get(kind, ()):
            value = plain.get(field)
            if Cipher.is_encrypted(value):
                plain[field] = self._cipher.decrypt(value, where=_where(kind, id, field))
        return plain

    def _stored(self, row: Row[Any], **changes: Any) -> StoredResource:
        values = {name: getattr(row, name) for name in StoredResource.__dataclass_fields__}
        values.update(changes)
        values["spec"] = self._unseal(row.kind, row.id, row.spec)
        return StoredResource(**values)


def _check_key(kind: str, id: str) -> None:
    check_names("invalid resource key", kind=(kind, KIND_LENGTH), id=(id, ID_LENGTH))


def _key(kind: str, id: str) -> tuple[Any, ...]:
    return ResourceRow.kind == kind, ResourceRow.id == id


def _where(kind: str, id: str, field: str) -> str:
    return f"field {field!r} of {kind} {id!r}"


def _not_found(kind: str, id: str) -> NotFoundError:
    return NotFoundError(f"{kind} {id!r} not found")


def _locked(connection: Connection, kind: str, id: str) -> Row[Any]:
    """The row, locked until the transaction ends (PostgreSQL; SQLite's writer already holds the database)."""
    row = connection.execute(select(_RESOURCES).where(*_key(kind, id)).with_for_update()).one_or_none()
    if row is None:
        raise _not_found(kind, id)
    return row


def _check_version(row: Row[Any], expected_version: int | None) -> None:
    if expected_version is not None and row.version != expected_version:
        raise ConflictError(
            f"{row.kind} {row.id!r} changed since it was read: it is at version {row.version}, "
            f"not {expected_version}; read it again and retry"
        )


def _record(connection: Connection, kind: str, id: str, action: ChangeAction, *, generation: int, at: datetime) -> int:
    """Append the change under the next revision. Last in every write: the counter's row lock orders commits."""
    revision: int = connection.execute(
        update(RevisionRow).where(RevisionRow.id == 1).values(value=RevisionRow.value + 1).returning(RevisionRow.value)
    ).scalar_one()
    connection.execute(
        insert(EventRow).values(
            revision=revision, kind=kind, resource_id=id, action=action.value, generation=generation, at=at
        )
    )
    return revision
