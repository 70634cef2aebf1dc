"""FeedClient against the real PredictionFeed on anvil: reads, writes, reverts decoded by name,
and an unmodified Chainlink-style consumer contract reading latestRoundData."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from registry.chain.errors import ContractRevert
from registry.errors import ChainError, InputError
from registry.oracle.feed import FeedClient
from tests._oracle_fixtures import NAME

ROOT = Path(__file__).resolve().parent.parent
CONSUMER = ROOT / "build" / "artifacts" / "contracts" / "test" / "mocks" / "FeedConsumer.sol" / "FeedConsumer.json"


def anchor(deployed: Any, version: str, name: str = NAME, parent: bytes = bytes(32), signer: Any = None) -> Any:
    """A release with made-up digests (the feed only reads ids, status and the artifact digest)."""
    from registry.release import Release, namespace_of

    client = deployed.client
    if client.namespace_owner(namespace_of(name))[0] is None:
        client.claim_namespace(namespace_of(name), deployed.publisher)
    sha = hashlib.sha256(f"{name}@{version}".encode()).digest()
    prov = hashlib.sha256(f"prov {name}@{version}".encode()).digest()
    release = Release(name=name, version=version, artifact_sha256=sha, artifact_cid=b"\x01\x55\x12\x20" + sha,
                      artifact_size=100, provenance_sha256=prov, provenance_cid=b"\x01\x55\x12\x20" + prov,
                      parent=parent)
    return client.sign_and_publish(release, signer or deployed.publisher)


def reverted(fn: Any, name: str) -> ContractRevert:
    with pytest.raises(ContractRevert) as info:
        fn()
    assert info.value.error_name == name, str(info.value)
    return info.value


@pytest.fixture
def feed(deployed: Any) -> FeedClient:
    return FeedClient.deploy(deployed.rpc_url, deployed.accounts[0], deployed.address, NAME, "CO2 next week", 8, 1,
                             retries=1)


def test_deploy_and_reads(deployed: Any, feed: FeedClient) -> None:
    status = feed.status()
    assert (status.model_name, status.description, status.decimals, status.version) == (NAME, "CO2 next week", 8, 1)
    assert status.registry == deployed.address and status.owner == deployed.accounts[0].address
    assert status.latest is None and status.open_round.round_id == 1 and status.approved_release == bytes(32)
    assert feed.latest() is None
    reverted(lambda: feed.round(1), "NoSuchRound")
    again = FeedClient.at(deployed.rpc_url, feed.address)
    assert again.decimals == 8


def test_every_submit_refusal_is_named(deployed: Any, feed: FeedClient) -> None:
    owner, node, stranger = deployed.accounts[0], deployed.accounts[1], deployed.accounts[2]
    v1, v2 = anchor(deployed, "1.0.0"), anchor(deployed, "1.1.0")
    other = anchor(deployed, "1.0.0", name="acme/other")
    feed.add_node(node.address, owner)
    reverted(lambda: feed.submit(1, 1, v1.id, node), "NoApprovedRelease")
    reverted(lambda: feed.set_approved_release(other.id, owner), "WrongModel")
    reverted(lambda: feed.set_approved_release(v1.id, stranger), "OwnableUnauthorizedAccount")
    feed.set_approved_release(v1.id, owner)
    error = reverted(lambda: feed.submit(1, 1, v1.id, stranger), "NotNode")
    assert "PredictionFeed reverted" in str(error)
    reverted(lambda: feed.submit(2, 1, v1.id, node), "WrongRound")
    reverted(lambda: feed.submit(1, 1, v2.id, node), "ReleaseNotApproved")
    feed.submit(1, 37_012_345_678, v1.id, node)
    latest = feed.latest()
    assert latest is not None and latest.answer == 37_012_345_678
    assert latest.release_id == v1.id and latest.artifact_sha256 == v1.artifact_sha256
    assert latest.to_json(8)["value"] == pytest.approx(370.12345678)
    deployed.client.revoke(v1.id, "recalled", deployed.publisher)
    reverted(lambda: feed.submit(2, 1, v1.id, node), "ReleaseNotActive")
    reverted(lambda: feed.set_approved_release(v1.id, owner), "ReleaseNotActive")
    # errors bubbling up from the registry are decoded against its ABI
    feed.set_follow_latest(True, owner)
    feed.sync_approved_release(stranger)
    assert feed.approved_release() == v2.id
    deployed.client.revoke(v2.id, "recalled", deployed.publisher)
    error = reverted(lambda: feed.sync_approved_release(stranger), "NoActiveRelease")
    assert "ModelRegistry reverted" in str(error)


def test_input_checks_before_any_transaction(deployed: Any, feed: FeedClient) -> None:
    with pytest.raises(InputError):
        feed.submit(1, 1, b"short", deployed.accounts[1])
    with pytest.raises(InputError):
        feed.add_node("not-an-address", deployed.accounts[0])
    with pytest.raises(InputError):
        FeedClient.deploy(deployed.rpc_url, deployed.accounts[0], deployed.address, "Bad Name", "", 8, 1)
    with pytest.raises(ChainError, match="no contract"):
        FeedClient.at(deployed.rpc_url, "0x" + "12" * 20, retries=0)
    for even in (0, 2, 4):  # refused before any transaction: the contract would refuse it too
        with pytest.raises(InputError, match="odd"):
            FeedClient.deploy(deployed.rpc_url, deployed.accounts[0], deployed.address, NAME, "", 8, even, retries=0)
        with pytest.raises(InputError, match="odd"):
            feed.set_quorum(even, deployed.accounts[0])
    with pytest.raises(InputError, match="min <= max"):
        feed.set_answer_bounds(10, 9, deployed.accounts[0])
    # The contract's own refusal, for a caller that skips the client's check.
    fn = feed.contract.functions.setQuorum(2)
    with pytest.raises(Exception) as info:
        fn.call({"from": deployed.accounts[0].address})
    from registry.oracle.feed import feed_revert

    assert feed_revert(info.value).error_name == "InvalidQuorum"


def test_answer_bounds_and_lineage(deployed: Any, feed: FeedClient) -> None:
    owner, node = deployed.accounts[0], deployed.accounts[1]
    base = anchor(deployed, "1.0.0")
    child = anchor(deployed, "1.1.0", parent=base.id)
    feed.add_node(node.address, owner)
    feed.set_approved_release(child.id, owner)
    assert not feed.status().bounded and feed.status().to_json()["min_answer"] is None
    feed.set_answer_bounds(0, 1_000 * 10**8, owner)
    assert feed.answer_bounds() == (0, 1_000 * 10**8)
    assert feed.status().to_json()["max_answer"] == str(1_000 * 10**8)
    error = reverted(lambda: feed.submit(1, 1_001 * 10**8, child.id, node), "AnswerOutOfBounds")
    assert error.error_args == (1_001 * 10**8, 0, 1_000 * 10**8)
    reverted(lambda: feed.submit(1, -1, child.id, node), "AnswerOutOfBounds")
    feed.submit(1, 420 * 10**8, child.id, node)
    # Revoking the parent withdraws the child from the feed (lineage), as lineage_ok says off chain.
    assert deployed.client.lineage_ok(child.id)
    deployed.client.revoke(base.id, "poisoned base", deployed.publisher)
    assert not deployed.client.lineage_ok(child.id) and deployed.client.is_valid(child.id)
    reverted(lambda: feed.submit(2, 420 * 10**8, child.id, node), "ReleaseNotActive")


def test_removed_publisher_release_is_refused(deployed: Any, feed: FeedClient) -> None:
    owner, node, other = deployed.accounts[0], deployed.accounts[1], deployed.accounts[4]
    anchor(deployed, "1.0.0")  # claims the namespace for deployed.publisher
    deployed.client.add_publisher(NAME, other.address, deployed.publisher)
    theirs = anchor(deployed, "2.0.0", signer=other)
    feed.add_node(node.address, owner)
    feed.set_approved_release(theirs.id, owner)
    feed.submit(1, 1, theirs.id, node)
    deployed.client.remove_publisher(NAME, other.address, deployed.publisher)
    reverted(lambda: feed.submit(2, 1, theirs.id, node), "ReleaseNotActive")


def test_chainlink_consumer_reads_latest_round_data(deployed: Any, feed: FeedClient) -> None:
    if not CONSUMER.exists():
        pytest.fail("contracts are not compiled: run `npx hardhat compile` (make test does)")
    artifact = json.loads(CONSUMER.read_text())
    owner, node = deployed.accounts[0], deployed.accounts[1]
    v1 = anchor(deployed, "1.0.0")
    feed.add_node(node.address, owner)
    feed.set_approved_release(v1.id, owner)
    w3 = feed.w3
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    from registry.chain.tx import send_call

    receipt = send_call(w3, owner, lambda p: factory.constructor(feed.address, 3600).build_transaction(p))
    consumer = w3.eth.contract(address=receipt["contractAddress"], abi=artifact["abi"])
    with pytest.raises(Exception):
        consumer.functions.read().call()  # no round yet: the feed reverts NoSuchRound
    feed.submit(1, 37_000_000_000, v1.id, node)
    round_id, answer, decimals = consumer.functions.read().call()
    assert (round_id, answer, decimals) == (1, 37_000_000_000, 8)
    send_call(w3, owner, lambda p: consumer.functions.consume().build_transaction(p))
    assert consumer.functions.lastAnswer().call() == 37_000_000_000
