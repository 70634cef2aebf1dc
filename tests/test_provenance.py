"""Provenance documents: canonical hashing, file binding, strict parsing of hostile input."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import assume, example, given, settings, strategies as st

from registry.errors import ProvenanceError
from registry.provenance import (
    PREDICATE_TYPE,
    STATEMENT_TYPE,
    accuracy,
    canonical_json,
    load_provenance,
    provenance_sha256,
    render_lines,
    statement,
    subject_sha256,
    write_provenance,
)

DIGEST = "ab" * 32


def _doc(**predicate):
    pred = {"base_model": {"sha256": "cd" * 32, "format": "onnx"}, "metrics": {"accuracy": 0.93}}
    pred.update(predicate)
    return statement(DIGEST, "model.onnx", pred)


def test_statement_shape():
    doc = _doc()
    assert doc["_type"] == STATEMENT_TYPE
    assert doc["predicateType"] == PREDICATE_TYPE
    assert doc["subject"] == [{"name": "model.onnx", "digest": {"sha256": DIGEST}}]
    assert subject_sha256(doc) == DIGEST


def test_statement_normalises_prefixed_upper_hex():
    doc = statement("sha256:" + DIGEST.upper(), "m", {})
    assert subject_sha256(doc) == DIGEST


@pytest.mark.parametrize("bad", ["", "ab" * 31, "zz" * 32, None, "ab" * 33])
def test_statement_rejects_bad_digest(bad):
    with pytest.raises(ProvenanceError):
        statement(bad, "m", {})


def test_canonical_is_key_order_independent():
    a = {"b": 1, "a": {"y": [1, 2.5], "x": "é"}}
    b = {"a": {"x": "é", "y": [1, 2.5]}, "b": 1}
    assert canonical_json(a) == canonical_json(b) == b'{"a":{"x":"\xc3\xa9","y":[1,2.5]},"b":1}'


def test_written_file_hash_equals_provenance_sha256(tmp_path):
    doc = _doc()
    path = write_provenance(doc, tmp_path / "p.json")
    assert hashlib.sha256(path.read_bytes()).digest() == provenance_sha256(doc)
    assert load_provenance(path) == doc
    assert load_provenance(path.read_bytes()) == doc
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_any_change_changes_the_digest():
    doc = _doc()
    other = _doc(metrics={"accuracy": 0.931})
    assert provenance_sha256(doc) != provenance_sha256(other)


def test_accuracy_extraction():
    assert accuracy(_doc()) == pytest.approx(0.93)
    assert accuracy(_doc(metrics={})) is None
    assert accuracy(_doc(metrics={"accuracy": True})) is None
    assert accuracy(_doc(metrics={"accuracy": "0.9"})) is None


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        b"[]",
        b'{"_type": "x"}',
        b'{"a": NaN}',
        b'{"a": 1e999}',
        b'{"a": 1, "a": 2}',
        b"[" * 100000 + b"]" * 100000,
        json.dumps({"_type": STATEMENT_TYPE, "subject": [], "predicateType": "p", "predicate": {}}).encode(),
        json.dumps({"_type": STATEMENT_TYPE, "subject": [{"name": "m", "digest": {"sha256": "XY"}}],
                    "predicateType": "p", "predicate": {}}).encode(),
        json.dumps({"_type": STATEMENT_TYPE, "subject": [{"name": "m", "digest": {"sha256": DIGEST}}],
                    "predicateType": "p", "predicate": []}).encode(),
        json.dumps({"_type": STATEMENT_TYPE, "subject": [{"name": "m", "digest": {"sha256": DIGEST}}],
                    "predicateType": "p", "predicate": {"metrics": 3}}).encode(),
    ],
)
def test_malformed_documents_are_clean_errors(raw):
    with pytest.raises(ProvenanceError):
        load_provenance(raw)


def test_oversized_document_rejected_without_reading_it_all(tmp_path):
    path = tmp_path / "big.json"
    path.write_bytes(b" " * (5 * 1024 * 1024))
    with pytest.raises(ProvenanceError, match="larger"):
        load_provenance(path)


def test_missing_file_is_provenance_error(tmp_path):
    with pytest.raises(ProvenanceError, match="cannot read"):
        load_provenance(tmp_path / "nope.json")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(value=json_values)
def test_arbitrary_json_never_tracebacks(value):
    raw = json.dumps(value).encode()
    try:
        doc = load_provenance(raw)
    except ProvenanceError:
        return
    assert subject_sha256(doc)


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=300))
def test_arbitrary_bytes_never_traceback(raw):
    try:
        load_provenance(raw)
    except ProvenanceError:
        pass


@settings(max_examples=100, deadline=None)
@given(predicate=st.dictionaries(st.text(max_size=8), json_values, max_size=5))
@example(predicate={"metrics": {"accuracy": 0.5}, "steps": []})
def test_roundtrip_through_canonical_bytes(predicate):
    # "metrics" has a schema of its own (an object), tested below; everything else is free-form.
    assume(not ("metrics" in predicate and not isinstance(predicate["metrics"], dict)))
    doc = statement(DIGEST, "m", predicate)
    try:
        data = canonical_json(doc)
    except ProvenanceError:
        return  # e.g. integers beyond JCS's safe range
    assert load_provenance(data) == json.loads(data)
    assert hashlib.sha256(data).digest() == provenance_sha256(doc)


@pytest.mark.parametrize("metrics", [[], "0.9", 0.9, None, True])
def test_non_object_metrics_are_refused(metrics):
    doc = statement(DIGEST, "m", {"metrics": {}})
    doc["predicate"]["metrics"] = metrics
    if metrics is None:
        assert load_provenance(canonical_json(doc))["predicate"]["metrics"] is None  # absent-equivalent
        return
    with pytest.raises(ProvenanceError, match="metrics must be an object"):
        load_provenance(canonical_json(doc))


def test_render_lines_mentions_steps_and_metrics():
    doc = _doc(steps=[{"name": "prune", "params": {"amount": 0.5}, "metrics_before": {"accuracy": 0.95},
                       "metrics_after": {"accuracy": 0.94}}])
    text = "\n".join(render_lines(doc))
    assert DIGEST in text and "prune" in text and "0.94" in text and "accuracy" in text


class _Store:
    def __init__(self, raw=None, error=None):
        self.raw, self.error = raw, error

    def get_bytes(self, cid, max_size=None):
        if self.error:
            raise self.error
        return self.raw


def test_provenance_section_for_show():
    from types import SimpleNamespace

    from registry.errors import UnreachableError
    from registry.provenance import provenance_section

    doc = _doc()
    raw = canonical_json(doc)
    record = SimpleNamespace(provenance_cid=b"", provenance_sha256=hashlib.sha256(raw).digest(),
                             artifact_sha256=bytes.fromhex(DIGEST))
    section = provenance_section(_Store(raw), record)
    assert section["status"] == "bound" and section["document"] == doc and any(DIGEST in l for l in section["lines"])
    assert provenance_section(_Store(raw + b" "), record)["status"] == "altered"
    assert provenance_section(_Store(error=UnreachableError("down")), record)["status"] == "unavailable"
    other = SimpleNamespace(**{**vars(record), "artifact_sha256": b"\x00" * 32})
    assert provenance_section(_Store(raw), other)["status"] == "other-artifact"
