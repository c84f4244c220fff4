"""Signing of registry records, so that a tampered or foreign registry is refused
before anything in it is unpickled.

The key is 32 random bytes in a file beside the database (created with mode 0600), or
one the user passes. Every MAC also covers the run id and the record's identity, so a
record cannot be moved to another run or another task unnoticed.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import secrets
import struct
from pathlib import Path

from resilience.errors import ConfigError, RegistryError

KEY_BYTES = 32


def key_path(registry_path: Path) -> Path:
    """Where the key of the registry at `registry_path` is kept."""
    return registry_path.with_name(registry_path.name + ".key")


def create_key(path: Path) -> bytes:
    """Write a new random key to `path`, readable by its owner only.

    Written beside it and renamed into place, so a process killed meanwhile leaves no
    empty key file that would make its registry unusable, only a partial one that the
    next session's key replaces. The caller found no key there, and holds the
    registry's session lock: no second writer of this key can race it."""
    key = secrets.token_bytes(KEY_BYTES)
    partial = path.with_name(f"{path.name}.partial")
    try:
        with open(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as file:
            file.write(key)
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return key


def read_key(path: Path) -> bytes:
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        raise RegistryError(
            f"the registry's key file {path} is missing, so its records cannot be verified "
            "and will not be read. Restore the key file, or pass registry_key=."
        ) from None
    if len(key) < 16:
        raise RegistryError(f"the key file {path} holds {len(key)} bytes; a key has at least 16.")
    return key


def check_key(key: object) -> bytes:
    """A key the user passed, or a clear error."""
    if not isinstance(key, bytes) or len(key) < 16:
        raise ConfigError(
            "registry_key must be bytes of length >= 16 (e.g. secrets.token_bytes(32)); "
            "or leave it None to keep a key file beside the registry."
        )
    return key


class Signer:
    """MACs over length-framed parts, bound to one run.

    Keyed BLAKE2b-256 rather than HMAC-SHA256: a MAC of the same strength (Python's
    hashlib documents it as HMAC's faster replacement) at half the cost, which a
    million-task run, signing a million records, needs. The keyed state over the run id
    is computed once and copied per MAC.
    """

    def __init__(self, key: bytes, run_id: str) -> None:
        if len(key) > hashlib.blake2b.MAX_KEY_SIZE:  # a long user key: use its digest
            key = hashlib.blake2b(key).digest()
        self._base = hashlib.blake2b(_frame(run_id.encode()), key=key, digest_size=32)

    def sign(self, *parts: bytes | str) -> bytes:
        return self.sign_bytes(*[part.encode() if isinstance(part, str) else part
                                 for part in parts])

    def sign_bytes(self, *parts: bytes) -> bytes:
        mac = self._base.copy()
        # The count and lengths first keep ("ab", "c") and ("a", "bc") apart.
        mac.update(_header(len(parts)).pack(len(parts), *map(len, parts)))
        mac.update(b"".join(parts))
        return mac.digest()

    def verify(self, mac: bytes | None, *parts: bytes | str) -> bool:
        return mac is not None and hmac.compare_digest(mac, self.sign(*parts))


@functools.cache
def _header(parts: int) -> struct.Struct:
    return struct.Struct(f"<{parts + 1}Q")


def _frame(part: bytes) -> bytes:
    return len(part).to_bytes(8, "little") + part
