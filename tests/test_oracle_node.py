"""The oracle node against a real anvil, the real publish/verify pipeline and onnxruntime.

Faults are real: bytes flipped in the block store, a revocation transaction, a TCP proxy that
refuses connections, garbage in the input file, a node that lies.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from registry.oracle.feed import to_fixed
from tests._oracle_fixtures import (
    Running,
    Setup,
    TcpProxy,
    deploy_feed,
    make_node,
    onnx_models,  # noqa: F401 - fixture
    publish,
    series,
    tamper_store,
    wait_for,
    write_series,
    WINDOW,
)


@pytest.fixture
def setup(deployed: Any, onnx_models: dict[int, Path], tmp_path: Path) -> Setup:
    v1 = publish(deployed, onnx_models[1], "1.0.0")
    node_account = deployed.accounts[1]
    feed = deploy_feed(deployed, [node_account], quorum=1, approve=v1.id)
    inputs = write_series(tmp_path / "inputs.json", series())
    return Setup(deployed=deployed, feed=feed, owner=deployed.accounts[0], nodes=[node_account], input_path=inputs,
                 tmp=tmp_path)


def expected_answer(path: Path, window: np.ndarray) -> int:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    value = float(session.run(None, {"window": window[None, :].astype(np.float32)})[0][0, 0])
    return to_fixed(value, 8)


def submissions_by(setup: Setup, node: str) -> list[int]:
    """Round ids of every AnswerSubmitted event this node caused (the chain's own record)."""
    logs = setup.feed.contract.events.AnswerSubmitted().get_logs(from_block=0, argument_filters={"node": node})
    return [int(log["args"]["roundId"]) for log in logs]


def events_of(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == kind]


def test_round_carries_the_verified_model_and_its_prediction(setup: Setup, onnx_models: dict[int, Path]) -> None:
    node = make_node(setup, setup.nodes[0], setup.tmp / "state")
    node.poll_chain()
    active = node.active
    assert active is not None and active.release.version == "1.0.0"
    submission = node.submit_once()
    assert submission is not None and submission.round_id == 1
    latest = setup.feed.latest()
    assert latest is not None
    assert latest.answer == expected_answer(onnx_models[1], series()[-WINDOW:])
    assert (latest.release_id, latest.artifact_sha256) == (active.release_id, active.artifact_sha256)
    assert active.artifact_sha256 == setup.deployed.client.get("acme/co2-forecaster", "1.0.0").artifact_sha256
    second = node.submit_once()
    assert second is not None and second.round_id == 2
    assert submissions_by(setup, setup.nodes[0].address) == [1, 2]


def test_new_release_is_verified_and_hot_swapped_feed_refuses_until_approved(
    setup: Setup, onnx_models: dict[int, Path]
) -> None:
    events: list[dict[str, Any]] = []
    node = make_node(setup, setup.nodes[0], setup.tmp / "state", events)
    node.poll_chain()
    v1 = node.active
    server = node.serve()
    try:
        v2 = publish(setup.deployed, onnx_models[2], "1.1.0")
        node.poll_chain()
        assert node.active is not None and node.active.release_id == v2.id
        assert v1 is not None and node.active is not v1
        body = httpx.post(server.url + "/predict", json={"inputs": [float(v) for v in series()[-WINDOW:]]}).json()
        assert body["release_id"] == "0x" + v2.id.hex() and body["version"] == "1.1.0"
        assert to_fixed(body["predictions"][0], 8) == expected_answer(onnx_models[2], series()[-WINDOW:])
        # the feed still approves 1.0.0: the node skips, loudly, and posts nothing
        assert node.submit_once() is None
        assert "feed approves release" in events_of(events, "round-skipped")[-1]["message"]
        assert setup.feed.latest_round_id() == 0
        setup.feed.set_approved_release(v2.id, setup.owner)
        submission = node.submit_once()
        assert submission is not None and submission.release_id == v2.id
        assert setup.feed.latest().release_id == v2.id
    finally:
        server.stop()


def test_follow_latest_feed_is_synced_by_the_node(setup: Setup, onnx_models: dict[int, Path]) -> None:
    setup.feed.set_follow_latest(True, setup.owner)
    node = make_node(setup, setup.nodes[0], setup.tmp / "state")
    node.poll_chain()
    v2 = publish(setup.deployed, onnx_models[2], "1.1.0")
    node.poll_chain()
    submission = node.submit_once()
    assert submission is not None and submission.release_id == v2.id
    assert setup.feed.approved_release() == v2.id


def test_tampered_release_is_refused_and_the_old_model_keeps_serving(
    setup: Setup, onnx_models: dict[int, Path]
) -> None:
    events: list[dict[str, Any]] = []
    node = make_node(setup, setup.nodes[0], setup.tmp / "state", events)
    node.poll_chain()
    v1 = node.active
    bad = publish(setup.deployed, onnx_models[2], "1.1.0")
    tamper_store(setup.deployed, bad)
    node.poll_chain()
    assert node.active is v1  # same object: nothing was swapped
    refused = events_of(events, "refused")
    assert refused and "1.1.0" in refused[-1]["message"] and "keeps serving" in refused[-1]["message"]
    health = node.health()
    assert "0x" + bad.id.hex() in health["refused"]
    assert health["active"]["version"] == "1.0.0"
    # never retried: a second poll neither re-verifies nor swaps
    node.poll_chain()
    assert len(events_of(events, "refused")) == 1
    assert node.submit_once() is not None
    # a restarted node verifies again (the store may have been repaired) and refuses again
    events.clear()
    again = make_node(setup, setup.nodes[0], setup.tmp / "state", events)
    again.poll_chain()
    assert again.active is not None and again.active.release.version == "1.0.0"
    assert [e["release_id"] for e in events_of(events, "refused")] == ["0x" + bad.id.hex()]


def test_revoked_mid_run_is_unloaded_within_one_poll_with_fallback_then_stop(
    setup: Setup, onnx_models: dict[int, Path]
) -> None:
    events: list[dict[str, Any]] = []
    node = make_node(setup, setup.nodes[0], setup.tmp / "state", events)
    client, publisher = setup.deployed.client, setup.deployed.publisher
    v2 = publish(setup.deployed, onnx_models[2], "1.1.0")
    node.poll_chain()
    assert node.active is not None and node.active.release_id == v2.id
    client.revoke(v2.id, "bad forecasts", publisher)
    node.poll_chain()  # one poll
    assert node.active is not None and node.active.release.version == "1.0.0"
    assert any("1.1.0" in e["message"] for e in events_of(events, "unloaded"))
    assert node.submit_once() is not None  # the feed approves 1.0.0, which is still valid
    client.revoke(node.active.release_id, "also bad", publisher)
    node.poll_chain()
    assert node.active is None
    assert events_of(events, "no-model")
    assert node.health()["status"] == "no-model"
    assert node.submit_once() is None
    assert events_of(events, "round-skipped")[-1]["level"] == "error"
    server = node.serve()
    try:
        assert httpx.get(server.url + "/health").status_code == 503
        assert httpx.post(server.url + "/predict", json={"inputs": [1.0] * WINDOW}).status_code == 503
    finally:
        server.stop()


def test_revocation_while_running_stops_submissions(setup: Setup) -> None:
    events: list[dict[str, Any]] = []
    node = make_node(setup, setup.nodes[0], setup.tmp / "state", events)
    with Running(node):
        wait_for(lambda: setup.feed.latest_round_id() >= 2, what="two rounds")
        started = time.monotonic()
        setup.deployed.client.revoke(node.active.release_id, "recall", setup.deployed.publisher)
        wait_for(lambda: node.active is None, timeout=5, what="unload")
        unload_s = time.monotonic() - started
        rounds = setup.feed.latest_round_id()
        time.sleep(0.6)
        assert setup.feed.latest_round_id() == rounds
    assert unload_s < 1.0  # poll is 0.1 s
    assert events_of(events, "release-revoked")


def test_rpc_outage_backs_off_and_recovers_without_duplicates(setup: Setup) -> None:
    proxy = TcpProxy(setup.deployed.rpc_url)
    events: list[dict[str, Any]] = []
    node = make_node(setup, setup.nodes[0], setup.tmp / "state", events, rpc_url=proxy.url)
    try:
        with Running(node):
            wait_for(lambda: setup.feed.latest_round_id() >= 1, what="first round")
            proxy.down()
            wait_for(lambda: len(events_of(events, "outage")) >= 2, timeout=15, what="outage noticed")
            during = setup.feed.latest_round_id()
            proxy.up()
            wait_for(lambda: setup.feed.latest_round_id() >= during + 2, timeout=15, what="recovery")
            wait_for(lambda: bool(events_of(events, "recovered")), timeout=5, what="recovered event")
        rounds = submissions_by(setup, setup.nodes[0].address)
        assert rounds == sorted(set(rounds))  # never two answers to one round
        assert node.health()["status"] == "serving"
    finally:
        proxy.down()


def test_restart_never_answers_a_round_twice(setup: Setup) -> None:
    for other in setup.deployed.accounts[2:4]:
        setup.feed.add_node(other.address, setup.owner)
    setup.feed.set_quorum(3, setup.owner)  # the round stays open after our answer (quorums are odd)
    events: list[dict[str, Any]] = []
    node = make_node(setup, setup.nodes[0], setup.tmp / "state", events)
    node.poll_chain()
    assert node.submit_once() is not None
    assert node.submit_once() is None  # waiting for quorum
    restarted = make_node(setup, setup.nodes[0], setup.tmp / "state", events)
    assert restarted.state.last_submitted_round == 1
    restarted.poll_chain()
    assert restarted.submit_once() is None
    assert submissions_by(setup, setup.nodes[0].address) == [1]
    assert not events_of(events, "round-moved")  # not even an attempt that the contract refused


def test_garbage_input_skips_the_round_with_a_reason(setup: Setup) -> None:
    events: list[dict[str, Any]] = []
    node = make_node(setup, setup.nodes[0], setup.tmp / "state", events)
    node.poll_chain()
    cases = {
        '{"values": ["a", "b"]}': "not a number",
        '{"values": [1, 2, NaN, 4, 5, 6, 7, 8, 9]}': "not finite",
        '{"values": [1, 2, 3]}': "the model needs 8",
        "{not json": "malformed JSON",
        '{"temperature": 3}': "none of the keys",
    }
    for text, reason in cases.items():
        setup.input_path.write_text(text)
        assert node.submit_once() is None
        assert reason in events_of(events, "round-skipped")[-1]["message"]
    assert setup.feed.latest_round_id() == 0
    setup.input_path.unlink()
    with pytest.raises(Exception):
        node.submit_once()  # a missing file is an outage (UnreachableError): run() backs off
    write_series(setup.input_path, series())
    assert node.submit_once() is not None


def test_two_honest_nodes_outvote_a_liar(setup: Setup, onnx_models: dict[int, Path]) -> None:
    honest = [setup.nodes[0], setup.deployed.accounts[2]]
    liar = setup.deployed.accounts[3]
    for account in (honest[1], liar):
        setup.feed.add_node(account.address, setup.owner)
    setup.feed.set_quorum(3, setup.owner)
    nodes = [make_node(setup, a, setup.tmp / f"state-{i}") for i, a in enumerate(honest)]
    for node in nodes:
        node.poll_chain()
    release = nodes[0].active.release_id
    setup.feed.submit(1, 10**30, release, liar)  # absurd value with the approved release id
    for node in nodes:
        assert node.submit_once() is not None
    latest = setup.feed.latest()
    assert latest is not None and latest.submissions == 3
    assert latest.answer == expected_answer(onnx_models[1], series()[-WINDOW:])


def test_http_server_validates_requests(setup: Setup) -> None:
    node = make_node(setup, setup.nodes[0], setup.tmp / "state")
    node.poll_chain()
    server = node.serve()
    try:
        url = server.url
        health = httpx.get(url + "/health").json()
        assert health["status"] == "serving" and health["active"]["version"] == "1.0.0"
        assert health["active"]["artifact_sha256"] == node.active.artifact_sha256.hex()
        ok = httpx.post(url + "/predict", json={"inputs": [[1.0] * WINDOW, [2.0] * WINDOW]})
        assert ok.status_code == 200 and len(ok.json()["predictions"]) == 2
        assert httpx.post(url + "/predict", content=b"{nope").status_code == 400
        assert httpx.post(url + "/predict", json={"inputs": [1.0] * (WINDOW - 1)}).status_code == 400
        assert httpx.post(url + "/predict", json={"inputs": [["x"] * WINDOW]}).status_code == 400
        assert httpx.post(url + "/predict", json=[1, 2]).status_code == 400
        nan_body = ('{"inputs": [' + ", ".join(["NaN"] * WINDOW) + "]}").encode()
        assert httpx.post(url + "/predict", content=nan_body).status_code == 400
        assert httpx.get(url + "/nope").status_code == 404
        node.submit_once()
        assert httpx.get(url + "/health").json()["last_submission"]["round"] == 1
    finally:
        server.stop()


def test_policy_refusal_keeps_the_old_model_until_the_policy_is_met(
    setup: Setup, onnx_models: dict[int, Path]
) -> None:
    client, attester = setup.deployed.client, setup.deployed.accounts[5]
    policy = setup.tmp / "policy.toml"
    policy.write_text(f'[attestations]\nrequired = 1\nattesters = ["{attester.address}"]\n')
    v1 = client.get("acme/co2-forecaster", "1.0.0")
    client.attest(v1.id, True, b"\x01" * 32, attester)
    events: list[dict[str, Any]] = []
    node = make_node(setup, setup.nodes[0], setup.tmp / "state", events, policy=policy, retry_refused_s=0.0)
    node.poll_chain()
    assert node.active is not None and node.active.release_id == v1.id
    v2 = publish(setup.deployed, onnx_models[2], "1.1.0")
    node.poll_chain()
    assert node.active.release_id == v1.id
    assert "attestations" in events_of(events, "refused")[-1]["message"]
    client.attest(v2.id, False, b"\x02" * 32, attester)  # a failed verdict does not count
    node.poll_chain()
    assert node.active.release_id == v1.id
    client.attest(v2.id, True, b"\x03" * 32, attester)  # replaces the verdict
    node.poll_chain()
    assert node.active.release_id == v2.id


def _publish_child(setup: Setup, model: Path, version: str, parent: str) -> Any:
    from registry.publish import publish_model

    result = publish_model(model, "acme/co2-forecaster", version, parent=parent, settings=setup.deployed.settings(),
                           client=setup.deployed.client, signer=setup.deployed.publisher,
                           manifest_dir=model.parent / f"manifests-{version}")
    return result.record


def test_revoked_ancestor_in_another_name_stops_serving_within_one_poll(
    setup: Setup, onnx_models: dict[int, Path]
) -> None:
    """The node kept serving and submitting after the parent was revoked (issue 10). A parent of
    another name emits its ReleaseRevoked under that name, which the node's log filter never sees:
    only the lineage walk on every poll catches it."""
    dep = setup.deployed
    base = publish(dep, onnx_models[3], "1.0.0", name="acme/co2-base")
    child = _publish_child(setup, onnx_models[2], "2.0.0", parent=base.ref)
    setup.feed.set_approved_release(child.id, setup.owner)
    events: list[dict[str, Any]] = []
    node = make_node(setup, setup.nodes[0], setup.tmp / "state", events)
    node.poll_chain()
    assert node.active is not None and node.active.release_id == child.id
    assert node.submit_once() is not None
    before = submissions_by(setup, setup.nodes[0].address)
    dep.client.revoke(base.id, "training data was poisoned", dep.publisher)
    node.poll_chain()  # one poll
    assert node.active is None or node.active.release_id != child.id
    assert any("ancestor acme/co2-base@1.0.0 was revoked" in e["message"] for e in events_of(events, "unloaded"))
    for _ in range(3):
        node.submit_once()
    assert submissions_by(setup, setup.nodes[0].address) == before  # 1.0.0 is not approved: nothing sent
    node.poll_chain()
    assert node.active is None or node.active.release_id != child.id  # never re-selected


def test_ancestor_revoked_between_poll_and_submit_is_not_answered(
    setup: Setup, onnx_models: dict[int, Path]
) -> None:
    dep = setup.deployed
    v1 = dep.client.get("acme/co2-forecaster", "1.0.0")
    child = _publish_child(setup, onnx_models[2], "1.1.0", parent=v1.ref)
    setup.feed.set_approved_release(child.id, setup.owner)
    node = make_node(setup, setup.nodes[0], setup.tmp / "state")
    node.poll_chain()
    assert node.active is not None and node.active.release_id == child.id
    dep.client.revoke(v1.id, "recall", dep.publisher)
    assert node.submit_once() is None  # no poll in between: the submit-time check catches it
    assert submissions_by(setup, setup.nodes[0].address) == []
    assert node.active is None


def test_node_follows_the_contracts_lineage_rule_including_removed_publishers(
    setup: Setup, onnx_models: dict[int, Path]
) -> None:
    """Node and feed agree on every release: the node asks lineageValid, so a release whose
    publisher was removed (D4) stops being served although nothing in its lineage is revoked."""
    from registry.publish import publish_model

    dep = setup.deployed
    second = dep.accounts[4]
    dep.client.add_publisher("acme/co2-forecaster", second.address, dep.publisher)
    v1 = dep.client.get("acme/co2-forecaster", "1.0.0")
    model = onnx_models[2]
    child = publish_model(model, "acme/co2-forecaster", "1.1.0", parent=v1.ref, settings=dep.settings(),
                          client=dep.client, signer=second, sender=second,
                          manifest_dir=model.parent / "manifests-d4").record
    node = make_node(setup, setup.nodes[0], setup.tmp / "state")
    assert node.lineage_problem(child) is None
    dep.client.remove_publisher("acme/co2-forecaster", second.address, dep.publisher)
    problem = node.lineage_problem(child) or ""
    assert "no longer counts on chain" in problem
    assert node.lineage_problem(v1) is None  # the owner's own release still counts
