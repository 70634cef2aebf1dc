"""The oracle node follows NAME@ALIAS: it serves the alias's target, moves when the owner moves the
alias (the rollback path), and stops serving when the alias stops resolving."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests._oracle_fixtures import NAME, deploy_feed, onnx_models, publish, series, write_series  # noqa: F401


def _node(deployed: Any, feed: Any, tmp: Path, follow: str, events: list[dict[str, Any]]) -> Any:
    from registry.chain.client import RegistryClient
    from registry.oracle.feed import FeedClient
    from registry.oracle.inputs import FileSource
    from registry.oracle.node import NodeConfig, OracleNode

    return OracleNode(
        NodeConfig(model=follow, state_dir=tmp / "state", interval_s=0.2, poll_s=0.1, max_backoff_s=0.5),
        registry=RegistryClient.at(deployed.rpc_url, deployed.address, 31337, timeout_s=2.0, retries=1),
        feed=FeedClient.at(deployed.rpc_url, feed.address, retries=1, timeout_s=2.0),
        signer=deployed.accounts[1],
        source=FileSource(write_series(tmp / "inputs.json", series())),
        settings=deployed.settings(),
        on_event=events.append,
    )


def test_node_serves_the_alias_target_and_follows_it(deployed: Any, onnx_models: dict[int, Path],
                                                     tmp_path: Path) -> None:
    v1 = publish(deployed, onnx_models[1], "1.0.0")
    v2 = publish(deployed, onnx_models[2], "1.1.0")
    owner = deployed.publisher  # claimed the namespace on the first publish
    deployed.client.set_alias(NAME, "production", v1.id, owner)
    feed = deploy_feed(deployed, [deployed.accounts[1]], quorum=1, approve=v1.id)
    events: list[dict[str, Any]] = []
    node = _node(deployed, feed, tmp_path, f"{NAME}@production", events)

    node.poll_chain()
    assert node.active is not None and node.active.release_id == v1.id  # not the newer 1.1.0
    assert node.submit_once() is not None

    deployed.client.set_alias(NAME, "production", v2.id, owner)  # no release event: only the alias moved
    node.poll_chain()
    assert node.active is not None and node.active.release_id == v2.id
    assert any(e["event"] == "alias-moved" for e in events)

    deployed.client.revoke(v2.id, "bad weights", owner)  # the alias now resolves to an error
    node.poll_chain()
    assert node.active is None
    node.poll_chain()
    assert node.active is None  # it does not fall back to another release on its own


def test_node_refuses_a_version_or_digest_as_follow_target(deployed: Any, onnx_models: dict[int, Path],
                                                           tmp_path: Path) -> None:
    from registry.errors import InputError

    v1 = publish(deployed, onnx_models[1], "1.0.0")
    feed = deploy_feed(deployed, [deployed.accounts[1]], quorum=1, approve=v1.id)
    for follow in (f"{NAME}@1.0.0", "sha256:" + "ab" * 32, f"{NAME}@Prod"):
        with pytest.raises(InputError):
            _node(deployed, feed, tmp_path, follow, [])
