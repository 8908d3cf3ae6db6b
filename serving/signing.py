"""Ed25519 signatures over version manifests, so a server can refuse a model nobody signed.

The manifest lists the SHA-256 of every file of a version, so signing its bytes signs the model.
Keys are PEM files (`textclf models keygen` writes a pair); the private key may instead come from
the TEXTCLF_SIGNING_KEY environment variable (the PEM text), e.g. from a Kubernetes secret.
"""

from __future__ import annotations

import os
import pathlib
from typing import Optional

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

SIGNING_KEY_ENV = "TEXTCLF_SIGNING_KEY"


class KeyFileError(ValueError):
    """A key file is missing or is not an Ed25519 key in PEM form."""


class SigningKey:
    """An Ed25519 private key."""

    def __init__(self, key: ed25519.Ed25519PrivateKey):
        self._key = key

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def verify_key(self) -> "VerifyKey":
        return VerifyKey(self._key.public_key())


class VerifyKey:
    """An Ed25519 public key."""

    def __init__(self, key: ed25519.Ed25519PublicKey):
        self._key = key

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            self._key.verify(signature, message)
        except InvalidSignature:
            return False
        return True


def generate_key_pair(private_path: pathlib.Path, public_path: pathlib.Path) -> None:
    """Writes a new private key (mode 0600) and its public key as PEM files."""
    key = ed25519.Ed25519PrivateKey.generate()
    private_path.parent.mkdir(parents=True, exist_ok=True)
    public_path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    public_path.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


def load_signing_key(key_file: str) -> Optional[SigningKey]:
    """The key in `key_file`, else in $TEXTCLF_SIGNING_KEY, else None (publish unsigned)."""
    if key_file:
        source = f"serving.signing_key_file {key_file}"
        pem = _read(key_file, "serving.signing_key_file")
    elif os.environ.get(SIGNING_KEY_ENV):
        pem, source = os.environ[SIGNING_KEY_ENV].encode(), f"${SIGNING_KEY_ENV}"
    else:
        return None
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as error:
        raise KeyFileError(f"{source} is not a PEM private key without a password; "
                           "`textclf models keygen` writes one") from error
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise KeyFileError(f"{source} is not an Ed25519 key; `textclf models keygen` writes one")
    return SigningKey(key)


def load_verify_key(key_file: str) -> Optional[VerifyKey]:
    """The public key in `key_file`; None when no file is configured (signatures not required)."""
    if not key_file:
        return None
    try:
        key = serialization.load_pem_public_key(_read(key_file, "serving.verify_key_file"))
    except ValueError as error:
        raise KeyFileError(f"serving.verify_key_file {key_file} is not a PEM public key; "
                           "`textclf models keygen` writes one") from error
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise KeyFileError(f"serving.verify_key_file {key_file} is not an Ed25519 public key")
    return VerifyKey(key)


def _read(path: str, option: str) -> bytes:
    try:
        return pathlib.Path(path).read_bytes()
    except OSError as error:
        raise KeyFileError(f"{option} {path} cannot be read: {error.strerror}") from error
