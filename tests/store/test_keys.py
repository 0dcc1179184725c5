from __future__ import annotations

import stat
from pathlib import Path

import pytest

from bleepline.store.errors import KeyFileError
from bleepline.store.keys import (
    Identity,
    is_passphrase_protected,
    load_identity,
    load_recipient,
    write_key_pair,
)


def test_key_pair_round_trips_and_shares_a_key_id(tmp_path: Path) -> None:
    identity = Identity.generate()
    public, private = write_key_pair(tmp_path, identity)
    assert (public.name, private.name) == ("recipient.pub", "identity.key")
    assert load_recipient(public).key_id == identity.key_id
    assert load_identity(private).key_id == identity.key_id
    assert len(identity.key_id) == 16


def test_identity_file_is_private_to_its_owner(tmp_path: Path) -> None:
    _, private = write_key_pair(tmp_path, Identity.generate())
    assert stat.S_IMODE(private.stat().st_mode) == 0o600


def test_existing_keys_are_never_overwritten(tmp_path: Path) -> None:
    write_key_pair(tmp_path, Identity.generate())
    before = (tmp_path / "identity.key").read_bytes()
    with pytest.raises(KeyFileError, match="already exists"):
        write_key_pair(tmp_path, Identity.generate())
    assert (tmp_path / "identity.key").read_bytes() == before


def test_passphrase_protects_the_identity(tmp_path: Path) -> None:
    identity = Identity.generate()
    _, private = write_key_pair(tmp_path, identity, passphrase=b"correct horse")
    assert is_passphrase_protected(private)
    assert b"BEGIN ENCRYPTED PRIVATE KEY" in private.read_bytes()
    assert load_identity(private, b"correct horse").key_id == identity.key_id
    with pytest.raises(KeyFileError, match="wrong passphrase"):
        load_identity(private, b"battery staple")
    with pytest.raises(KeyFileError, match="passphrase-protected"):
        load_identity(private)


def test_keys_do_not_show_in_reprs() -> None:
    identity = Identity.generate()
    assert repr(identity) == f"Identity(key_id={identity.key_id})"
    assert repr(identity.recipient) == f"RecipientKey(key_id={identity.key_id})"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "does not exist"),
        (b"", "is empty"),
        (b"hello", "is not a PEM public key"),
        (
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            "is a private identity",
        ),
    ],
)
def test_bad_recipient_files_are_named_and_explained(
    tmp_path: Path, content: bytes | None, problem: str
) -> None:
    path = tmp_path / "recipient.pub"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(KeyFileError) as caught:
        load_recipient(path)
    assert str(path) in str(caught.value)
    assert problem in str(caught.value)


def test_public_key_given_as_identity_is_explained(tmp_path: Path) -> None:
    public, _ = write_key_pair(tmp_path, Identity.generate())
    with pytest.raises(KeyFileError, match="not a private identity"):
        load_identity(public)


def test_key_of_another_algorithm_is_refused(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    other = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "ec.pub"
    path.write_bytes(
        other.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    with pytest.raises(KeyFileError, match="wrong type"):
        load_recipient(path)


def test_directory_given_as_key(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="is a directory"):
        load_identity(tmp_path)
