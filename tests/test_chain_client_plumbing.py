"""RegistryClient's edges: which argument an error names, that the client's RPC URL, retries and
confirmations reach every read, write and wait (seen through a node that flakes), the defaults a
hand-built client gets, and the reads the verifier relies on cross-checked against the contract."""

from __future__ import annotations

import json
import re
import socket
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from eth_account import Account
from eth_utils import keccak

from registry.chain.client import RegistryClient, TxResult
from registry.chain.rpc import make_web3
from registry.config import Profile, Settings
from registry.errors import ChainError, InputError, RegistryError, UnreachableError
from registry.release import signing_digest
from tests._rpc_proxy import RpcProxy
from tests.test_chain_client import make_release

RID = b"\x01" * 32
SHORT = b"\x01" * 31
BAD_ADDRESS = "0x1234"
SENDER = Account.create()


# ------------------------------------------------------------------------------------------
# A malformed argument is refused before any RPC, and the error names which argument it was
# ------------------------------------------------------------------------------------------


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A port that is bound but not listening: connections are refused, and nobody else can take it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


@pytest.fixture
def offline_client(refused_url: str) -> RegistryClient:
    """A client whose node is down, without retries: any RPC would end in UnreachableError at once."""
    return RegistryClient(make_web3(refused_url, 0.5), "0x" + "11" * 20, 31337, refused_url, retries=0)


def _publish_with_bad_publisher(c: RegistryClient) -> Any:
    return c.publish(make_release(), b"\x00" * 65, BAD_ADDRESS, SENDER)


ARGUMENT_CASES: list[tuple[str, Callable[[RegistryClient], Any], str]] = [
    ("get_by_id", lambda c: c.get_by_id(SHORT), "release id must be 32 bytes"),
    ("is_revoked", lambda c: c.is_revoked(SHORT), "release id must be 32 bytes"),
    ("is_active", lambda c: c.is_active(SHORT), "release id must be 32 bytes"),
    ("is_valid", lambda c: c.is_valid(SHORT), "release id must be 32 bytes"),
    ("lineage_ok", lambda c: c.lineage_ok(SHORT), "release id must be 32 bytes"),
    ("published_in", lambda c: c.published_in(SHORT), "release id must be 32 bytes"),
    ("revoke", lambda c: c.revoke(SHORT, "bad", SENDER), "release id must be 32 bytes"),
    ("attest id", lambda c: c.attest(SHORT, True, RID, SENDER), "release id must be 32 bytes"),
    ("attest report", lambda c: c.attest(RID, True, SHORT, SENDER), "report sha256 must be 32 bytes"),
    ("attestation_count", lambda c: c.attestation_count(SHORT), "release id must be 32 bytes"),
    ("attestations", lambda c: c.attestations(SHORT), "release id must be 32 bytes"),
    ("attestation_of id", lambda c: c.attestation_of(SHORT, SENDER.address), "release id must be 32 bytes"),
    ("attestation_of attester", lambda c: c.attestation_of(RID, BAD_ADDRESS), "invalid attester address '0x1234'"),
    ("attested_by", lambda c: c.attested_by(BAD_ADDRESS), "invalid attester address '0x1234'"),
    ("next_nonce", lambda c: c.next_nonce(BAD_ADDRESS), "invalid publisher address '0x1234'"),
    ("publish", _publish_with_bad_publisher, "invalid publisher address '0x1234'"),
    ("digest_page", lambda c: c.digest_page(SHORT), "sha256 digest must be 32 bytes"),
    ("by_digest", lambda c: c.by_digest(SHORT), "sha256 digest must be 32 bytes"),
    ("eth_call", lambda c: c.eth_call(BAD_ADDRESS, b""), "invalid address '0x1234'"),
]


@pytest.mark.parametrize("call, message", [case[1:] for case in ARGUMENT_CASES], ids=[c[0] for c in ARGUMENT_CASES])
def test_a_malformed_argument_is_named_before_any_rpc(
    offline_client: RegistryClient, call: Callable[[RegistryClient], Any], message: str
) -> None:
    """The node is down: reaching it would be UnreachableError, so the InputError proves nothing was
    sent, and its first words tell the user which of several arguments was wrong."""
    with pytest.raises(InputError) as info:
        call(offline_client)
    assert str(info.value).startswith(message), str(info.value)


