"""Provenance documents as auditors see them: exactly what `registry show` prints for a document,
each shape rule the verifier relies on, and the accuracy a policy minimum reads."""

from __future__ import annotations

import datetime
import hashlib
from pathlib import Path
from types import SimpleNamespace

import pytest

from registry.errors import ProvenanceError, UnreachableError
from registry.provenance import (
    MAX_DOCUMENT_BYTES,
    accuracy,
    canonical_json,
    load_provenance,
    provenance_section,
    render_lines,
    statement,
    subject_sha256,
    validate,
    write_provenance,
)

DIGEST = "ab" * 32
BASE = "cd" * 32


def full_doc() -> dict:
    return statement(DIGEST, "model.onnx", {
        "base_model": {"sha256": BASE, "format": "onnx", "ref": "acme/base@1.0.0"},
        "recipe": {"name": "int8"},
        "steps": [
            {"name": "prune", "params": {"amount": 0.5}, "metrics_before": {"accuracy": 0.95},
             "metrics_after": {"accuracy": 0.94}},
            "not a step",
            {"name": "quantize", "params": {}},
        ],
        "data": {"calibration": "ef" * 4},
        "tools": {"onnx": "1.17"},
        "seeds": {"torch": 0},
        "metrics": {"accuracy": 0.93},
    })


def test_show_prints_every_part_of_the_document() -> None:
    assert render_lines(full_doc()) == [
        f"subject      model.onnx  sha256:{DIGEST}",
        "predicate    https://registry.dev/compression/v1",
        f"base model   sha256:{BASE}  (acme/base@1.0.0)  format=onnx",
        'recipe       {"name":"int8"}',
        'step 1       prune  params={"amount":0.5}',
        '             metrics {"accuracy":0.95} -> {"accuracy":0.94}',
        "step 3       quantize  params={}",
        'data         {"calibration":"efefefef"}',
        'tools        {"onnx":"1.17"}',
        'seeds        {"torch":0}',
        'metrics      {"accuracy":0.93}',
    ]


def test_show_marks_what_is_missing_and_shortens_what_is_long() -> None:
    doc = statement(DIGEST, "m", {"base_model": {}, "recipe": {"k": "v" * 400},
                                  "steps": [{"metrics_after": {"accuracy": 0.5}}]})
    lines = render_lines(doc)
    assert lines[2] == "base model   sha256:?  format=?"
    assert lines[3].startswith('recipe       {"k":"vvv') and lines[3].endswith("...")
    assert len(lines[3]) == len("recipe       ") + 160
    assert lines[4] == "step 1       ?  params={}"
    assert lines[5] == '             metrics {} -> {"accuracy":0.5}'
    broken = {"subject": [], "predicate": {}}
    assert render_lines(broken)[:2] == ["subject      (malformed)", "predicate    ?"]


def test_a_short_value_is_shown_whole() -> None:
    recipe = {"k": "v" * 152}  # 160 characters of JSON exactly
    line = render_lines(statement(DIGEST, "m", {"recipe": recipe}))[2]
    assert line == 'recipe       {"k":"' + "v" * 152 + '"}' and len(line) == len("recipe       ") + 160


@pytest.mark.parametrize("name", ["", None, 5])
def test_statement_needs_a_subject_name(name: object) -> None:
    with pytest.raises(ProvenanceError, match="subject name"):
        statement(DIGEST, name, {})  # type: ignore[arg-type]


def test_statement_needs_an_object_predicate() -> None:
    with pytest.raises(ProvenanceError, match="predicate must be a JSON object"):
        statement(DIGEST, "m", [])  # type: ignore[arg-type]


def test_statement_accepts_0x_and_sha256_prefixes() -> None:
    for text in ("0x" + DIGEST, "sha256:" + DIGEST, DIGEST.upper(), "SHA256:" + DIGEST):
        assert subject_sha256(statement(text, "m", {})) == DIGEST


@pytest.mark.parametrize("change, why", [
    ({"_type": "https://in-toto.io/Statement/v0.1"}, "_type"),
    ({"predicateType": ""}, "predicateType"),
    ({"predicateType": 5}, "predicateType"),
    ({"predicate": []}, "predicate must be a JSON object"),
    ({"subject": []}, "exactly one subject"),
    ({"subject": [{"name": "a", "digest": {"sha256": DIGEST}}] * 2}, "exactly one subject"),
    ({"subject": {"name": "a"}}, "exactly one subject"),
    ({"subject": ["a"]}, "object with a name"),
    ({"subject": [{"digest": {"sha256": DIGEST}}]}, "object with a name"),
    ({"subject": [{"name": "a", "digest": DIGEST}]}, "no sha256 digest"),
    ({"subject": [{"name": "a", "digest": {"sha512": DIGEST}}]}, "no sha256 digest"),
    ({"subject": [{"name": "a", "digest": {"sha256": DIGEST.upper()}}]}, "64 lower-case hex"),
    ({"subject": [{"name": "a", "digest": {"sha256": DIGEST + "0"}}]}, "64 lower-case hex"),
])
def test_each_shape_rule_refuses_with_its_reason(change: dict, why: str) -> None:
    doc = {**statement(DIGEST, "m", {}), **change}
    with pytest.raises(ProvenanceError, match=why):
        validate(doc)
    with pytest.raises(ProvenanceError, match=why):
        load_provenance(canonical_json(doc))


