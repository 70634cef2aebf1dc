"""LeanClient: the verifier's ``ChainReader`` over the lean JSON-RPC path (no web3.py).

Same reads, same answers, same errors as ``RegistryClient``'s read side: records are decoded from
the committed ABI into ``ReleaseRecord``s, a revert is a ``ContractRevert`` with the same hint
(``no release NAME@VERSION``), an alias whose target stopped counting is a ``RevokedError`` or a
``SignatureError``, and references resolve through ``registry.chain.resolve``. Connecting checks
the node's chain id against the profile and that code exists at the contract address.

On the local profile the embedded devnet is normally already running: its recorded deployment is
used after checking, over the lean path, that the code at the address is the build this package
ships. Only when it is not (the chain is down, the state was lost, the contract was rebuilt) does
``registry.chain.devnet.ensure_running`` start or redeploy it, with web3.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from registry.chain.lean import LeanRegistry, artifact_json, hex_data, is_address, keccak, quantity, \
    require_address, require_bytes32, to_checksum_address
from registry.chain.records import AttestationRecord, ReleaseRecord
from registry.errors import ChainError, InputError, RevokedError, SignatureError, UnreachableError

if TYPE_CHECKING:
    from registry.chain.devnet import DevnetInfo
    from registry.config import Settings
    from registry.release import Ref

PAGE = 100
_RELEASE_PUBLISHED = "ReleasePublished(bytes32,bytes32,bytes32,string,string,bytes,uint64,bytes32,bytes,bytes32,bytes," \
                     "bytes32,address,address)"


_address = require_address
_bytes32 = require_bytes32


class LeanClient:
    """A connected ModelRegistry, read-only. Build with ``connect(settings)`` or ``at(rpc_url, contract)``."""

    def __init__(self, registry: LeanRegistry, chain_id: int, rpc_url: str, confirmations: int = 0,
                 retries: int = 3) -> None:
        self.registry = registry
        self.address = registry.address
        self.chain_id = chain_id
        self.rpc_url = rpc_url
        self.confirmations = confirmations
        self.retries = retries

    def __repr__(self) -> str:
        return f"LeanClient(rpc_url={self.rpc_url!r}, chain_id={self.chain_id}, address={self.address!r})"

    # ----------------------------------------------------------------------------------------
    # Connecting

    @classmethod
    def connect(cls, settings: "Settings") -> "LeanClient":
        from registry.chain.reads import profile_target

        rpc_url, contract, chain_id = profile_target(settings, _local_devnet)
        profile = settings.profile
        return cls.at(rpc_url, contract, chain_id, profile.confirmations, profile.timeout_s, profile.retries)

    @classmethod
    def at(cls, rpc_url: str, contract: str, chain_id: int | None = None, confirmations: int = 0,
           timeout_s: float = 10.0, retries: int = 3) -> "LeanClient":
        """Checks the node's chain id (when one is expected) and that code exists at ``contract``."""
        address = _address(contract, "contract address")
        registry = LeanRegistry(rpc_url, address, timeout_s, retries)
        try:
            actual = registry.chain_id()
        except UnreachableError:
            raise
        except ChainError as exc:  # HTML, a JSON error, anything but a JSON-RPC node
            raise ChainError(f"{rpc_url} does not answer like an Ethereum JSON-RPC node ({exc})") from exc
        if chain_id is not None and actual != int(chain_id):
            raise ChainError(f"wrong chain: profile expects chain id {chain_id}, node at {rpc_url} says {actual}")
        if not registry.code():
            raise ChainError(f"no contract at {address} on chain {actual} ({rpc_url})")
        return cls(registry, actual, rpc_url, confirmations, retries)

    def close(self) -> None:
        self.registry.rpc.close()

    # ----------------------------------------------------------------------------------------
    # Releases (the rules and hints of RegistryClient's read side)

    def _view(self, name: str, *args: Any) -> Any:
        return self.registry.call(name, *args)

    def get_by_id(self, release_id: bytes) -> ReleaseRecord:
        return ReleaseRecord.from_abi(self._view("getRelease", _bytes32(release_id, "release id")))

    def get(self, name: str, version: str) -> ReleaseRecord:
        return ReleaseRecord.from_abi(self._hinted("UnknownRelease", f"no release {name}@{version}",
                                                   "getReleaseByVersion", name, version))

    def latest(self, name: str) -> ReleaseRecord:
        return ReleaseRecord.from_abi(self._hinted(
            "NoActiveRelease", f"{name} has no release that is not revoked and whose publisher may still publish it",
            "latest", name))

    def _hinted(self, error: str, hint: str, view: str, *args: Any) -> Any:
        from registry.chain.errors import ContractRevert

        try:
            return self._view(view, *args)
        except ContractRevert as exc:
            if exc.error_name == error:
                raise exc.with_hint(hint) from exc
            raise

    def resolve_alias(self, name: str, alias: str) -> ReleaseRecord:
        """Like ``RegistryClient.resolve_alias``: never the bytes of a release that stopped counting."""
        from registry.chain.errors import ContractRevert

        try:
            info = self._view("resolveAlias", name, alias)
        except ContractRevert as exc:
            if exc.error_name == "UnknownAlias":
                raise exc.with_hint(f"{name} has no alias {alias!r}") from exc
            if exc.error_name in ("ReleaseIsRevoked", "ReleaseNotValid") and exc.error_args:
                target = self.get_by_id(bytes(exc.error_args[0]))
                if exc.error_name == "ReleaseIsRevoked":
                    raise RevokedError(f"{name}@{alias} points at {target.ref}, which was revoked: "
                                       f"{target.revocation_reason or '(no reason given)'}") from exc
                raise SignatureError(f"{name}@{alias} points at {target.ref}, whose publisher {target.publisher} may "
                                     f"no longer publish {name}") from exc
            raise
        return ReleaseRecord.from_abi(info)

    def digest_ids(self, sha256: bytes, limit: int | None = None) -> tuple[list[bytes], bool]:
        """Ids of releases with this artifact SHA-256, newest first, at most ``limit``, and whether that was all."""
        digest = _bytes32(sha256, "sha256 digest")
        ids: list[bytes] = []
        cursor = 0
        while limit is None or len(ids) < limit:
            size = PAGE if limit is None else min(PAGE, limit - len(ids))
            page, cursor = self._view("releasesByDigest", digest, cursor, size)
            if len(page) > size:
                raise ChainError(f"releasesByDigest answered {len(page)} ids for a page of {size}")
            ids.extend(bytes(i) for i in page)
            if cursor == 0:
                break
        return ids, cursor == 0

    def resolve(self, ref: "str | Ref", trusted: Iterable[str] = ()) -> ReleaseRecord:
        from registry.chain.resolve import resolve

        return resolve(self, ref, trusted)  # type: ignore[arg-type]

    def is_valid(self, release_id: bytes) -> bool:
        return bool(self._view("isValid", _bytes32(release_id, "release id")))

    def may_publish(self, name: str, account: str) -> bool:
        return bool(self._view("mayPublish", name, _address(account)))

    def attestation_of(self, release_id: bytes, attester: str) -> AttestationRecord | None:
        found = AttestationRecord.from_abi(self._view("attestationOf", _bytes32(release_id, "release id"),
                                                      _address(attester, "attester address")))
        return found if found.attested_at != 0 else None

    # ----------------------------------------------------------------------------------------
    # Plain chain reads

    def get_code(self, address: str) -> bytes:
        return self.registry.code(_address(address))

    def eth_call(self, to: str, data: bytes) -> bytes:
        return self.registry.eth_call(_address(to), bytes(data))

    @property
    def block_number(self) -> int:
        return quantity(self.registry.rpc.request("eth_blockNumber", []), "eth_blockNumber")

    def published_in(self, release_id: bytes) -> tuple[int, bytes] | None:
        """(block number, transaction hash) of the release's latest ReleasePublished event, if any."""
        topics = ["0x" + keccak(_RELEASE_PUBLISHED.encode()).hex(), "0x" + _bytes32(release_id, "release id").hex()]
        logs = self.registry.rpc.request("eth_getLogs", [{"address": self.address, "fromBlock": "0x0",
                                                          "toBlock": "latest", "topics": topics}])
        if not logs:
            return None
        last = logs[-1]
        block, tx = last.get("blockNumber"), last.get("transactionHash")
        if not isinstance(block, str) or not isinstance(tx, str):
            raise ChainError("eth_getLogs answered a log without blockNumber or transactionHash")
        tx_hash = hex_data(tx, "eth_getLogs")
        if len(tx_hash) != 32:
            raise ChainError("eth_getLogs answered a transaction hash that is not 32 bytes")
        return quantity(block, "eth_getLogs"), tx_hash

    def transaction_input(self, tx_hash: bytes) -> bytes:
        tx = self.registry.rpc.request("eth_getTransactionByHash", ["0x" + bytes(tx_hash).hex()])
        if tx is None:
            raise ChainError(f"the node does not know transaction 0x{bytes(tx_hash).hex()}")
        data = tx.get("input", tx.get("data"))
        if not isinstance(data, str):
            raise ChainError("eth_getTransactionByHash answered a transaction without input")
        return hex_data(data, "eth_getTransactionByHash")


