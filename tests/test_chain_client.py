"""RegistryClient against a real anvil: every method, revert names, wrong chain, no contract, node down."""

from __future__ import annotations

import dataclasses
import secrets
import socket
import threading
import time

import pytest
from eth_account import Account

from registry.chain.client import RegistryClient
from registry.chain.errors import ContractRevert, decode_revert
from registry.chain.records import ReleaseRecord
from registry.errors import ChainError, InputError, RevokedError, UnreachableError
from registry.release import Release, release_id, sign_release

ZERO32 = b"\x00" * 32


def cid(digest: bytes, codec: int = 0x55) -> bytes:
    return bytes([0x01, codec, 0x12, 0x20]) + digest


def make_release(name: str = "acme/demo", version: str = "1.0.0", **changes: object) -> Release:
    release = Release(
        name=name,
        version=version,
        artifact_sha256=secrets.token_bytes(32),
        artifact_cid=cid(secrets.token_bytes(32)),
        artifact_size=4096,
        provenance_sha256=secrets.token_bytes(32),
        provenance_cid=cid(secrets.token_bytes(32), 0x71),
        deadline=2**40,
    )
    return dataclasses.replace(release, **changes)  # type: ignore[arg-type]


def expect_revert(name: str):
    class _Ctx:
        def __enter__(self):
            return self

        def __exit__(self, kind, exc, tb):
            assert exc is not None, f"expected a {name} revert, nothing was raised"
            assert isinstance(exc, ContractRevert), f"expected ContractRevert, got {kind.__name__}: {exc}"
            assert exc.error_name == name, str(exc)
            assert str(exc).startswith(f"ModelRegistry reverted: {name}(")
            self.exc = exc
            return True

    return _Ctx()


# ------------------------------------------------------------------------------------------
# Publishing and reading releases
# ------------------------------------------------------------------------------------------


def test_publish_get_latest_history_by_digest(deployed) -> None:
    client, alice = deployed.client, deployed.accounts[1]
    client.claim_namespace("acme", alice)
    first = client.sign_and_publish(make_release(version="1.0.0"), alice)
    assert isinstance(first, ReleaseRecord)
    assert first.publisher == alice.address and not first.revoked and first.published_at > 0
    second = client.sign_and_publish(
        make_release(version="1.1.0", parent=first.id, artifact_sha256=first.artifact_sha256), alice
    )
    assert client.get("acme/demo", "1.0.0") == first
    assert client.get_by_id(release_id("acme/demo", "1.1.0")) == second
    assert client.latest("acme/demo") == second
    assert [r.version for r in client.history("acme/demo")] == ["1.0.0", "1.1.0"]
    assert second.parent == first.id and second.has_parent and not first.has_parent
    assert [r.version for r in client.by_digest(first.artifact_sha256)] == ["1.0.0", "1.1.0"]
    assert client.by_digest(secrets.token_bytes(32)) == []
    assert client.release_count("acme/demo") == 2
    assert client.next_nonce(alice.address) == 2
    assert client.resolve("acme/demo@1.0.0") == first
    assert client.resolve("acme/demo@latest") == second
    assert client.resolve("sha256:" + first.artifact_sha256.hex()) == second  # one name: its newest
    assert client.name_owner("acme/demo") == (alice.address, None)
    assert client.namespace_owner("acme") == (alice.address, None)
    assert client.may_publish("acme/demo", alice.address) and not client.is_publisher("acme/demo", alice.address)
    assert client.is_active(first.id) and not client.is_revoked(first.id)
    assert client.is_valid(second.id) and client.lineage_ok(second.id)
    assert client.digest_ids(first.artifact_sha256, 1) == ([second.id], False)
    assert client.digest_ids(first.artifact_sha256) == ([second.id, first.id], True)


