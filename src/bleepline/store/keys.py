"""Recipient keys (public, held by the relay) and identities (private, held by reviewers).

Both are X25519 keys in standard PEM files, so ordinary tools can read them. An identity may be
protected with a passphrase (PKCS#8, encrypted by ``cryptography``'s best available scheme). A key id —
the first 8 bytes of the SHA-256 of the raw public key — names a key without revealing it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from bleepline.store.errors import KeyFileError

PUBLIC_KEY_NAME = "recipient.pub"
IDENTITY_NAME = "identity.key"
#: The environment variable a passphrase-protected identity's passphrase is read from.
PASSPHRASE_ENV = "BLEEPLINE_PASSPHRASE"


def key_id_of(public_key: X25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class RecipientKey:
    """A public key recordings are encrypted to."""

    public_key: X25519PublicKey
    key_id: str

    @classmethod
    def from_public_key(cls, public_key: X25519PublicKey) -> RecipientKey:
        return cls(public_key, key_id_of(public_key))

    def to_pem(self) -> bytes:
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def __repr__(self) -> str:
        return f"RecipientKey(key_id={self.key_id})"


@dataclass(frozen=True)
class Identity:
    """A private key that opens recordings encrypted to its public half."""

    private_key: X25519PrivateKey

    @classmethod
    def generate(cls) -> Identity:
        return cls(X25519PrivateKey.generate())

    @property
    def recipient(self) -> RecipientKey:
        return RecipientKey.from_public_key(self.private_key.public_key())

    @property
    def key_id(self) -> str:
        return self.recipient.key_id

    def to_pem(self, passphrase: bytes | None = None) -> bytes:
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
        )
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )

    def __repr__(self) -> str:
        return f"Identity(key_id={self.key_id})"


def _read(path: Path, what: str) -> bytes:
    if path.is_dir():
        raise KeyFileError(path, f"is a directory, not {what}")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise KeyFileError(path, f"does not exist (expected {what})") from None
    except OSError as exc:
        raise KeyFileError(path, f"cannot be read: {exc.strerror or type(exc).__name__}") from None
    if not data.strip():
        raise KeyFileError(path, f"is empty (expected {what})")
    return data


def load_recipient(path: str | os.PathLike[str]) -> RecipientKey:
    """Read a recipient public key (PEM). Also accepts an identity file, taking its public half."""
    path = Path(path)
    data = _read(path, "a bleepline recipient public key")
    if b"PRIVATE KEY" in data:
        raise KeyFileError(path, "is a private identity; give the recipient's public key (.pub)")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        raise KeyFileError(path, "is not a PEM public key") from None
    if not isinstance(key, X25519PublicKey):
        raise KeyFileError(path, "is a public key of the wrong type (bleepline uses X25519)")
    return RecipientKey.from_public_key(key)


def is_passphrase_protected(path: str | os.PathLike[str]) -> bool:
    return b"ENCRYPTED PRIVATE KEY" in _read(Path(path), "a bleepline identity")


def load_identity(path: str | os.PathLike[str], passphrase: bytes | None = None) -> Identity:
    """Read an identity (PEM PKCS#8). A protected one needs ``passphrase``."""
    path = Path(path)
    data = _read(path, "a bleepline identity")
    if b"PRIVATE KEY" not in data:
        raise KeyFileError(path, "is not a private identity (is it a .pub recipient key?)")
    protected = b"ENCRYPTED PRIVATE KEY" in data
    if protected and not passphrase:
        raise KeyFileError(
            path, f"is passphrase-protected: set {PASSPHRASE_ENV} or run in a terminal to be asked"
        )
    try:
        key = serialization.load_pem_private_key(data, password=passphrase if protected else None)
    except ValueError:
        if protected:
            raise KeyFileError(path, "could not be unlocked: wrong passphrase") from None
        raise KeyFileError(path, "is not a valid PEM private key") from None
    except TypeError:
        raise KeyFileError(path, "is not a valid PEM private key") from None
    if not isinstance(key, X25519PrivateKey):
        raise KeyFileError(path, "is a private key of the wrong type (bleepline uses X25519)")
    return Identity(key)


def write_key_pair(
    directory: str | os.PathLike[str], identity: Identity, passphrase: bytes | None = None
) -> tuple[Path, Path]:
    """Write ``recipient.pub`` and ``identity.key`` (mode 0600) into ``directory``.

    Refuses to replace an existing identity: losing one makes its recordings unreadable for good.
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise KeyFileError(directory, "exists and is not a directory")
    directory.mkdir(parents=True, exist_ok=True)
    public_path = directory / PUBLIC_KEY_NAME
    private_path = directory / IDENTITY_NAME
    for existing in (private_path, public_path):
        if existing.exists():
            raise KeyFileError(existing, "already exists; move it away or choose another --out")
    try:
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise KeyFileError(private_path, f"cannot be created: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(identity.to_pem(passphrase))
        os.chmod(private_path, 0o600)  # the umask may have narrowed it further; never widen
        public_path.write_bytes(identity.recipient.to_pem())
    except OSError as exc:
        private_path.unlink(missing_ok=True)
        public_path.unlink(missing_ok=True)
        raise KeyFileError(directory, f"cannot write the key pair: {exc.strerror}") from None
    return public_path, private_path
