"""The worked example end to end: a forecaster trained on a real bundled series, compressed by the
pipeline, published with provenance, served by an oracle node, read by a Chainlink consumer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from registry.examples import forecast


def test_series_and_windows() -> None:
    series = forecast.load_series()
    assert len(series) == 2284 and np.all(np.isfinite(series))
    assert 310 < series[0] < 320 and 365 < series[-1] < 375  # Mauna Loa ppm, 1958 -> 2001
    x, y = forecast.make_windows(series[:60], 52)
    assert x.shape == (8, 52) and y.shape == (8, 1)
    assert x[1, -1] == series[52] and y[0, 0] == series[52]
    with pytest.raises(ValueError):
        forecast.make_windows(series[:10], 52)


@pytest.mark.slow
def test_compressed_forecaster_published_served_and_consumed(deployed: Any, tmp_path: Path) -> None:
    from registry.examples.forecast_release import build_release, publish_release
    from registry.oracle.feed import FeedClient
    from registry.oracle.inputs import FileSource
    from registry.oracle.node import NodeConfig, OracleNode

    built = build_release(tmp_path / "build", epochs=30)
    assert built.mae_ppm < built.naive_mae_ppm  # beats "same as last week" after compression
    assert built.size < built.base_size
    provenance = json.loads(built.provenance_path.read_text())
    assert provenance["subject"][0]["digest"]["sha256"] == built.sha256
    assert [s["name"] for s in provenance["predicate"]["steps"]][:1] == ["prune"]

    name = "demo/co2-forecaster"
    record = publish_release(built, name, "1.0.0", settings=deployed.settings(), client=deployed.client,
                             signer=deployed.publisher, manifest_dir=tmp_path / "manifests").record
    owner, node_account = deployed.accounts[0], deployed.accounts[1]
    feed = FeedClient.deploy(deployed.rpc_url, owner, deployed.address, name, "CO2 ppm next week", 8, 1)
    feed.add_node(node_account.address, owner)
    feed.set_approved_release(record.id, owner)
    series = forecast.load_series()
    (tmp_path / "in.json").write_text(json.dumps({"values": [float(v) for v in series[-53:-1]]}))
    node = OracleNode(NodeConfig(model=name, state_dir=tmp_path / "node"), deployed.client, feed, node_account,
                      FileSource(tmp_path / "in.json"), settings=deployed.settings())
    node.poll_chain()
    submission = node.submit_once()
    assert submission is not None
    assert abs(submission.value - float(series[-1])) < 2.0  # a real forecast of the held-back week
    latest = feed.latest()
    assert latest is not None and latest.release_id == record.id
    assert latest.artifact_sha256.hex() == built.sha256