def test_relayer_publishes_presigned_release(deployed) -> None:
    client, publisher, relayer = deployed.client, Account.create(), deployed.accounts[4]
    owner = deployed.accounts[1]
    client.claim_namespace("acme", owner)
    client.add_publisher("acme/demo", publisher.address, owner)
    release = dataclasses.replace(make_release(), nonce=client.next_nonce(publisher.address))
    signature = sign_release(release, publisher, client.chain_id, client.address)
    before = client.w3.eth.get_balance(publisher.address)
    record = client.publish_signed(release, signature, relayer)
    assert record.publisher == publisher.address  # unfunded publisher, relayer paid
    assert before == 0 and client.w3.eth.get_balance(publisher.address) == 0
    assert client.name_owner("acme/demo")[0] == owner.address


def test_revoke_and_latest_skips_revoked(deployed) -> None:
    client, alice = deployed.client, deployed.accounts[1]
    client.claim_namespace("acme", alice)
    one = client.sign_and_publish(make_release(version="1.0.0"), alice)
    two = client.sign_and_publish(make_release(version="2.0.0"), alice)
    result = client.revoke(two.id, "bad accuracy", alice)
    assert result.tx_hash.startswith("0x") and result.gas_used > 0
    revoked = client.get_by_id(two.id)
    assert revoked.revoked and revoked.revocation_reason == "bad accuracy" and revoked.revoked_at > 0
    assert client.is_revoked(two.id) and not client.is_active(two.id)
    assert client.latest("acme/demo") == one
    with pytest.raises(RevokedError, match="revoked in 1 release"):  # bytes revoked anywhere are revoked
        client.resolve("sha256:" + two.artifact_sha256.hex())
    assert client.by_digest(two.artifact_sha256)[0].revoked  # still listed for show
    client.revoke(one.id, "all bad", alice)
    with expect_revert("NoActiveRelease") as ctx:
        client.latest("acme/demo")
    assert "no release that is not revoked" in str(ctx.exc)
    assert not client.is_valid(one.id) and not client.lineage_ok(one.id)
    with expect_revert("ReleaseIsRevoked"):
        client.revoke(one.id, "again", alice)
    with expect_revert("ReleaseIsRevoked"):  # a revoked parent cannot have children
        client.sign_and_publish(make_release(version="3.0.0", parent=one.id), alice)


def test_attestations(deployed) -> None:
    client, alice, auditor, other = deployed.client, deployed.accounts[1], deployed.accounts[2], deployed.accounts[3]
    client.claim_namespace("acme", alice)
    record = client.sign_and_publish(make_release(), alice)
    assert client.attestations(record.id) == []
    assert client.attestation_of(record.id, auditor.address) is None
    report = secrets.token_bytes(32)
    client.attest(record.id, True, report, auditor)
    client.attest(record.id, False, ZERO32, other)
    client.attest(record.id, False, report, auditor)  # replaces auditor's verdict
    found = client.attestations(record.id)
    assert [(a.attester, a.passed, a.report_sha256) for a in found] == [
        (auditor.address, False, report),
        (other.address, False, ZERO32),
    ]
    assert all(a.attested_at > 0 for a in found)
    assert client.attestation_count(record.id) == 2
    assert client.attestation_of(record.id, auditor.address) == found[0]
    assert client.attestations(record.id, limit=1) == found[:1]
    assert client.attested_by(auditor.address) == [record.id]
    with expect_revert("UnknownRelease"):
        client.attest(secrets.token_bytes(32), True, report, auditor)


