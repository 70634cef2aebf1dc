"""Signing keys: encrypted keystores, a CI key from the environment, and anvil's dev key.

Which key signs is decided in one place, in a fixed order, so a command never signs with a key
the user did not expect:

1. ``REGISTRY_PRIVATE_KEY`` (CI). It is never printed, logged, put in an exception message or in
   a repr; a malformed value is reported without echoing it.
2. An eth-account (Web3 Secret Storage v3, scrypt) keystore in ``settings.keystore_dir``: the
   account given, or the only key there. Password from the argument, ``REGISTRY_KEYSTORE_PASSWORD``
   or the caller's prompt; a wrong one is a KeyAccessError naming the keystore.
3. On the local profile only, anvil's well-known dev key #0, flagged so the CLI can warn loudly.

Anvil's ten well-known accounts are public knowledge, so any of them is refused on a non-local
profile, whichever way it arrives: ``REGISTRY_PRIVATE_KEY``, a keystore, or a key named by the
caller (``signer_from_env_var``, behind ``registry oracle run --key-env``).
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import is_address, to_checksum_address

from registry.config import Settings
from registry.errors import InputError, KeyAccessError, RegistryError
from registry.fsutil import atomic_write

PASSWORD_ENV = "REGISTRY_KEYSTORE_PASSWORD"
PRIVATE_KEY_ENV = "REGISTRY_PRIVATE_KEY"
MAX_KEYFILE_BYTES = 64 * 1024  # a scrypt keystore is ~500 bytes
DEV_KEY_0 = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
# Addresses of anvil's (and Hardhat's) default accounts, from the public "test … junk" mnemonic.
WELL_KNOWN_DEV_ADDRESSES = frozenset(
    {
        "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
        "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
        "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
        "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65",
        "0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc",
        "0x976EA74026E726554dB657fA54763abd0C3a0aa9",
        "0x14dC79964da2C08b23698B3D3cc7Ca32193d9955",
        "0x23618e81E3f5cdF7f54C3d65f7FBc0aBf5B21E8f",
        "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720",
    }
)
DEV_KEY_WARNING = (
    "signing with anvil's well-known dev key #0 (0xf39F…2266): its private key is public; "
    "fine for the local chain, never for a real one (use `registry key new`)"
)


class DevKeyWarning(UserWarning):
    """Emitted by ``load_signer`` when it falls back to the public anvil dev key."""


@dataclass(frozen=True)
class KeyInfo:
    """One keystore file."""

    address: str
    path: Path

    def to_json(self) -> dict[str, Any]:
        return {"address": self.address, "path": str(self.path)}


@dataclass(frozen=True)
class Signer:
    """The chosen key and where it came from. The account (and its key) stays out of the repr."""

    account: LocalAccount = field(repr=False)
    source: Literal["env", "keystore", "dev"]
    address: str
    warning: str | None = None


# --------------------------------------------------------------------------------------------
# Keystore files
# --------------------------------------------------------------------------------------------


def _keystore_path(settings: Settings, address: str) -> Path:
    return settings.keystore_dir / f"{to_checksum_address(address)}.json"


def _write_private(path: Path, data: bytes) -> None:
    """Atomic and private from the first byte: a 0600 temp file, fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    atomic_write(path, data, mode=0o600)


def _parse_private_key(text: str, what: str) -> LocalAccount:
    """A LocalAccount from hex; the error never contains the (possibly secret) input."""
    value = text.strip()
    try:
        return Account.from_key(value)
    except Exception:
        raise KeyAccessError(f"{what} is not a valid private key (expected 32 bytes as 64 hex characters)") from None


def _store(settings: Settings, account: LocalAccount, password: str, iterations: int | None) -> KeyInfo:
    if not password:
        raise InputError("refusing to store a key with an empty password")
    path = _keystore_path(settings, account.address)
    if path.exists():
        raise InputError(f"key {account.address} is already in the keystore ({path})")
    keyfile = Account.encrypt(account.key, password, kdf="scrypt", iterations=iterations)
    _write_private(path, json.dumps(keyfile).encode("utf-8"))
    return KeyInfo(address=account.address, path=path)


def new_key(settings: Settings, password: str, iterations: int | None = None) -> KeyInfo:
    """A fresh random key, encrypted. ``iterations`` (scrypt n) is lowered only by tests."""
    return _store(settings, Account.create(), password, iterations)


def import_key(settings: Settings, private_key: str, password: str, iterations: int | None = None) -> KeyInfo:
    """Encrypts an existing hex private key into the keystore."""
    return _store(settings, _parse_private_key(private_key, "the imported key"), password, iterations)