def test_any_predicate_type_is_accepted() -> None:
    doc = {**statement(DIGEST, "m", {}), "predicateType": "https://slsa.dev/provenance/v1"}
    validate(doc)
    assert subject_sha256(doc) == DIGEST


@pytest.mark.parametrize("metrics, expected", [
    ({"accuracy": 0.9}, 0.9), ({"accuracy": 1}, 1.0), ({"accuracy": 0}, 0.0), ({"accuracy": True}, None),
    ({"accuracy": "0.9"}, None), ({}, None), (None, None), ([0.9], None),
])
def test_accuracy_is_a_number_or_nothing(metrics: object, expected: float | None) -> None:
    value = accuracy({"predicate": {"metrics": metrics}})
    assert value == expected and (value is None or isinstance(value, float))
    assert accuracy({}) is None


def test_written_document_is_validated_first(tmp_path: Path) -> None:
    target = tmp_path / "prov.json"
    with pytest.raises(ProvenanceError):
        write_provenance({"subject": []}, target)
    assert not target.exists()
    write_provenance(full_doc(), target)
    assert load_provenance(target) == full_doc()
    assert load_provenance(str(target)) == full_doc()


def test_a_document_over_the_limit_is_refused_from_a_file(tmp_path: Path) -> None:
    target = tmp_path / "big.json"
    target.write_bytes(b" " * (MAX_DOCUMENT_BYTES + 1))
    with pytest.raises(ProvenanceError):
        load_provenance(target)


class _Store:
    def __init__(self, raw: bytes | None = None, error: Exception | None = None) -> None:
        self.raw, self.error, self.asked = raw, error, []

    def get_bytes(self, cid: bytes, max_size: int | None = None) -> bytes:
        self.asked.append((cid, max_size))
        if self.error:
            raise self.error
        assert self.raw is not None
        return self.raw


def _record(raw: bytes, artifact: str = DIGEST) -> SimpleNamespace:
    return SimpleNamespace(provenance_cid=b"\x01cid", provenance_sha256=hashlib.sha256(raw).digest(),
                           artifact_sha256=bytes.fromhex(artifact))


def test_show_section_reads_the_recorded_cid_with_a_size_limit() -> None:
    raw = canonical_json(full_doc())
    store = _Store(raw)
    section = provenance_section(store, _record(raw))
    assert store.asked == [(b"\x01cid", MAX_DOCUMENT_BYTES)]
    assert section == {"status": "bound", "document": full_doc(), "lines": render_lines(full_doc())}


def test_show_section_says_why_a_document_is_not_shown() -> None:
    raw = canonical_json(full_doc())
    down = provenance_section(_Store(error=UnreachableError("node down")), _record(raw))
    assert down == {"status": "unavailable", "document": None, "lines": ["not available from the store: node down"]}
    altered = provenance_section(_Store(raw + b" "), _record(raw))
    assert altered == {"status": "altered", "document": None,
                       "lines": ["document does not match the provenance sha256 on chain"]}
    junk = b'{"subject": []}'
    malformed = provenance_section(_Store(junk), _record(junk))
    assert malformed["status"] == "malformed" and malformed["document"] is None
    assert "must be" in malformed["lines"][0] or "subject" in malformed["lines"][0]
    other = provenance_section(_Store(raw), _record(raw, artifact="00" * 32))
    assert other["status"] == "other-artifact" and other["document"] == full_doc()


def test_load_errors_call_the_input_provenance(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(ProvenanceError, match=r"^provenance .*d"):
        load_provenance(tmp_path / "d")
    with pytest.raises(ProvenanceError, match=r"^provenance"):
        load_provenance(b"{not json")


def test_show_lines_skip_what_is_absent_or_not_a_table_and_never_crash() -> None:
    doc = {"subject": [{"name": "m.onnx", "digest": {"sha256": "ab" * 32}}], "predicateType": "t",
           "predicate": {"recipe": ["prune"], "data": {}, "tools": ["x"], "seeds": "s",
                         "metrics": {"b": 2, "a": datetime.date(2026, 1, 2)}}}
    lines = render_lines(doc)
    assert not any(line.startswith(("recipe", "data", "tools", "seeds")) for line in lines)
    # tables are shown compactly with sorted keys; values JSON cannot hold are shown as text
    assert lines[-1] == 'metrics      {"a":"2026-01-02","b":2}'
    assert render_lines({"predicateType": "t"})[1] == "predicate    t"