# ------------------------------------------------------------------------------------------
# A JSON-RPC proxy in front of anvil that flakes on demand
# ------------------------------------------------------------------------------------------


class FlakyProxy(RpcProxy):
    """Forwards JSON-RPC to anvil, but answers HTTP 503 to the next ``n`` calls of a chosen method
    (``fail``). Records every method it was asked for, in order."""

    def __init__(self, upstream: str) -> None:
        self.failures: dict[str, int] = {}
        self.calls: list[str] = []
        super().__init__(upstream, self._flake)

    def _flake(self, body: Any) -> tuple[int, bytes] | None:
        method = str(body.get("method"))
        self.calls.append(method)
        if self.failures.get(method, 0) > 0:
            self.failures[method] -= 1
            return 503, b""
        return None

    def fail(self, method: str, times: int = 1) -> None:
        self.failures[method] = times


@pytest.fixture
def proxy(deployed) -> Iterator[FlakyProxy]:
    flaky = FlakyProxy(deployed.rpc_url)
    try:
        yield flaky
    finally:
        flaky.close()


def _unreachable(url: str, attempts: int) -> str:
    return re.escape(f"RPC node at {url} did not answer after {attempts} attempts (HTTP 503)")


@pytest.fixture
def short_confirmation_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wait for blocks that anvil (mining on demand) never mines fails in about a second, not minutes."""
    import registry.chain.confirm as confirm

    monkeypatch.setattr(confirm, "RECEIPT_TIMEOUT_S", 1.0)
    monkeypatch.setattr(confirm, "CONFIRMATION_WAIT_S", 0.0)


# ------------------------------------------------------------------------------------------
# Retries and the node's URL reach reads, the connection checks, writes and confirmation waits
# ------------------------------------------------------------------------------------------


def test_reads_retry_as_configured_and_name_the_node(deployed, proxy: FlakyProxy) -> None:
    strict = RegistryClient.at(proxy.url, deployed.address, 31337, retries=0)
    proxy.fail("eth_call")
    with pytest.raises(UnreachableError, match=_unreachable(proxy.url, 1)):
        strict.release_count("acme/demo")
    patient = RegistryClient.at(proxy.url, deployed.address, 31337, retries=1)
    proxy.fail("eth_call")
    before = proxy.calls.count("eth_call")
    assert patient.release_count("acme/demo") == 0  # the one flake is absorbed by the retry
    assert proxy.calls.count("eth_call") == before + 2


def test_the_contract_check_retries_as_configured_and_names_the_node(deployed, proxy: FlakyProxy) -> None:
    proxy.fail("eth_getCode")
    with pytest.raises(UnreachableError, match=_unreachable(proxy.url, 1)):
        RegistryClient.at(proxy.url, deployed.address, 31337, retries=0)
    proxy.fail("eth_getCode")
    assert RegistryClient.at(proxy.url, deployed.address, 31337, retries=1).chain_id == 31337


def test_writes_retry_as_configured_and_name_the_node(deployed, proxy: FlakyProxy) -> None:
    alice = deployed.accounts[1]
    strict = RegistryClient.at(proxy.url, deployed.address, 31337, retries=0)
    proxy.fail("eth_estimateGas")
    with pytest.raises(RegistryError, match=re.escape(f"the RPC node at {proxy.url} stopped answering")):
        strict.commit_namespace("flaky", alice)
    patient = RegistryClient.at(proxy.url, deployed.address, 31337, retries=1)
    proxy.fail("eth_estimateGas")
    result, _salt = patient.commit_namespace("flaky", alice)
    assert result.block_number == patient.block_number


def test_a_node_lost_while_waiting_for_confirmations_is_named(
    deployed, proxy: FlakyProxy, short_confirmation_waits: None
) -> None:
    """The write landed; the wait for its confirmations then meets a node that stops answering: with
    no retries that is UnreachableError naming the node, not a silent success or a long hang."""
    client = RegistryClient.at(proxy.url, deployed.address, 31337, confirmations=1, retries=0)
    proxy.fail("eth_blockNumber")
    with pytest.raises(UnreachableError, match=_unreachable(proxy.url, 1)):
        client.commit_namespace("waiting", deployed.accounts[1])
    assert proxy.failures["eth_blockNumber"] == 0  # the failure was met during the wait


# ------------------------------------------------------------------------------------------
# Defaults: a client built by hand or by ``at`` behaves like a default profile
# ------------------------------------------------------------------------------------------


def test_default_retries_match_the_profile_default(refused_url: str) -> None:
    attempts = Profile().retries + 1
    with pytest.raises(UnreachableError, match=re.escape(f"did not answer after {attempts} attempts")):
        RegistryClient.at(refused_url, "0x" + "11" * 20)
    client = RegistryClient(make_web3(refused_url, 0.5), "0x" + "11" * 20, 31337, refused_url)
    with pytest.raises(UnreachableError, match=re.escape(f"did not answer after {attempts} attempts")):
        client.release_count("acme/demo")


def test_a_hand_built_client_does_not_wait_for_confirmations(deployed, short_confirmation_waits: None) -> None:
    """Like the local profile (confirmations 0): a write returns with its receipt, on a chain that
    mines nothing more."""
    assert Profile().confirmations == 0
    client = RegistryClient(make_web3(deployed.rpc_url), deployed.address, 31337, deployed.rpc_url)
    result, _salt = client.commit_namespace("quick", deployed.accounts[1])
    assert result.block_number == client.block_number


# ------------------------------------------------------------------------------------------
# connect: the profile's chain id, confirmations, timeout and retries reach the client
# ------------------------------------------------------------------------------------------


def _remote_settings(home: Path, url: str, address: str, **changes: Any) -> Settings:
    profile = Profile(name="remote", rpc_url=url, chain_id=31337, contract=address, confirmations=0,
                      timeout_s=5.0, retries=0)
    return Settings(home=home, profile=Profile(**{**profile.__dict__, **changes}))


def test_connect_checks_the_profiles_chain_id(deployed) -> None:
    settings = _remote_settings(deployed.home, deployed.rpc_url, deployed.address, chain_id=1)
    with pytest.raises(ChainError, match="wrong chain: profile expects chain id 1"):
        RegistryClient.connect(settings)


def test_connect_applies_the_profiles_retries_and_confirmations(
    deployed, proxy: FlakyProxy, tmp_path: Path, short_confirmation_waits: None
) -> None:
    home = tmp_path / "remote-home"
    client = RegistryClient.connect(_remote_settings(home, proxy.url, deployed.address))
    alice = deployed.accounts[1]
    result, _salt = client.commit_namespace("profiled", alice)  # confirmations 0: no wait
    assert result.block_number == client.block_number
    proxy.fail("eth_call")  # retries 0: the first flake is final
    with pytest.raises(UnreachableError, match=_unreachable(proxy.url, 1)):
        client.release_count("acme/demo")
    # A remote chain's writes take the data dir's per-key lock (one nonce at a time per key).
    from registry.chain.nonces import lock_path

    assert lock_path(home / "locks", alice.address).is_file()


def test_connect_applies_the_profiles_confirmations(deployed, tmp_path: Path) -> None:
    """A profile asking for 2 confirmations: the write returns only once 2 blocks sit on it."""
    client = RegistryClient.connect(_remote_settings(tmp_path, deployed.rpc_url, deployed.address, confirmations=2))
    stop = threading.Event()

    def miner() -> None:
        while not stop.is_set():
            stop.wait(0.2)
            deployed.rpc("evm_mine")

    thread = threading.Thread(target=miner, daemon=True)
    thread.start()
    try:
        result, _salt = client.commit_namespace("deep", deployed.accounts[1])
    finally:
        stop.set()
        thread.join()
    assert client.block_number >= result.block_number + 2


def test_connect_on_the_local_profile_starts_the_devnet(registry_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The embedded profile needs no URL or contract: connect starts anvil, deploys, and connects."""
    from registry.chain import devnet
    from registry.config import load_settings

    monkeypatch.setenv("REGISTRY_DEVNET_PORT", str(devnet.free_port()))
    settings = load_settings()
    assert settings.profile.is_local
    try:
        client = RegistryClient.connect(settings)
        info = devnet.ensure_running(settings)
        assert (client.rpc_url, client.address, client.chain_id) == (info.rpc_url, info.contract, 31337)
        assert client.release_count("acme/demo") == 0
    finally:
        devnet.stop(settings)


