"""`bleepline keygen`, and reading an identity's passphrase for any command that needs one."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from bleepline.errors import BleeplineError
from bleepline.store.keys import (
    PASSPHRASE_ENV,
    Identity,
    is_passphrase_protected,
    load_identity,
    write_key_pair,
)

__all__ = ["PASSPHRASE_ENV", "open_identity", "run_keygen"]


def run_keygen(args: argparse.Namespace) -> int:
    passphrase = _new_passphrase() if args.passphrase else None
    identity = Identity.generate()
    public_path, private_path = write_key_pair(args.out, identity, passphrase)
    print(f"key id          {identity.key_id}")
    print(f"recipient key   {public_path}   (give this to the relay: it encrypts to it)")
    print(f"identity        {private_path}   (mode 0600; reviewers only, never on the relay)")
    if passphrase:
        print("                protected with a passphrase")
    return 0


def open_identity(path: Path) -> Identity:
    """Load an identity, asking for its passphrase (env var first, then the terminal) if it has one."""
    passphrase = None
    if is_passphrase_protected(path):
        passphrase = _existing_passphrase(path)
    return load_identity(path, passphrase)


def _existing_passphrase(path: Path) -> bytes | None:
    from_env = os.environ.get(PASSPHRASE_ENV)
    if from_env:
        return from_env.encode()
    if not sys.stdin.isatty():
        return None  # load_identity then says how to provide it
    return getpass.getpass(f"passphrase for {path}: ").encode()


def _new_passphrase() -> bytes:
    from_env = os.environ.get(PASSPHRASE_ENV)
    if from_env:
        return from_env.encode()
    if not sys.stdin.isatty():
        raise BleeplineError(f"--passphrase needs ${PASSPHRASE_ENV} set, or a terminal to ask in")
    first = getpass.getpass("new passphrase: ")
    if not first:
        raise BleeplineError("empty passphrase: leave out --passphrase for an unprotected key")
    if getpass.getpass("repeat passphrase: ") != first:
        raise BleeplineError("the passphrases do not match")
    return first.encode()