def test_namespaces_publishers_and_ownership_transfer(deployed) -> None:
    client = deployed.client
    owner, bob, carol = deployed.accounts[1], deployed.accounts[2], deployed.accounts[3]
    result = client.claim_namespace("acme", owner)
    assert result.gas_used > 0
    info = client.name_info("acme/demo")
    assert (info.owner, info.pending_owner, info.release_count, info.claimed) == (owner.address, None, 0, True)
    assert not client.name_info("other/none").claimed
    with pytest.raises(ChainError, match="already claimed by"):
        client.claim_namespace("acme", bob)
    with expect_revert("NotPublisher"):
        client.sign_and_publish(make_release(), bob)
    client.add_publisher("acme/demo", bob.address, owner)
    assert client.is_publisher("acme/demo", bob.address) and client.may_publish("acme/demo", bob.address)
    assert not client.may_publish("acme/other", bob.address)
    with expect_revert("AlreadyPublisher"):
        client.add_publisher("acme/demo", bob.address, owner)
    with expect_revert("NotNamespaceOwner"):
        client.add_publisher("acme/demo", carol.address, bob)
    assert client.publishers("acme/demo") == [owner.address, bob.address]
    record = client.sign_and_publish(make_release(), bob)
    assert record.publisher == bob.address
    with expect_revert("NotAuthorisedToRevoke"):
        client.revoke(record.id, "no", carol)
    client.remove_publisher("acme/demo", bob.address, owner)
    assert not client.is_publisher("acme/demo", bob.address)
    assert client.publishers("acme/demo") == [owner.address]
    assert client.name_info("acme/demo", with_publishers=True).publishers == [owner.address]
    assert client.publishers("acme/other") == [owner.address]
    with expect_revert("NotPublisher"):
        client.remove_publisher("acme/demo", bob.address, owner)
    # The release stays readable and active, but no longer counts (D4).
    assert client.get_by_id(record.id).publisher == bob.address
    assert client.is_active(record.id) and not client.is_valid(record.id) and not client.lineage_ok(record.id)
    with expect_revert("NoActiveRelease"):
        client.latest("acme/demo")

    client.propose_namespace_owner("acme", carol.address, owner)
    assert client.name_owner("acme/demo") == (owner.address, carol.address)
    with expect_revert("NotPendingOwner"):
        client.accept_namespace_owner("acme", bob)
    client.accept_namespace_owner("acme", carol)
    assert client.namespace_owner("acme") == (carol.address, None)
    assert client.may_publish("acme/demo", carol.address) and not client.may_publish("acme/demo", owner.address)
    with expect_revert("UnknownNamespace"):
        client.accept_namespace_owner("other", carol)


def test_publish_reverts_are_named(deployed) -> None:
    client, alice, mallory = deployed.client, deployed.accounts[1], deployed.accounts[6]
    with expect_revert("UnknownNamespace"):  # nobody claimed "acme" yet
        client.sign_and_publish(make_release(), alice)
    client.claim_namespace("acme", alice)
    release = client.prepare(make_release(), alice.address)
    signature = client.sign(release, alice)
    client.publish(release, signature, alice.address, alice)

    with expect_revert("DuplicateVersion") as ctx:
        again = client.prepare(dataclasses.replace(release), alice.address)
        client.publish(again, client.sign(again, alice), alice.address, alice)
    assert ctx.exc.error_args == (release.id,)
    assert f"DuplicateVersion(0x{release.id.hex()})" in str(ctx.exc)

    fresh = client.prepare(make_release(version="2.0.0"), alice.address)
    with expect_revert("InvalidSignature"):  # signed by someone else
        client.publish(fresh, client.sign(fresh, mallory), alice.address, alice)
    with expect_revert("InvalidAccountNonce"):  # replay of a used nonce
        stale = dataclasses.replace(fresh, nonce=0)
        client.publish(stale, client.sign(stale, alice), alice.address, alice)
    with expect_revert("ExpiredDeadline"):
        expired = dataclasses.replace(fresh, deadline=1)
        client.publish(expired, client.sign(expired, alice), alice.address, alice)
    with expect_revert("UnsupportedCid"):
        bad_cid = dataclasses.replace(fresh, artifact_cid=b"\x12\x20" + secrets.token_bytes(32))
        client.publish(bad_cid, client.sign(bad_cid, alice), alice.address, alice)
    with expect_revert("InvalidRelease"):
        empty = dataclasses.replace(fresh, artifact_size=0)
        client.publish(empty, client.sign(empty, alice), alice.address, alice)
    with expect_revert("UnknownRelease"):
        orphan = dataclasses.replace(fresh, parent=secrets.token_bytes(32))
        client.publish(orphan, client.sign(orphan, alice), alice.address, alice)
    with expect_revert("UnknownRelease") as ctx:
        client.get("acme/demo", "9.9.9")
    assert "no release acme/demo@9.9.9" in str(ctx.exc)
    # a cross-chain signature (another chain id in the domain) does not verify here
    foreign = sign_release(fresh, alice, 1, client.address)
    with expect_revert("InvalidSignature"):
        client.publish(fresh, foreign, alice.address, alice)
    # the state is unchanged by all the failures
    assert client.release_count("acme/demo") == 1