# ------------------------------------------------------------------------------------------
# The reads the verifier relies on, against the contract
# ------------------------------------------------------------------------------------------


def test_signing_digest_is_the_contracts_own(deployed) -> None:
    """The digest a publisher signs is the one ModelRegistry checks (``hashRelease``), and it binds
    the release's fields, the chain and the contract."""
    client = deployed.client
    one, two = make_release(version="1.0.0"), make_release(version="2.0.0")
    assert client.signing_digest(one) == client.hash_release(one) == signing_digest(one, 31337, deployed.address)
    assert client.hash_release(two) == client.signing_digest(two) != client.signing_digest(one)
    assert client.signing_digest(one) != signing_digest(one, 1, deployed.address)
    alice = deployed.accounts[1]
    signature = client.sign(one, alice)
    assert Account._recover_hash(client.signing_digest(one), signature=signature) == alice.address


def test_max_lineage_depth_is_the_documented_64(deployed) -> None:
    assert deployed.client.max_lineage_depth() == 64  # PredictionFeed and IModelRegistry document 64


def test_eth_call_returns_the_contracts_answer(deployed) -> None:
    selector = keccak(text="MAX_LINEAGE_DEPTH()")[:4]
    assert deployed.client.eth_call(deployed.address.lower(), selector) == (64).to_bytes(32, "big")
    release = make_release()
    data = bytes.fromhex(deployed.client.contract.encode_abi("hashRelease", [release.as_tuple()])[2:])
    digest = deployed.client.eth_call(deployed.address, data)
    assert digest == signing_digest(release, 31337, deployed.address)


