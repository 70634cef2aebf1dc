"""Hostile ONNX models for the harness: the attacks ``tests/test_onnx_checks.py`` builds, by name."""

from __future__ import annotations


def hostile_models() -> dict[str, bytes]:
    from onnx import helper

    from tests.test_onnx_checks import EXTERNAL_PLACES, HUGE, RANKS, _custom_domain_model, _shape_model

    models = {f"external data in {place}": build() for place, build in EXTERNAL_PLACES.items()}
    for case, nodes in HUGE.items():
        ordered = sorted(nodes, key=lambda n: n.op_type != "Constant")
        models[f"allocation bomb: {case}"] = _shape_model(ordered, RANKS.get(case, 2))
    models["custom domain op"] = _custom_domain_model("com.evil")
    models["no graph"] = helper.make_model(helper.make_graph([], "g", [], [])).SerializeToString()[:4]
    return models