def test_bad_input_rejected_before_sending(deployed) -> None:
    client, alice = deployed.client, deployed.accounts[1]
    with pytest.raises(InputError, match="invalid namespace"):
        client.claim_namespace("Acme", alice)
    with pytest.raises(InputError, match="invalid namespace"):
        client.claim_namespace("acme/demo", alice)
    with pytest.raises(InputError, match="invalid alias"):
        client.set_alias("acme/demo", "latest", b"\x00" * 32, alice)
    with pytest.raises(InputError, match="invalid version"):
        client.sign_and_publish(make_release(version="1.0"), alice)
    with pytest.raises(InputError, match="invalid address"):
        client.add_publisher("acme/demo", "0x1234", alice)
    with pytest.raises(InputError):
        client.get_by_id(b"short")


def test_confirmations_wait_for_blocks(deployed) -> None:
    client = RegistryClient.at(deployed.rpc_url, deployed.address, deployed.chain_id, confirmations=2)
    alice = deployed.accounts[1]
    stop = threading.Event()

    def miner() -> None:
        while not stop.is_set():
            time.sleep(0.3)
            deployed.rpc("evm_mine")

    start_block = client.block_number
    thread = threading.Thread(target=miner, daemon=True)
    thread.start()
    try:
        result = client.claim_namespace("confirm", alice)
    finally:
        stop.set()
        thread.join()
    assert client.block_number >= result.block_number + 2 > start_block
    assert client.namespace_owner("confirm")[0] == alice.address


def test_a_transaction_dropped_by_a_reorg_after_confirmations_is_reported(deployed, monkeypatch) -> None:
    """The receipt is fetched again after the wait: a reorganisation that dropped it is an error."""
    import registry.chain.confirm as confirm

    client = RegistryClient.at(deployed.rpc_url, deployed.address, deployed.chain_id, confirmations=1)
    alice = deployed.accounts[1]
    real_wait = confirm.wait_confirmations
    before = deployed.rpc("evm_snapshot")
    waited: list[int] = []

    def wait_then_reorg(w3, block_number, confirmations, timeout_s=120.0):
        waited.append(block_number)
        deployed.rpc("evm_mine")
        real_wait(w3, block_number, confirmations, timeout_s)
        deployed.rpc("evm_revert", [before])  # the blocks holding the transaction are gone
        deployed.rpc("evm_mine")
        deployed.rpc("evm_mine")

    monkeypatch.setattr(confirm, "wait_confirmations", wait_then_reorg)
    with pytest.raises(ChainError, match="dropped by a chain reorganisation"):
        client.commit_namespace("reorged", alice)
    assert waited
    # Without the reorganisation the same wait confirms normally.
    monkeypatch.setattr(confirm, "wait_confirmations", lambda w3, b, c, t=120.0: (deployed.rpc("evm_mine"),
                                                                                 real_wait(w3, b, c, t)))
    result, _salt = client.commit_namespace("reorged", alice)
    assert result.block_number > 0


def test_connect_via_env_profile(deployed) -> None:
    client = RegistryClient.connect(deployed.settings())
    assert (client.address, client.chain_id) == (deployed.address, 31337)


# ------------------------------------------------------------------------------------------
# Wrong chain, no contract, node down
# ------------------------------------------------------------------------------------------


def test_wrong_chain_id(deployed) -> None:
    with pytest.raises(ChainError, match="wrong chain: profile expects chain id 1, node at .* says 31337"):
        RegistryClient.at(deployed.rpc_url, deployed.address, chain_id=1)


def test_no_contract_at_address(deployed) -> None:
    empty = Account.create().address
    with pytest.raises(ChainError, match=f"no contract at {empty}"):
        RegistryClient.at(deployed.rpc_url, empty, chain_id=31337)