def test_published_in_finds_each_releases_own_transaction(deployed) -> None:
    client, alice = deployed.client, deployed.accounts[1]
    client.claim_namespace("acme", alice)
    first = client.sign_and_publish(make_release(version="1.0.0"), alice)
    first_block = client.block_number
    second = client.sign_and_publish(make_release(version="2.0.0"), alice)
    for record, block in ((first, first_block), (second, client.block_number)):
        found = client.published_in(record.id)
        assert found is not None and found[0] == block
        assert found[1] == bytes(client.w3.eth.get_block(block)["transactions"][0])
        sent = client.transaction_input(found[1])
        assert record.artifact_sha256 in sent  # that transaction published this release
    assert client.published_in(b"\x02" * 32) is None


def test_attest_records_the_verdict_given(deployed) -> None:
    client, alice, auditor = deployed.client, deployed.accounts[1], deployed.accounts[2]
    client.claim_namespace("acme", alice)
    record = client.sign_and_publish(make_release(), alice)
    report = b"\x07" * 32
    result = client.attest(record.id, True, report, auditor)
    found = client.attestation_of(record.id, auditor.address)
    assert found is not None and (found.passed, found.report_sha256) == (True, report)
    assert result.to_json() == {"tx_hash": result.tx_hash, "block_number": result.block_number,
                                "gas_used": result.gas_used}
    assert TxResult(**json.loads(json.dumps(result.to_json()))) == result


def test_digest_page_starts_at_the_newest_by_default(deployed) -> None:
    client, alice = deployed.client, deployed.accounts[1]
    client.claim_namespace("acme", alice)
    digest = b"\x05" * 32
    old = client.sign_and_publish(make_release(version="1.0.0", artifact_sha256=digest), alice)
    new = client.sign_and_publish(make_release(version="2.0.0", artifact_sha256=digest), alice)
    assert client.digest_page(digest) == ([new.id, old.id], 0)
