"""Fixtures for the explorer suites: a small registry on the per-test anvil, an Explorer over it,
and a Starlette TestClient (the browser suite runs the same app under uvicorn)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests._verify_fixtures import Published, publish_tiny

STEPS = [
    {"name": "structured_prune", "params": {"ratio": 0.5}, "metrics_before": {"accuracy": 0.97, "size_bytes": 4000},
     "metrics_after": {"accuracy": 0.95, "size_bytes": 2100}},
    {"name": "quantize", "params": {"mode": "static"}, "metrics_before": {"accuracy": 0.95},
     "metrics_after": {"accuracy": 0.94, "size_bytes": 900}},
]


@dataclass
class Registry:
    deployed: Any
    base: Published
    child: Published
    small: Published

    def explorer(self, **kwargs: Any) -> Any:
        from registry.config import load_settings
        from registry.explorer.state import Explorer

        return Explorer(load_settings(), client=self.deployed.client, **kwargs)


def populate(deployed: Any, tmp_path: Path) -> Registry:
    """acme/digits 1.0.0 -> 1.1.0 (pruned + quantized), and acme/digits-small 0.1.0 from 1.1.0."""
    base = publish_tiny(deployed, tmp_path, "acme/digits", "1.0.0", seed=1,
                        provenance={"recipe": {"task": "classification"}, "steps": STEPS[:1],
                                    "metrics": {"accuracy": 0.95}})
    child = publish_tiny(deployed, tmp_path, "acme/digits", "1.1.0", seed=2, parent="acme/digits@1.0.0",
                         provenance={"recipe": {"task": "classification"}, "steps": STEPS,
                                     "metrics": {"accuracy": 0.94}})
    small = publish_tiny(deployed, tmp_path, "acme/digits-small", "0.1.0", seed=3, parent="acme/digits@1.1.0",
                         provenance={"recipe": {"task": "classification"}, "metrics": {"accuracy": 0.9}})
    return Registry(deployed, base, child, small)


def index_now(deployed: Any) -> Any:
    from registry.config import load_settings
    from registry.index import update_index

    return update_index(load_settings(), client=deployed.client)


@pytest.fixture
def registry_data(deployed: Any, tmp_path: Path) -> Registry:
    data = populate(deployed, tmp_path)
    index_now(deployed)
    return data


@pytest.fixture
def web(registry_data: Registry) -> Any:
    from starlette.testclient import TestClient

    from registry.explorer.app import create_app

    explorer = registry_data.explorer()
    with TestClient(create_app(explorer)) as client:
        client.explorer = explorer  # type: ignore[attr-defined]
        yield client
