"""Field-level envelope encryption (AES-256-GCM) for protected personal data.

Each value gets its own random data key (DEK). The value is encrypted with the DEK, using
the column's *context* (e.g. ``"users.mobile"``) as associated data so a ciphertext copied
into another column fails to decrypt. The DEK is wrapped with a key-encryption key (KEK)
from ``NIDAAN_ENCRYPTION_KEYS``; the KEK id is bound into the wrap as associated data.

Token format (ASCII, dot-separated, unpadded base64url)::

    v1.<kek id>.<nonce + wrapped dek + tag>.<nonce + ciphertext + tag>

Rotation only re-wraps the 60-byte DEK part; the data ciphertext is never touched, so a
rotation needs no plaintext and cannot corrupt data.
"""

from __future__ import annotations

import binascii
import os
import re
from base64 import urlsafe_b64decode, urlsafe_b64encode
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from nidaan.config import Settings, get_settings

TOKEN_VERSION = "v1"
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
_WRAPPED_DEK_BYTES = NONCE_BYTES + KEY_BYTES + TAG_BYTES

# Key ids appear inside tokens (dot-separated) and in .env files, so keep them plain.
KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,32}$")

# Domain-separation prefixes: a wrapped DEK can never be mistaken for field data or vice versa.
_DEK_AAD_PREFIX = b"nidaan/dek/" + TOKEN_VERSION.encode() + b"\x00"
_DATA_AAD_PREFIX = b"nidaan/field/" + TOKEN_VERSION.encode() + b"\x00"


class DecryptionError(ValueError):
    """A token is malformed, tampered with, from another column, or under an unknown key.

    Messages never contain plaintext, key material or token contents.
    """


@dataclass(frozen=True, slots=True)
class _Token:
    key_id: str
    wrapped_dek: bytes
    sealed_data: bytes


def _b64encode(data: bytes) -> str:
    return urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    """Strict unpadded base64url: non-canonical encodings are rejected.

    Python's decoder ignores stray characters and unused trailing bits; accepting those
    would let a modified token decrypt, which breaks "any change is detected".
    """
    try:
        raw = urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise DecryptionError("Encrypted value is malformed (bad encoding)") from None
    if _b64encode(raw) != text:
        raise DecryptionError("Encrypted value is malformed (bad encoding)")
    return raw


def _parse(token: str) -> _Token:
    if not isinstance(token, str) or not token.isascii():
        raise DecryptionError("Encrypted value is malformed (not an ASCII token)")
    parts = token.split(".")
    if len(parts) != 4:
        raise DecryptionError("Encrypted value is malformed (expected 4 parts)")
    version, key_id, wrapped_b64, data_b64 = parts
    if version != TOKEN_VERSION:
        raise DecryptionError("Encrypted value has an unsupported format version")
    if not KEY_ID_PATTERN.match(key_id):
        raise DecryptionError("Encrypted value is malformed (bad key id)")
    wrapped = _b64decode(wrapped_b64)
    sealed = _b64decode(data_b64)
    if len(wrapped) != _WRAPPED_DEK_BYTES or len(sealed) < NONCE_BYTES + TAG_BYTES:
        raise DecryptionError("Encrypted value is malformed (bad length)")
    return _Token(key_id, wrapped, sealed)


def _format(token: _Token) -> str:
    return ".".join(
        (TOKEN_VERSION, token.key_id, _b64encode(token.wrapped_dek), _b64encode(token.sealed_data))
    )


def _data_aad(context: str) -> bytes:
    if not isinstance(context, str) or not context:
        raise ValueError("An encryption context (e.g. 'users.mobile') is required")
    return _DATA_AAD_PREFIX + context.encode("utf-8")