def _local_devnet(settings: "Settings") -> "DevnetInfo":
    info = _running_devnet(settings)
    if info is None:
        from registry.chain.devnet import ensure_running

        info = ensure_running(settings)
    return info


def _running_devnet(settings: "Settings") -> "DevnetInfo | None":
    """The embedded devnet's recorded deployment when anvil runs and the code there is this build's,
    read without web3 and without starting anything; None whenever ``ensure_running`` has work to do."""
    from registry import procinfo
    from registry.chain import devnet, durable

    try:
        paths = durable.Paths(settings.chain_dir)
        node = durable.read_node(paths)
        # only the node this data dir launched, proven as ensure_running proves it (pid + start time,
        # listening on its port, its chain carrying the fingerprint): never a stranger on the port
        if node is None or node.fingerprint is None or not node.alive() \
                or not procinfo.listens_on(node.pid, node.port):
            return None
        deployment = durable.read_json(paths.deployment) or {}
        address = deployment.get("address")
        if not isinstance(address, str) or not is_address(address):
            return None
        shipped = "0x" + keccak(bytes.fromhex(artifact_json()["deployedBytecode"].removeprefix("0x"))).hex()
        if deployment.get("artifact_hash") not in (None, shipped):
            return None
        rpc_url = node.rpc_url
        reader = LeanRegistry(rpc_url, address, timeout=2.0, retries=0)
        if reader.chain_id() != devnet.CHAIN_ID or reader.rpc.request(
                "eth_getStorageAt", [devnet.FINGERPRINT_ADDRESS, "0x0", "latest"]) != node.fingerprint:
            return None
        code = reader.code()
    except (AttributeError, OSError, ValueError, ChainError, UnreachableError, InputError):
        return None  # anything unexpected: let ensure_running sort it out
    if not code or deployment.get("code_hash") not in (None, "0x" + keccak(code).hex()):
        return None
    return devnet.DevnetInfo(rpc_url=rpc_url, chain_id=devnet.CHAIN_ID, contract=to_checksum_address(address))
