"""Secrets at rest: ``Cipher`` encrypts the secret fields of a spec before they reach the database.

It wraps ``cryptography``'s ``MultiFernet`` for key rotation: the first key encrypts, every key decrypts. To
rotate, put a new key first and keep the old ones after it until ``ResourceStore.rotate_secrets()`` has
re-encrypted every stored value; then drop them.

An encrypted value is the string ``"fernet:" + token``, so a stored row shows what it holds (and a value written
before its field was declared secret is still read back as it is). A value that no configured key decrypts is a
``SecretDecryptionError`` naming where it is stored, never the value or the key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeGuard

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from legion.core.errors import InvalidInputError, LegionError

PREFIX = "fernet:"


class SecretDecryptionError(LegionError):
    """A stored secret that none of the configured keys decrypts: the server's keys are wrong, not the request."""

    title = "Secret cannot be decrypted"


class Cipher:
    """Encrypt and decrypt strings with a list of Fernet keys, the first one current.

    >>> cipher = Cipher([Cipher.generate_key()])
    >>> cipher.decrypt(cipher.encrypt("s3cret"))
    's3cret'
    """

    def __init__(self, keys: Sequence[str | bytes]) -> None:
        if isinstance(keys, str | bytes) or not keys:
            raise InvalidInputError("the cipher needs a list of one or more keys (make one with Cipher.generate_key())")
        fernets = []
        for number, key in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(key))
            except (ValueError, TypeError):
                # Not chained: the original exception would show the bad key in a traceback.
                raise InvalidInputError(
                    f"encryption key #{number} is not a Fernet key (32 url-safe base64-encoded bytes); "
                    "make one with Cipher.generate_key()"
                ) from None
        self._fernet = MultiFernet(fernets)
        self._keys = len(fernets)

    def __repr__(self) -> str:
        return f"Cipher(<{self._keys} key{'s' if self._keys > 1 else ''}>)"

    @staticmethod
    def generate_key() -> str:
        """A new random key, as the text to put in the settings."""
        return Fernet.generate_key().decode("ascii")

    @staticmethod
    def is_encrypted(value: object) -> TypeGuard[str]:
        """Whether ``value`` is a string this class encrypted (by its prefix; no key is tried)."""
        return isinstance(value, str) and value.startswith(PREFIX)

    def encrypt(self, plaintext: str) -> str:
        """``"fernet:<token>"`` under the first key; a new random token on every call."""
        return PREFIX + self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, ciphertext: str, *, where: str = "a stored secret") -> str:
        """The plaintext of ``encrypt``'s output, trying every key; ``where`` names the value in the error."""
        try:
            return self._fernet.decrypt(self._token(ciphertext, where)).decode("utf-8")
        except (InvalidToken, UnicodeDecodeError):
            # Not chained: a decoding error holds the decrypted bytes.
            raise SecretDecryptionError(self._failure(where)) from None

    def rotate(self, ciphertext: str, *, where: str = "a stored secret") -> str:
        """The same plaintext encrypted under the first key."""
        try:
            return PREFIX + self._fernet.rotate(self._token(ciphertext, where)).decode("ascii")
        except InvalidToken:
            raise SecretDecryptionError(self._failure(where)) from None

    @staticmethod
    def _token(ciphertext: str, where: str) -> bytes:
        if not Cipher.is_encrypted(ciphertext):
            raise SecretDecryptionError(f"cannot decrypt {where}: it is not a value this cipher encrypted")
        return ciphertext.removeprefix(PREFIX).encode("ascii", errors="replace")

    @staticmethod
    def _failure(where: str) -> str:
        return (
            f"cannot decrypt {where}: none of the configured encryption keys fits "
            "(after changing keys, keep the old key in the list until its values are re-encrypted)"
        )
