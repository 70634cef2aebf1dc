"""Model cards: Hub-style front matter parsed with limits, hostile YAML refused fast, drafts from provenance."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.card import (
    MAX_CARD_BYTES,
    MAX_FRONT_MATTER_BYTES,
    CardError,
    draft_card,
    load_card,
    parse_card,
    relation_from_steps,
)
from registry.provenance import statement

GOOD = b"""---
license: apache-2.0
language:
- en
- fr
tags: [onnx, int8]
datasets: digits
base_model: acme/digits@1.0.0
base_model_relation: quantized
pipeline_tag: image-classification
released: 2024-05-01
model-index:
- name: digits-int8
  results:
  - task: {type: image-classification, name: Digits}
    dataset: {type: sklearn/digits, name: Digits}
    metrics:
    - {type: accuracy, value: 0.962, name: Accuracy}
    - {type: f1, value: 0.95}
---
# Digits INT8

A quantized digits classifier.
"""


def test_hub_fields_are_read():
    card = parse_card(GOOD)
    assert card.license == "apache-2.0"
    assert card.language == ("en", "fr") and card.tags == ("onnx", "int8") and card.datasets == ("digits",)
    assert card.base_model == ("acme/digits@1.0.0",) and card.base_model_relation == "quantized"
    assert card.pipeline_tag == "image-classification" and card.title == "Digits INT8"
    assert [(r.metric_type, r.value, r.dataset_name) for r in card.results] == [("accuracy", 0.962, "Digits"),
                                                                               ("f1", 0.95, "Digits")]
    assert card.metadata["released"] == "2024-05-01"  # dates stay strings (JSON-safe)
    assert card.body.startswith("# Digits INT8")


def test_a_card_without_front_matter_is_all_body():
    card = parse_card(b"# Just text\n\n---\nnot front matter\n")
    assert card.metadata == {} and card.title == "Just text"


@pytest.mark.parametrize("relation", ["quantized", "pruned", "distilled", "finetune", "adapter", "merge"])
def test_every_relation_is_accepted(relation):
    assert parse_card(f"---\nbase_model: a/b\nbase_model_relation: {relation}\n---\n").base_model_relation == relation


@pytest.mark.parametrize("front, message", [
    ("base_model: a/b\nbase_model_relation: stolen", "not one of"),
    ("base_model_relation: quantized", "base_model is not"),
    ("license: [mit]", "must be a string"),
    ("tags: {a: 1}", "list of strings"),
    ("model-index: 3", "must be a list"),
    ("compression_report: {plots: [{title: x}]}", "cid"),
    ("license: mit\nlicense: gpl-3.0", "repeats the key"),
    ("? [1, 2]\n: x", "not a string"),
    ("- just\n- a list", "mapping"),
    ("a: .nan", "non-finite"),
    ("a: [unclosed", "not valid YAML"),
])
def test_bad_fields_are_refused_with_a_reason(front, message):
    with pytest.raises(CardError, match=message):
        parse_card(f"---\n{front}\n---\nbody\n")


@pytest.mark.parametrize("front, message", [
    ("a: &x [1, 2]\nb: *x", "anchor"),
    ("a: !!python/object/apply:os.system ['true']", "tag"),
    ("a: !!binary aGVsbG8=", "tag"),
    ("a: !custom x", "tag"),
    ("a: !!set {x}", "tag"),
])
def test_yaml_features_that_execute_or_expand_are_refused(front, message):
    with pytest.raises(CardError, match=message):
        parse_card(f"---\n{front}\n---\n")


def test_a_billion_laughs_bomb_is_refused_at_once():
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [*a{i - 1},*a{i - 1},*a{i - 1},*a{i - 1},*a{i - 1},*a{i - 1},*a{i - 1},*a{i - 1},*a{i - 1}]"
              for i in range(1, 10)]
    started = time.perf_counter()
    with pytest.raises(CardError, match="anchor"):
        parse_card("---\n" + "\n".join(lines) + "\n---\n")
    assert time.perf_counter() - started < 1.0


def test_deep_nesting_and_node_floods_are_bounded():
    with pytest.raises(CardError, match="nested deeper"):
        parse_card("---\na: " + "[" * 40 + "]" * 40 + "\n---\n")
    with pytest.raises(CardError):
        parse_card("---\na: " + "[" * 20000 + "\n---\n")  # unbalanced too: refused, never a RecursionError
    flood = "a: [" + ",".join(["1"] * 12000) + "]"
    with pytest.raises(CardError, match="(nodes|larger)"):
        parse_card(f"---\n{flood}\n---\n")


def test_size_limits_hold_before_parsing():
    with pytest.raises(CardError, match="larger than"):
        parse_card(b"x" * (MAX_CARD_BYTES + 1))
    big = "a: '" + "x" * MAX_FRONT_MATTER_BYTES + "'"
    with pytest.raises(CardError, match="front matter is larger"):
        parse_card(f"---\n{big}\n---\n")


@pytest.mark.parametrize("data, message", [
    (b"---\xff\xfe", "UTF-8"),
    (b"---\nlicense: mit\n", "never ends"),
    (b"# title\x00", "NUL"),
])
def test_bad_bytes(data, message):
    with pytest.raises(CardError, match=message):
        parse_card(data)


def test_crlf_and_bom_are_accepted():
    assert parse_card(b"\xef\xbb\xbf---\r\nlicense: mit\r\n---\r\n# T\r\n").license == "mit"


def test_load_card_reads_only_regular_files(tmp_path):
    with pytest.raises(CardError, match="regular file"):
        load_card(tmp_path)
    path = tmp_path / "CARD.md"
    path.write_bytes(GOOD)
    assert load_card(path).license == "apache-2.0"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048) | st.text(max_size=2048).map(lambda t: ("---\n" + t + "\n---\n").encode()))
def test_arbitrary_input_never_raises_anything_but_card_error(data):
    try:
        parse_card(data)
    except CardError:
        pass


# --------------------------------------------------------------------------------------------
# Drafts
# --------------------------------------------------------------------------------------------

PROVENANCE = statement("ab" * 32, "model.onnx", {
    "base_model": {"sha256": "cd" * 32, "format": "pytorch", "ref": "acme/digits@1.0.0"},
    "recipe": {"task": "classification"},
    "steps": [
        {"name": "structured_prune", "params": {"ratio": 0.6}, "metrics_before": {"accuracy": 0.97},
         "metrics_after": {"accuracy": 0.955}},
        {"name": "quantize", "params": {"mode": "static", "nested": {"x": 1}},
         "metrics_before": {"accuracy": 0.955}, "metrics_after": {"accuracy": 0.951, "latency": {"p50": 1}}},
    ],
    "data": {"evaluation_sha256": "ef" * 32},
    "tools": {"torch": "2.13.0", "onnx": "1.17"},
    "seeds": {"torch": 0},
    "metrics": {"accuracy": 0.951, "size_bytes": 12345, "flag": True},
})


def test_a_draft_from_provenance_parses_and_carries_steps_and_metrics():
    text = draft_card(PROVENANCE, name="acme/digits-int8", version="1.0.0", license="mit",
                      plots=[{"title": "accuracy vs size", "cid": "bafkreiabc"}])
    card = parse_card(text)
    assert card.base_model == ("acme/digits@1.0.0",) and card.base_model_relation == "quantized"
    assert card.license == "mit" and "structured_prune" in card.tags and "quantize" in card.tags
    assert {(r.metric_type, r.value) for r in card.results} == {("accuracy", 0.951), ("size_bytes", 12345)}
    assert card.plots == ({"title": "accuracy vs size", "cid": "bafkreiabc"},)
    assert "| 1 | structured_prune | ratio=0.6 | accuracy=0.97 | accuracy=0.955 |" in card.body
    assert "| 2 | quantize | mode=static | accuracy=0.955 | accuracy=0.951 |" in card.body
    assert "evaluation_sha256" in card.body and "torch" in card.body
    assert card.title == "acme/digits-int8 1.0.0"


def test_a_draft_keeps_hostile_provenance_strings_inside_their_cells():
    doc = statement("ab" * 32, "m.onnx", {"steps": [{"name": "x|y\n# injected heading", "params": {"a": "`b`|c"},
                                                      "metrics_before": {}, "metrics_after": {}}]})
    card = parse_card(draft_card(doc))
    assert "# injected heading" not in card.body.splitlines()
    row = next(line for line in card.body.splitlines() if line.startswith("| 1 |"))
    assert row.count(" | ") == 4  # five cells, the pipes in the values are escaped


def test_relation_from_steps():
    assert relation_from_steps([{"name": "prune"}, {"name": "quantize"}]) == "quantized"
    assert relation_from_steps([{"name": "distill"}, {"name": "prune"}]) == "distilled"
    assert relation_from_steps([{"name": "structured_prune"}]) == "pruned"
    assert relation_from_steps([{"name": "export"}]) is None
    assert parse_card(draft_card(statement("ab" * 32, "m.onnx", {}))).base_model == ()