class FieldCipher:
    """Encrypts and decrypts single field values under a keyring of KEKs.

    Build one with explicit keys (tests, tools) or use :func:`get_cipher` for the
    configured keyring.
    """

    __slots__ = ("_active_key_id", "_keks")

    def __init__(self, keys: Mapping[str, bytes], active_key_id: str) -> None:
        if not keys:
            raise ValueError("At least one encryption key is required")
        for key_id, key in keys.items():
            if not KEY_ID_PATTERN.match(key_id):
                raise ValueError(
                    f"Encryption key id {key_id!r} must be 1-32 letters, digits, '-' or '_'"
                )
            if len(key) != KEY_BYTES:
                raise ValueError(f"Encryption key {key_id!r} must be {KEY_BYTES} bytes")
        if active_key_id not in keys:
            raise ValueError(f"Active encryption key {active_key_id!r} is not in the keyring")
        self._keks = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self._active_key_id = active_key_id

    @classmethod
    def from_settings(cls, settings: Settings) -> FieldCipher:
        """The cipher for ``NIDAAN_ENCRYPTION_KEYS`` / ``NIDAAN_ACTIVE_ENCRYPTION_KEY``."""
        active, keys = settings.encryption_keyring()
        return cls(keys, active)

    @property
    def active_key_id(self) -> str:
        return self._active_key_id

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._keks)

    def __repr__(self) -> str:
        # Key ids are not secret; the keys themselves never appear.
        return f"FieldCipher(active={self._active_key_id!r}, key_ids={sorted(self._keks)!r})"

    def encrypt(self, plaintext: str, context: str) -> str:
        """Encrypt ``plaintext`` for the column named by ``context``; returns an ASCII token."""
        if not isinstance(plaintext, str):
            raise TypeError("Only str values can be encrypted")
        aad = _data_aad(context)
        dek = AESGCM.generate_key(bit_length=KEY_BYTES * 8)
        nonce = os.urandom(NONCE_BYTES)
        sealed = nonce + AESGCM(dek).encrypt(nonce, plaintext.encode("utf-8"), aad)
        wrapped = self._wrap(dek, self._active_key_id)
        return _format(_Token(self._active_key_id, wrapped, sealed))

    def decrypt(self, token: str, context: str) -> str:
        """Decrypt a token made by :meth:`encrypt` with the same ``context``."""
        aad = _data_aad(context)
        parsed = _parse(token)
        dek = self._unwrap(parsed)
        nonce, body = parsed.sealed_data[:NONCE_BYTES], parsed.sealed_data[NONCE_BYTES:]
        try:
            data = AESGCM(dek).decrypt(nonce, body, aad)
        except InvalidTag:
            raise DecryptionError(
                f"Encrypted value failed authentication for context {context!r} "
                "(tampered, or copied from another column)"
            ) from None
        return data.decode("utf-8")

    def key_id_of(self, token: str) -> str:
        """The id of the KEK that wraps this token's data key."""
        return _parse(token).key_id

    def needs_rewrap(self, token: str) -> bool:
        """True when the token is wrapped by a key other than the active one."""
        return self.key_id_of(token) != self._active_key_id

    def rewrap(self, token: str) -> str:
        """Re-wrap the token's data key under the active KEK; the data ciphertext is kept.

        Tokens already under the active key are returned unchanged.
        """
        parsed = _parse(token)
        if parsed.key_id == self._active_key_id:
            return token
        dek = self._unwrap(parsed)
        wrapped = self._wrap(dek, self._active_key_id)
        return _format(_Token(self._active_key_id, wrapped, parsed.sealed_data))

    def _wrap(self, dek: bytes, key_id: str) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._keks[key_id].encrypt(nonce, dek, _DEK_AAD_PREFIX + key_id.encode())

    def _unwrap(self, token: _Token) -> bytes:
        kek = self._keks.get(token.key_id)
        if kek is None:
            raise DecryptionError(
                f"Encrypted value uses key id {token.key_id!r}, which is not in "
                f"NIDAAN_ENCRYPTION_KEYS (known: {', '.join(sorted(self._keks))}). "
                "Add the old key back, then run `nidaan keys rotate` before removing it."
            )
        nonce, body = token.wrapped_dek[:NONCE_BYTES], token.wrapped_dek[NONCE_BYTES:]
        try:
            return kek.decrypt(nonce, body, _DEK_AAD_PREFIX + token.key_id.encode())
        except InvalidTag:
            raise DecryptionError(
                f"Encrypted value's data key failed authentication under key id {token.key_id!r}"
                " (tampered, or the key with this id has changed)"
            ) from None


_cipher: FieldCipher | None = None


def get_cipher() -> FieldCipher:
    """The process-wide cipher, built once from :func:`nidaan.config.get_settings`."""
    global _cipher
    if _cipher is None:
        _cipher = FieldCipher.from_settings(get_settings())
    return _cipher


def set_cipher(cipher: FieldCipher | None) -> FieldCipher | None:
    """Replace the process-wide cipher (``None`` = rebuild from settings); returns the old one."""
    global _cipher
    previous, _cipher = _cipher, cipher
    return previous


@contextmanager
def use_cipher(cipher: FieldCipher) -> Iterator[FieldCipher]:
    """Temporarily make ``cipher`` the process-wide one (tests, key tools)."""
    previous = set_cipher(cipher)
    try:
        yield cipher
    finally:
        set_cipher(previous)
