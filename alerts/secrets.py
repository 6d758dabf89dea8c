"""Receiver secrets at rest: HMAC keys of signed webhooks and robots' signing secrets (pure, no I/O).

A webhook's secret must be readable by the alert service (it signs every delivery with it), so it
cannot be hashed; it is encrypted with AES-256-GCM under ``LIFTWATCH_SECRETS_KEY`` and stored as
``v1:<nonce>:<ciphertext>`` (URL-safe base64). A database dump, a backup or a role that may read
``alerts_webhooks`` then holds nothing usable without the key, which lives only in the services'
environment. The key is any string of at least 32 characters (SHA-256 makes the AES key).

Rotation: set ``LIFTWATCH_SECRETS_KEY_PREVIOUS`` to the old key and the new one as
``LIFTWATCH_SECRETS_KEY``, run ``liftwatch alerts webhook reencrypt``, then drop the previous key.
Rows written before encryption existed (plain text) are read as they are and encrypted by the
same command.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

PREFIX = "v1:"
NONCE_BYTES = 12  # GCM's standard nonce; random per value, so equal secrets never look alike
MIN_KEY_CHARS = 32
# Bound to the column: a value copied into another table or column does not decrypt there.
ASSOCIATED_DATA = b"liftwatch:alerts_webhooks.secret"


class SecretUnreadable(Exception):
    """A stored secret that no configured key decrypts (a wrong or missing key, or tampering)."""


def _aes(key: str) -> AESGCM:
    if len(key) < MIN_KEY_CHARS:
        raise ValueError(f"LIFTWATCH_SECRETS_KEY must have at least {MIN_KEY_CHARS} characters")
    return AESGCM(hashlib.sha256(key.encode()).digest())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class SecretBox:
    """Encrypts with the current key; decrypts with the current or the previous one (rotation)."""

    key: str | None
    previous: str | None = None

    def seal(self, secret: str) -> str:
        """The stored form of ``secret`` (plain text only when no key is configured)."""
        if self.key is None:
            return secret
        nonce = os.urandom(NONCE_BYTES)
        sealed = _aes(self.key).encrypt(nonce, secret.encode(), ASSOCIATED_DATA)
        return f"{PREFIX}{_b64(nonce)}:{_b64(sealed)}"

    def open(self, stored: str) -> str:
        """The secret of a stored value; plain-text (legacy) values are returned as they are."""
        if not is_sealed(stored):
            return stored
        try:
            nonce_text, sealed_text = stored[len(PREFIX) :].split(":", 1)
            nonce, sealed = _unb64(nonce_text), _unb64(sealed_text)
        except ValueError as error:
            raise SecretUnreadable("not a v1 sealed secret") from error
        for key in (self.key, self.previous):
            if key is None:
                continue
            try:
                return _aes(key).decrypt(nonce, sealed, ASSOCIATED_DATA).decode()
            except InvalidTag:
                continue
        raise SecretUnreadable("no configured key opens it (LIFTWATCH_SECRETS_KEY / _PREVIOUS)")

    def needs_sealing(self, stored: str) -> bool:
        """Plain text, or sealed under the previous key: what ``webhook reencrypt`` rewrites."""
        if self.key is None:
            return False
        if not is_sealed(stored):
            return True
        try:
            nonce_text, sealed_text = stored[len(PREFIX) :].split(":", 1)
            _aes(self.key).decrypt(_unb64(nonce_text), _unb64(sealed_text), ASSOCIATED_DATA)
            return False
        except (ValueError, InvalidTag):
            return True


def is_sealed(stored: str) -> bool:
    return stored.startswith(PREFIX)


def box_of(key: SecretStr | None, previous: SecretStr | None = None) -> SecretBox:
    """The box of the alert settings' ``secrets_key`` and ``secrets_key_previous``."""
    return SecretBox(
        key.get_secret_value() if key is not None else None,
        previous.get_secret_value() if previous is not None else None,
    )