def list_keys(settings: Settings) -> list[KeyInfo]:
    """Keystore files in the keystore dir (unreadable or foreign files are skipped)."""
    keys: list[KeyInfo] = []
    if not settings.keystore_dir.is_dir():
        return keys
    for path in sorted(settings.keystore_dir.glob("*.json")):
        try:
            data = _read_keyfile(path)
            address = to_checksum_address("0x" + str(data["address"]).removeprefix("0x"))
        except (RegistryError, ValueError, KeyError, TypeError):
            continue  # a FIFO, a device or garbage planted in the keystore is skipped, never waited on
        keys.append(KeyInfo(address=address, path=path))
    return keys


def _find_key(settings: Settings, account: str | None) -> KeyInfo | None:
    keys = list_keys(settings)
    if account is None:
        if len(keys) > 1:
            raise KeyAccessError(
                f"{len(keys)} keys in {settings.keystore_dir}: choose one with --account ADDRESS"
            )
        return keys[0] if keys else None
    if not is_address(account):
        raise InputError(f"invalid account {account!r}: expected a 0x address")
    wanted = to_checksum_address(account)
    for key in keys:
        if key.address == wanted:
            return key
    raise KeyAccessError(f"no keystore for {wanted} in {settings.keystore_dir}")


def _read_keyfile(path: Path) -> Any:
    from registry.fsutil import read_small_file
    from registry.strictjson import parse_json_strict

    raw = read_small_file(path, limit=MAX_KEYFILE_BYTES, what="keystore", error=KeyAccessError)
    return parse_json_strict(raw, what=f"keystore {path.name}", limit=MAX_KEYFILE_BYTES, error=KeyAccessError)


def unlock(key: KeyInfo, password: str) -> LocalAccount:
    keyfile = _read_keyfile(key.path)
    if not isinstance(keyfile, dict):
        raise KeyAccessError(f"keystore {key.path} is not a JSON object")
    try:
        secret = Account.decrypt(keyfile, password)
    except Exception:
        raise KeyAccessError(f"wrong password for keystore {key.address}") from None
    return Account.from_key(secret)


# --------------------------------------------------------------------------------------------
# Choosing the signer
# --------------------------------------------------------------------------------------------


def _refuse_dev_key_off_local(settings: Settings, address: str) -> None:
    if not settings.profile.is_local and address in WELL_KNOWN_DEV_ADDRESSES:
        raise KeyAccessError(
            f"refusing anvil's well-known dev account {address} on profile {settings.profile.name!r}: "
            "its private key is public; use your own key"
        )


def resolve_signer(
    settings: Settings,
    account: str | None = None,
    password: str | None = None,
    prompt: Callable[[str], str] | None = None,
) -> Signer:
    """Picks the signing key (see the module docstring for the order)."""
    env_key = settings.private_key_env
    if env_key:
        env_account = _parse_private_key(env_key, PRIVATE_KEY_ENV)
        if account is None or (is_address(account) and to_checksum_address(account) == env_account.address):
            _refuse_dev_key_off_local(settings, env_account.address)
            return Signer(account=env_account, source="env", address=env_account.address)
    key = _find_key(settings, account)
    if key is not None:
        _refuse_dev_key_off_local(settings, key.address)
        secret = password if password is not None else os.environ.get(PASSWORD_ENV)
        if secret is None and prompt is not None:
            secret = prompt(f"password for keystore {key.address}")
        if secret is None:
            raise KeyAccessError(f"keystore {key.address} is locked: set {PASSWORD_ENV} or run interactively")
        unlocked = unlock(key, secret)
        return Signer(account=unlocked, source="keystore", address=unlocked.address)
    if settings.profile.is_local:
        dev = Account.from_key(DEV_KEY_0)
        return Signer(account=dev, source="dev", address=dev.address, warning=DEV_KEY_WARNING)
    raise KeyAccessError(
        f"no signing key for profile {settings.profile.name!r}: create one with `registry key new`, "
        f"import one with `registry key import`, or set {PRIVATE_KEY_ENV}"
    )


def signer_from_env_var(settings: Settings, variable: str) -> Signer:
    """The key held in the environment variable ``variable`` (never echoed), with the same
    well-known-key rule as every other path."""
    value = os.environ.get(variable)
    if not value:
        raise KeyAccessError(f"environment variable {variable} is not set")
    account = _parse_private_key(value, variable)
    _refuse_dev_key_off_local(settings, account.address)
    warning = None
    if account.address in WELL_KNOWN_DEV_ADDRESSES:
        warning = (f"signing with anvil's well-known dev account {account.address}: its private key is public; "
                   "fine for the local chain, never for a real one")
    return Signer(account=account, source="env", address=account.address, warning=warning)


def load_signer(settings: Settings, account: str | None = None, password: str | None = None) -> LocalAccount:
    """The signing account; warns (DevKeyWarning) when it is the public anvil dev key."""
    signer = resolve_signer(settings, account, password)
    if signer.warning:
        warnings.warn(signer.warning, DevKeyWarning, stacklevel=2)
    return signer.account
