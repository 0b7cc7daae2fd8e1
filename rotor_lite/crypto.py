"""AES-256-GCM encryption of secrets at rest under the server's master key."""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from rotor_lite.errors import ConfigError
from rotor_lite.files import make_data_dir, open_private, tighten

_NONCE = 12
_KEY_FILE = "master.key"
KEY_CHECK_PLAINTEXT = b"rotor-lite master key check"


class Vault:
    """Encrypts and decrypts small values; each ciphertext is nonce || AES-GCM(value)."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ConfigError("security.master_key must be 32 bytes, base64-encoded")
        self._aead = AESGCM(key)
        self.key_bytes = key

    def encrypt(self, plaintext: str | bytes, context: bytes = b"") -> bytes:
        data = plaintext.encode() if isinstance(plaintext, str) else plaintext
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, data, context)

    def decrypt(self, blob: bytes, context: bytes = b"") -> bytes:
        return self._aead.decrypt(blob[:_NONCE], blob[_NONCE:], context)

    def decrypt_text(self, blob: bytes, context: bytes = b"") -> str:
        return self.decrypt(blob, context).decode()

    def matches(self, check_blob: bytes) -> bool:
        """True when `check_blob` was written under this key."""
        try:
            return self.decrypt(check_blob) == KEY_CHECK_PLAINTEXT
        except InvalidTag:
            return False


def load_master_key(configured: str, data_dir: Path) -> bytes:
    """The configured key, else the one in `<data_dir>/master.key`, else a new one saved there (0600)."""
    if configured:
        return _decode_key(configured, "security.master_key")
    path = data_dir / _KEY_FILE
    if path.exists():
        tighten(path)
        return _decode_key(path.read_text().strip(), str(path))
    make_data_dir(data_dir)
    key = AESGCM.generate_key(bit_length=256)
    with os.fdopen(open_private(path, os.O_WRONLY | os.O_EXCL), "w") as handle:
        handle.write(base64.b64encode(key).decode() + "\n")
    return key


def decode_key(text: str, where: str) -> bytes:
    """A base64 master key, checked to be 32 bytes; `where` names its source in errors."""
    return _decode_key(text, where)


def _decode_key(text: str, where: str) -> bytes:
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(f"{where}: master key is not valid base64") from exc
    if len(key) != 32:
        raise ConfigError(f"{where}: master key must decode to 32 bytes, got {len(key)}")
    return key