def test_bad_contract_address(deployed) -> None:
    with pytest.raises(InputError, match="invalid contract address"):
        RegistryClient.at(deployed.rpc_url, "0xnope", chain_id=31337)


@pytest.fixture
def refused_url():
    """A port that is bound but not listening: connections are refused, and nobody else can take it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


def test_rpc_down_is_unreachable_after_bounded_retries(refused_url: str) -> None:
    url = refused_url
    started = time.monotonic()
    with pytest.raises(UnreachableError, match=f"RPC node at {url} did not answer after 3 attempts"):
        RegistryClient.at(url, "0x" + "11" * 20, timeout_s=0.5, retries=2)
    elapsed = time.monotonic() - started
    assert 0.25 + 0.5 <= elapsed < 5  # backoff slept 0.25 s then 0.5 s, and stopped


def test_rpc_timeout_is_unreachable() -> None:
    """A node that accepts connections but never answers: each attempt times out."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    url = f"http://127.0.0.1:{server.getsockname()[1]}"
    try:
        started = time.monotonic()
        with pytest.raises(UnreachableError, match="timed out"):
            RegistryClient.at(url, "0x" + "11" * 20, timeout_s=0.3, retries=1)
        assert time.monotonic() - started < 4
    finally:
        server.close()


def test_node_dies_mid_session(tmp_path) -> None:
    """A client connected to a node that then goes away fails with UnreachableError, not a trace."""
    from registry.chain.devnet import free_port, spawn_anvil, wait_for_rpc
    from registry.chain.rpc import make_web3
    from registry.chain.tx import deploy_registry

    port = free_port()
    log = tmp_path / "anvil.log"
    process = spawn_anvil(port, None, log, detached=False)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_rpc(url, process, log)
        deployer = Account.from_key("0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
        address = deploy_registry(make_web3(url), deployer)
        client = RegistryClient.at(url, address, 31337, timeout_s=0.5, retries=1)
    finally:
        process.kill()
        process.wait()
    holder = socket.socket()  # hold the port so no other worker's node can appear there
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", port))
    try:
        with pytest.raises(UnreachableError):
            client.release_count("acme/demo")
        with pytest.raises(UnreachableError):
            client.claim_namespace("acme", deployer)
    finally:
        holder.close()


def test_decode_revert_handles_garbage() -> None:
    assert decode_revert("0xdeadbeef00").error_name == "UnknownError"
    assert "no reason given" in str(decode_revert(None))
    err = decode_revert("0x08c379a0" + "00" * 31 + "20" + "00" * 31 + "02" + "6869" + "00" * 30)
    assert err.error_name == "Error" and "'hi'" in str(err)
    assert decode_revert({"data": "0xd92e233d"}).error_name == "ZeroAddress"


def test_deployed_fixture_gives_a_usable_signer(deployed) -> None:
    """Other areas sign through load_signer on the fixture's profile: it must yield the funded key."""
    from registry.keys import load_signer

    settings = deployed.settings()
    assert not settings.profile.is_local and settings.profile.contract == deployed.address
    signer = load_signer(settings)
    assert signer.address == deployed.publisher.address
    deployed.client.claim_namespace("fixture", signer)
    record = deployed.client.sign_and_publish(make_release(name="fixture/check"), signer)
    assert record.publisher == signer.address


@pytest.mark.parametrize("claimer", [7, 8])
def test_deployed_fixture_isolates_tests(deployed, claimer: int) -> None:
    """Both cases claim the same namespace; on one worker the second only succeeds if the snapshot was reverted."""
    assert deployed.client.namespace_owner("isolation") == (None, None)
    deployed.client.claim_namespace("isolation", deployed.accounts[claimer])


def test_backoff_doubles_and_stops() -> None:
    from registry.chain.rpc import with_retries

    calls: list[int] = []
    sleeps: list[float] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("refused")
        return "ok"

    assert with_retries(flaky, "http://x", retries=3, sleep=sleeps.append) == "ok"
    assert sleeps == [0.25, 0.5]
    sleeps.clear()
    with pytest.raises(UnreachableError, match="after 5 attempts"):
        with_retries(lambda: (_ for _ in ()).throw(ConnectionError("down")), "http://x", retries=4,
                     sleep=sleeps.append)
    assert sleeps == [0.25, 0.5, 1.0, 2.0]
    with pytest.raises(ValueError):  # not a connection problem: no retry, no wrapping
        with_retries(lambda: (_ for _ in ()).throw(ValueError("bug")), "http://x", sleep=sleeps.append)


@pytest.mark.parametrize("status, transient", [(500, True), (503, True), (429, True), (404, False), (200, False)])
def test_http_errors_from_a_real_server(status: int, transient: bool) -> None:
    """A node that errors, a wrong URL, and a web page that is not a JSON-RPC node at all (200 + HTML)."""
    import http.server

    hits: list[int] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            hits.append(1)
            self.rfile.read(int(self.headers.get("content-length", 0)))
            body = b"<html>not a node</html>" if status == 200 else b""
            self.send_response(status)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        if transient:
            with pytest.raises(UnreachableError, match=f"HTTP {status}"):
                RegistryClient.at(url, "0x" + "11" * 20, timeout_s=1, retries=1)
            assert len(hits) == 2
        elif status == 200:
            with pytest.raises(ChainError, match="does not answer like an Ethereum JSON-RPC node"):
                RegistryClient.at(url, "0x" + "11" * 20, timeout_s=1, retries=1)
            assert len(hits) == 1
        else:  # the URL is wrong: say so at once, no retries
            with pytest.raises(UnreachableError, match=f"refused the request \\(HTTP {status}\\): is the URL right"):
                RegistryClient.at(url, "0x" + "11" * 20, timeout_s=1, retries=1)
            assert len(hits) == 1
    finally:
        server.shutdown()
        server.server_close()


def test_unfunded_sender_is_told_so(deployed) -> None:
    poor = Account.create()
    with pytest.raises(ChainError, match=f"{poor.address} has too little ETH to pay for gas on chain 31337") as info:
        deployed.client.claim_namespace("poor", poor)
    assert "reverted" not in str(info.value)


def test_lists_longer_than_a_page_are_read_whole_in_order(deployed, monkeypatch) -> None:
    """History, digest lookups, attestations and an attester's list page through the contract: a list
    longer than one page (2 here) comes back whole, in order, and a limit stops at exactly that many."""
    import registry.chain.client as client_module

    monkeypatch.setattr(client_module, "PAGE", 2)
    client, alice = deployed.client, deployed.accounts[1]
    client.claim_namespace("acme", alice)
    digest = secrets.token_bytes(32)
    records = [client.sign_and_publish(make_release(version=f"1.{i}.0", artifact_sha256=digest), alice)
               for i in range(5)]
    ids = [r.id for r in records]
    assert client.release_ids("acme/demo") == ids
    assert [r.version for r in client.history("acme/demo")] == [f"1.{i}.0" for i in range(5)]
    newest_first = list(reversed(ids))
    assert client.digest_ids(digest) == (newest_first, True)
    assert client.digest_ids(digest, 3) == (newest_first[:3], False)
    assert client.digest_ids(digest, 5) == (newest_first, True)
    assert [r.version for r in client.by_digest(digest, 2)] == ["1.3.0", "1.4.0"]
    page, cursor = client.digest_page(digest, 0, 2)
    assert page == newest_first[:2] and cursor != 0
    attesters = deployed.accounts[2:7]
    for a in attesters:
        client.attest(ids[0], True, ZERO32, a)
    for rid in ids:
        client.attest(rid, False, ZERO32, alice)
    assert [a.attester for a in client.attestations(ids[0])] == [a.address for a in attesters] + [alice.address]
    assert [a.attester for a in client.attestations(ids[0], limit=3)] == [a.address for a in attesters[:3]]
    assert len(client.attestations(ids[0], limit=4)) == 4
    assert client.attested_by(alice.address) == ids
