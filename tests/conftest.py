"""Shared fixtures: a real anvil per xdist worker, a fresh ModelRegistry per test, a tmp data dir.

Other areas' tests depend on these names; keep them stable.

``registry_home`` (function)
    A tmp ``REGISTRY_HOME`` (monkeypatched) with every other ``REGISTRY_*`` variable cleared, so
    a test never touches the user's data dir or inherits a key from the environment. Returns the
    Path.

``anvil`` (session, one per xdist worker)
    The npm anvil (``node_modules/.bin/anvil``) on a free 127.0.0.1 port, chain id 31337, no
    persistent state. Yields its RPC URL (str). Killed at the end of the session.

``dev_accounts`` (session)
    anvil's ten well-known accounts as eth-account ``LocalAccount`` objects, funded with 10000 ETH.
    ``dev_accounts[0]`` deploys. These keys are public: the registry refuses them on non-local
    profiles (see registry.keys), so code that goes through ``load_signer`` on the ``deployed``
    profile must use ``deployed.publisher`` instead.

``deployed`` (function)
    A ModelRegistry on ``anvil`` in a pristine state for each test (one deployment per worker,
    then ``evm_snapshot`` before / ``evm_revert`` after each test, so it takes milliseconds).
    Depends on ``registry_home`` and points the default profile at the deployment with
    ``REGISTRY_RPC_URL``/``REGISTRY_CHAIN_ID``/``REGISTRY_CONTRACT`` (so ``load_settings()`` and
    subprocess CLIs see it) with ``REGISTRY_CONFIRMATIONS=0`` (a remote profile otherwise waits for
    ``DEFAULT_REMOTE_CONFIRMATIONS`` blocks, which an on-demand anvil never mines), and sets ``REGISTRY_PRIVATE_KEY`` to ``deployed.publisher``: a fresh,
    funded, non-well-known key, so ``load_signer(load_settings())`` works. Returns a ``Deployed``:
    ``rpc_url``, ``chain_id``, ``address``, ``client`` (a connected RegistryClient), ``publisher``
    (LocalAccount), ``accounts`` (the dev accounts), ``home``, and ``settings()``.
"""

from __future__ import annotations

import secrets
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest

REGISTRY_ENV = (
    "REGISTRY_HOME",
    "REGISTRY_PROFILE",
    "REGISTRY_RPC_URL",
    "REGISTRY_CHAIN_ID",
    "REGISTRY_CONTRACT",
    "REGISTRY_CONFIRMATIONS",
    "REGISTRY_IPFS_API",
    "REGISTRY_CID_PROFILE",
    "REGISTRY_PRIVATE_KEY",
    "REGISTRY_KEYSTORE_PASSWORD",
    "REGISTRY_DEVNET_PORT",
)
DEV_MNEMONIC = "test test test test test test test test test test test junk"
CHAIN_ID = 31337


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under mutmut only: cheapest tests first (see ``_mutation_order``)."""
    from _mutation_order import order_for_mutant

    order_for_mutant(items)


@pytest.fixture
def registry_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in REGISTRY_ENV:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "registry-home"
    home.mkdir()
    monkeypatch.setenv("REGISTRY_HOME", str(home))
    return home


def _start_anvil(log: Path) -> tuple[subprocess.Popen[bytes], str]:
    from registry.chain.devnet import free_port, spawn_anvil, wait_for_rpc
    from registry.errors import ChainError

    last: Exception | None = None
    for _ in range(5):  # a free port can be taken between probing and binding: try another
        port = free_port()
        process = spawn_anvil(port, None, log, detached=False)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for_rpc(url, process, log)
            return process, url
        except ChainError as exc:
            last = exc
            process.kill()
            process.wait()
    raise RuntimeError(f"could not start anvil: {last}")


@pytest.fixture(scope="session")
def anvil(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("anvil") / "anvil.log"
    process, url = _start_anvil(log)
    try:
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def dev_accounts() -> list[Any]:
    from eth_account import Account

    Account.enable_unaudited_hdwallet_features()
    return [Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}") for i in range(10)]


@dataclass
class Deployed:
    rpc_url: str
    chain_id: int
    address: str
    client: Any
    publisher: Any = field(repr=False)
    accounts: list[Any] = field(repr=False)
    home: Path

    def settings(self, profile: str | None = None) -> Any:
        from registry.config import load_settings

        return load_settings(profile)

    def rpc(self, method: str, params: list[Any] | None = None) -> Any:
        """A raw JSON-RPC call (e.g. ``evm_mine``, ``evm_increaseTime``)."""
        response = self.client.w3.provider.make_request(method, params or [])
        if "error" in response:
            raise RuntimeError(f"{method}: {response['error']}")
        return response.get("result")


@pytest.fixture(scope="session")
def _registry_deployment(anvil: str, dev_accounts: list[Any]) -> str:
    from registry.chain.rpc import make_web3
    from registry.chain.tx import deploy_registry

    return deploy_registry(make_web3(anvil), dev_accounts[0])


@pytest.fixture
def deployed(
    anvil: str,
    dev_accounts: list[Any],
    _registry_deployment: str,
    registry_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Deployed]:
    from eth_account import Account

    from registry.chain.client import RegistryClient

    client = RegistryClient.at(anvil, _registry_deployment, CHAIN_ID, timeout_s=5.0, retries=2)
    snapshot = client.w3.provider.make_request("evm_snapshot", [])["result"]
    publisher = Account.from_key("0x" + secrets.token_hex(32))
    client.w3.provider.make_request("anvil_setBalance", [publisher.address, hex(10**21)])
    monkeypatch.setenv("REGISTRY_RPC_URL", anvil)
    monkeypatch.setenv("REGISTRY_CHAIN_ID", str(CHAIN_ID))
    monkeypatch.setenv("REGISTRY_CONTRACT", _registry_deployment)
    # anvil mines only on demand: a remote profile's default confirmation depth would never arrive.
    monkeypatch.setenv("REGISTRY_CONFIRMATIONS", "0")
    monkeypatch.setenv("REGISTRY_PRIVATE_KEY", "0x" + bytes(publisher.key).hex())
    try:
        yield Deployed(
            rpc_url=anvil,
            chain_id=CHAIN_ID,
            address=_registry_deployment,
            client=client,
            publisher=publisher,
            accounts=dev_accounts,
            home=registry_home,
        )
    finally:
        result = client.w3.provider.make_request("evm_revert", [snapshot])
        assert result.get("result") is True, f"evm_revert failed: {result}"
