"""The oracle node against a real anvil, the real publish/verify pipeline and onnxruntime."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from tests._oracle_fixtures import (
    NAME,
    WINDOW,
    Running,
    Setup,
    deploy_feed,
    make_node,
    onnx_models,  # noqa: F401 - fixture
    publish,
    series,
    tamper_store,
    wait_for,
    write_series,
)


@pytest.fixture
def setup(deployed: Any, onnx_models: dict[int, Path], tmp_path: Path) -> Setup:
    v1 = publish(deployed, onnx_models[1], "1.0.0")
    node_account = deployed.accounts[1]
    feed = deploy_feed(deployed, [node_account], quorum=1, approve=v1.id)
    inputs = write_series(tmp_path / "inputs.json", series())
    return Setup(deployed=deployed, feed=feed, owner=deployed.accounts[0], nodes=[node_account], input_path=inputs,
                 tmp=tmp_path)


def expected_prediction(path: Path, window: np.ndarray) -> float:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return float(session.run(None, {"window": window[None, :].astype(np.float32)})[0][0, 0])


def test_first_poll_verifies_and_a_round_carries_the_model(setup: Setup, onnx_models: dict[int, Path]) -> None:
    node = make_node(setup, setup.nodes[0], setup.tmp / "state")
    node.poll_chain()
    active = node.active
    assert active is not None and active.release.version == "1.0.0"
    submission = node.submit_once()
    assert submission is not None and submission.round_id == 1
    want = expected_prediction(onnx_models[1], series()[-WINDOW:])
    latest = setup.feed.latest()
    assert latest is not None
    assert latest.answer == round(want * 10**8) or abs(latest.answer - want * 10**8) <= 1
    assert latest.release_id == active.release_id
    assert latest.artifact_sha256 == active.artifact_sha256
    # no duplicate: the round closed (quorum 1), so the next attempt goes to round 2
    second = node.submit_once()
    assert second is not None and second.round_id == 2
    assert setup.feed.latest_round_id() == 2
