"""Where the registry keeps its state, and which chain and store a command talks to.

A *profile* names one deployment: the embedded ``local`` profile (an anvil the tool starts itself,
a block store in the data dir) or any EVM chain by RPC URL, chain id and contract address. Profiles
live in ``<data dir>/profiles.toml``; environment variables override them so CI needs no files:

``REGISTRY_HOME``         data dir (default ``$XDG_DATA_HOME/registry`` or ``~/.local/share/registry``)
``REGISTRY_PROFILE``      profile name (default ``local``)
``REGISTRY_RPC_URL``      RPC URL of the profile
``REGISTRY_CHAIN_ID``     expected chain id (checked against the node)
``REGISTRY_CONTRACT``     ModelRegistry address
``REGISTRY_CONFIRMATIONS`` blocks to wait after a transaction's receipt (a remote profile defaults to
                          ``DEFAULT_REMOTE_CONFIRMATIONS``, the local chain to 0)
``REGISTRY_IPFS_API``     Kubo RPC URL; when set the profile stores content on that node
``REGISTRY_CID_PROFILE``  UnixFS profile for new content (``kubo-v1`` by default)
``REGISTRY_PRIVATE_KEY``  signing key for CI (never printed or logged)
``REGISTRY_KEYSTORE_PASSWORD`` password for the keystore key (else the CLI prompts on a terminal)
``REGISTRY_DEVNET_PORT``  port for the embedded anvil (default: the last one used, else 8545, else a free one)
``REGISTRY_ANVIL``        anvil binary (default: ``node_modules/.bin/anvil`` beside the package or the cwd)
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Mapping

import tomli_w

from registry.errors import InputError
from registry.fsutil import atomic_write

LOCAL = "local"
DEFAULT_CID_PROFILE = "kubo-v1"
# Blocks a remote profile waits on top of a transaction before trusting it (the customary safe depth
# on Ethereum; raise it for finality). The embedded chain mines on demand and has no reorgs: 0.
DEFAULT_REMOTE_CONFIRMATIONS = 12


@dataclass(frozen=True)
class Profile:
    """One deployment of the registry: a chain, a contract on it and a content store.

    ``rpc_url is None`` means the embedded local chain, which the tool starts and deploys itself.
    ``store`` is ``local`` (blocks under the data dir), ``kubo:<rpc url>`` or ``gateway:<url>``.
    """

    name: str = LOCAL
    rpc_url: str | None = None
    chain_id: int | None = None
    contract: str | None = None
    confirmations: int = 0
    store: str = "local"
    cid_profile: str = DEFAULT_CID_PROFILE
    timeout_s: float = 10.0
    retries: int = 3

    @property
    def is_local(self) -> bool:
        return self.rpc_url is None


@dataclass(frozen=True)
class Settings:
    """Everything a command needs to know about its environment, resolved once."""

    home: Path
    profile: Profile
    private_key_env: str | None = field(default=None, repr=False)

    @property
    def keystore_dir(self) -> Path:
        return self.home / "keystore"

    @property
    def blocks_dir(self) -> Path:
        return self.home / "blocks"

    @property
    def chain_dir(self) -> Path:
        return self.home / "chain"


def data_dir(env: Mapping[str, str] | None = None) -> Path:
    """The data dir: ``REGISTRY_HOME``, else the XDG data home, else ``~/.local/share``."""
    env = os.environ if env is None else env
    if env.get("REGISTRY_HOME"):
        return Path(env["REGISTRY_HOME"]).expanduser()
    base = Path(env["XDG_DATA_HOME"]).expanduser() if env.get("XDG_DATA_HOME") else Path.home() / ".local" / "share"
    return base / "registry"


def profiles_path(home: Path) -> Path:
    return home / "profiles.toml"


def read_profiles(home: Path) -> dict[str, Profile]:
    """All profiles in the data dir, plus the built-in ``local`` one."""
    profiles = {LOCAL: Profile()}
    path = profiles_path(home)
    if not path.exists():
        return profiles
    from registry.fsutil import read_small_file

    try:  # a regular file of at most 1 MiB: a FIFO planted in the data dir must not hang every command
        raw = tomllib.loads(read_small_file(path, limit=1 << 20, what="profiles").decode("utf-8"))
    except (tomllib.TOMLDecodeError, ValueError, RecursionError) as exc:
        raise InputError(f"cannot read {path}: {str(exc)[:200]}") from exc
    known = set(Profile.__dataclass_fields__) - {"name"}
    for name, table in raw.get("profiles", {}).items():
        if not isinstance(table, dict):
            raise InputError(f"{path}: profile {name!r} is not a table")
        unknown = set(table) - known
        if unknown:
            raise InputError(f"{path}: profile {name!r} has unknown keys {sorted(unknown)}")
        if table.get("rpc_url") is not None and "confirmations" not in table:
            table = {**table, "confirmations": DEFAULT_REMOTE_CONFIRMATIONS}
        try:
            profiles[name] = Profile(name=name, **table)
        except TypeError as exc:
            raise InputError(f"{path}: profile {name!r}: {exc}") from exc
    return profiles


def write_profile(home: Path, profile: Profile) -> None:
    """Adds or replaces a profile, atomically (write a temp file, then rename)."""
    path = profiles_path(home)
    current = {n: p for n, p in read_profiles(home).items() if n != LOCAL or p != Profile()}
    current[profile.name] = profile
    tables = {
        n: {k: v for k, v in asdict(p).items() if k != "name" and v is not None} for n, p in sorted(current.items())
    }
    atomic_write(path, tomli_w.dumps({"profiles": tables}).encode())


def _env_overrides(profile: Profile, env: Mapping[str, str]) -> Profile:
    changes: dict[str, object] = {}
    try:
        if env.get("REGISTRY_RPC_URL"):
            changes["rpc_url"] = env["REGISTRY_RPC_URL"]
        if env.get("REGISTRY_CHAIN_ID"):
            changes["chain_id"] = int(env["REGISTRY_CHAIN_ID"])
        if env.get("REGISTRY_CONTRACT"):
            changes["contract"] = env["REGISTRY_CONTRACT"]
        if env.get("REGISTRY_CONFIRMATIONS"):
            changes["confirmations"] = int(env["REGISTRY_CONFIRMATIONS"])
        elif profile.is_local and "rpc_url" in changes:
            # The local profile pointed at a remote node by environment is a remote profile.
            changes["confirmations"] = DEFAULT_REMOTE_CONFIRMATIONS
    except ValueError as exc:
        raise InputError(f"bad REGISTRY_* number: {exc}") from exc
    if env.get("REGISTRY_IPFS_API"):
        changes["store"] = "kubo:" + env["REGISTRY_IPFS_API"]
    if env.get("REGISTRY_CID_PROFILE"):
        changes["cid_profile"] = env["REGISTRY_CID_PROFILE"]
    return replace(profile, **changes) if changes else profile


def load_settings(profile: str | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Resolves the data dir and the profile (argument, then ``REGISTRY_PROFILE``, then ``local``)."""
    env = os.environ if env is None else env
    home = data_dir(env)
    name = profile or env.get("REGISTRY_PROFILE") or LOCAL
    profiles = read_profiles(home)
    if name not in profiles:
        raise InputError(f"unknown profile {name!r} (known: {', '.join(sorted(profiles))})")
    return Settings(
        home=home,
        profile=_env_overrides(profiles[name], env),
        private_key_env=env.get("REGISTRY_PRIVATE_KEY") or None,
    )
