"""Secret fields are encrypted at rest, decrypted on read, survive key rotation and fail clearly on a wrong key."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from legion.api.storage import Cipher, ResourceStore, SecretDecryptionError
from legion.core.errors import InvalidInputError, LegionError

SECRET_FIELDS = {"Connection": ["password", "keySecret"]}
CONNECTION = {
    "type": "s3",
    "uri": "s3://models/census",
    "keyID": "AKIAEXAMPLE",
    "keySecret": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYzEXAMPLEKEY",
    "password": "pässwörd-🔑",
    "region": "eu-central-1",
}


def raw_spec(engine: Engine, resource_id: str) -> str:
    """The spec column as the database holds it, read with plain SQL."""
    with engine.connect() as connection:
        text: str = connection.execute(
            sa.text("SELECT CAST(spec AS TEXT) FROM resources WHERE kind = 'Connection' AND id = :id"),
            {"id": resource_id},
        ).scalar_one()
    return text


def raw_field(engine: Engine, resource_id: str, field: str) -> str:
    with engine.connect() as connection:
        spec = connection.execute(
            sa.select(sa.column("spec", sa.JSON))
            .select_from(sa.table("resources"))
            .where(sa.column("id") == resource_id)
        ).scalar_one()
    value: str = spec[field]
    return value


def test_secret_fields_are_encrypted_in_the_row_and_plain_on_read(store: ResourceStore, engine: Engine) -> None:
    created = store.create("Connection", "s3-models", CONNECTION)

    raw = raw_spec(engine, "s3-models")
    assert CONNECTION["keySecret"] not in raw
    assert "pässwörd" not in raw and "p\\u00e4ssw" not in raw
    assert raw.count("fernet:") == 2
    assert "AKIAEXAMPLE" in raw  # only the declared fields are secret
    assert created.spec == CONNECTION
    assert store.get("Connection", "s3-models").spec == CONNECTION
    assert store.list("Connection").items[0].spec == CONNECTION


def test_updates_and_status_writes_keep_secrets_encrypted(store: ResourceStore, engine: Engine) -> None:
    store.create("Connection", "c", CONNECTION)
    store.update("Connection", "c", {**CONNECTION, "password": "new-password"})
    store.update("Connection", "c", {**CONNECTION, "password": "new-password"}, {"team": "ml"})
    reported = store.update_status("Connection", "c", {"state": "ok"})

    raw = raw_spec(engine, "c")
    assert "new-password" not in raw
    assert reported.spec["password"] == "new-password"
    assert (reported.generation, reported.version) == (2, 4)  # an unchanged secret is no spec change


def test_other_kinds_and_non_string_values_are_stored_as_given(store: ResourceStore, engine: Engine) -> None:
    store.create("Connection", "c", {"type": "git", "password": None, "keySecret": {"not": "a string"}})
    store.create("ModelTraining", "t", {"password": "not declared secret for this kind"})

    assert store.get("Connection", "c").spec == {"type": "git", "password": None, "keySecret": {"not": "a string"}}
    with engine.connect() as connection:
        raw = connection.execute(sa.text("SELECT CAST(spec AS TEXT) FROM resources WHERE id = 't'")).scalar_one()
    assert "not declared secret" in raw


def test_a_value_that_looks_encrypted_is_still_encrypted(store: ResourceStore) -> None:
    store.create("Connection", "c", {"password": "fernet:not-really"})

    assert store.get("Connection", "c").spec == {"password": "fernet:not-really"}


def test_key_rotation(engine: Engine) -> None:
    old, new = Cipher.generate_key(), Cipher.generate_key()
    before = ResourceStore(engine, Cipher([old]), secret_fields=SECRET_FIELDS)
    before.create("Connection", "written-with-old", CONNECTION)

    rotating = ResourceStore(engine, Cipher([new, old]), secret_fields=SECRET_FIELDS)
    assert rotating.get("Connection", "written-with-old").spec == CONNECTION  # the old key still decrypts
    rotating.create("Connection", "written-with-new", CONNECTION)

    new_token = raw_field(engine, "written-with-new", "password")
    assert Cipher([new]).decrypt(new_token) == CONNECTION["password"]  # new writes use the new key
    with pytest.raises(SecretDecryptionError):
        Cipher([old]).decrypt(new_token)

    only_new = ResourceStore(engine, Cipher([new]), secret_fields=SECRET_FIELDS)
    with pytest.raises(SecretDecryptionError):
        only_new.get("Connection", "written-with-old")
    version = rotating.get("Connection", "written-with-old").version

    assert rotating.rotate_secrets() == 4

    assert only_new.get("Connection", "written-with-old").spec == CONNECTION
    assert only_new.get("Connection", "written-with-old").version == version
    assert only_new.get("Connection", "written-with-new").spec == CONNECTION


def test_a_wrong_key_is_a_clear_error_without_the_secret(store: ResourceStore, engine: Engine) -> None:
    store.create("Connection", "s3-models", CONNECTION)
    stranger = ResourceStore(engine, Cipher([Cipher.generate_key()]), secret_fields=SECRET_FIELDS)

    with pytest.raises(SecretDecryptionError) as raised:
        stranger.get("Connection", "s3-models")

    error = raised.value
    assert isinstance(error, LegionError)
    assert "Connection 's3-models'" in error.detail
    assert "'password'" in error.detail or "'keySecret'" in error.detail
    assert "none of the configured encryption keys fits" in error.detail
    assert error.__cause__ is None and error.__suppress_context__
    assert CONNECTION["password"] not in str(error) and CONNECTION["keySecret"] not in str(error)
    with pytest.raises(SecretDecryptionError):
        stranger.list("Connection")


def test_cipher_round_trip_and_fresh_tokens() -> None:
    cipher = Cipher([Cipher.generate_key()])

    first, second = cipher.encrypt("s3cret"), cipher.encrypt("s3cret")

    assert first != second
    assert cipher.decrypt(first) == cipher.decrypt(second) == "s3cret"
    assert Cipher.is_encrypted(first) and not Cipher.is_encrypted("s3cret")
    assert "s3cret" not in first
    assert repr(cipher) == "Cipher(<1 key>)"


@pytest.mark.parametrize("keys", [[], "a-single-string", ["not a fernet key"], [Cipher.generate_key(), b"short"]])
def test_bad_keys_are_refused_without_echoing_them(keys: list[str]) -> None:
    with pytest.raises(InvalidInputError) as raised:
        Cipher(keys)

    assert "not a fernet key" not in raised.value.detail
    assert "short" not in raised.value.detail


def test_decrypting_garbage_is_a_decryption_error() -> None:
    cipher = Cipher([Cipher.generate_key()])

    with pytest.raises(SecretDecryptionError, match="not a value this cipher encrypted"):
        cipher.decrypt("plain")
    with pytest.raises(SecretDecryptionError, match="none of the configured"):
        cipher.decrypt("fernet:garbage")
