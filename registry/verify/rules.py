"""Checks 8-9: the ONNX format rules and the optional policy (rollback, accuracy, confirmations,
k-of-n attestations).

The rollback rule fails closed: a version that cannot be compared (not SemVer 2.0.0) fails it.
A k-of-n attestation rule reads only the listed attesters' verdicts (one O(1) read each), so
anyone piling attestations on a release cannot make the read slower or push it past an eth_call's gas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from registry.errors import PolicyError, RegistryError
from registry.verify.report import Check, fail

if TYPE_CHECKING:
    from registry.chain.reads import ChainReader
    from registry.chain.records import ReleaseRecord
    from registry.policy import Policy


def check_onnx(data: bytes, pol: "Policy") -> Check:
    from registry.onnx_checks import check_onnx as check_model

    try:
        facts = check_model(data, pol)
    except PolicyError as exc:
        return fail("onnx", str(exc))
    return Check("onnx", "pass", f"ONNX IR {facts.ir_version}, opset {facts.opset}, {facts.nodes} nodes",
                 facts.evidence())


def check_policy(record: "ReleaseRecord", client: "ChainReader | None", pol: "Policy",
                 doc: dict[str, Any] | None, installed_version: str | None) -> Check:
    from registry.policy import version_key
    from registry.provenance import accuracy
    from registry.release import is_valid_version

    if not pol.has_rules:
        return Check("policy", "skip", "no policy rules to apply")
    evidence: dict[str, Any] = {}
    problems: list[str] = []
    if pol.refuse_rollback and installed_version is not None:
        evidence["installed_version"] = installed_version
        if not (is_valid_version(record.version) and is_valid_version(installed_version)):
            problems.append(f"rollback rule cannot compare {record.version[:64]!r} with installed "
                            f"{installed_version[:64]!r} (not SemVer 2.0.0): refused")
        elif version_key(record.version) < version_key(installed_version):
            problems.append(f"rollback refused: {record.version} is older than installed {installed_version}")
    if pol.min_accuracy is not None:
        value = accuracy(doc) if doc is not None else None
        evidence["min_accuracy"] = pol.min_accuracy
        evidence["accuracy"] = value
        if value is None:
            problems.append("provenance records no accuracy (predicate.metrics.accuracy)")
        elif value < pol.min_accuracy:
            problems.append(f"accuracy {value:.4f} is below the policy minimum {pol.min_accuracy:.4f}")
    if pol.min_confirmations:
        evidence["min_confirmations"] = pol.min_confirmations
        if client is None:
            problems.append("confirmations cannot be checked offline")
        else:
            try:
                confirmations = _confirmations(client, record)
            except RegistryError as exc:
                problems.append(f"cannot count confirmations: {exc}")
            else:
                evidence["confirmations"] = confirmations
                if confirmations < pol.min_confirmations:
                    problems.append(f"{confirmations} confirmations, policy needs {pol.min_confirmations}")
    if pol.required_attestations:
        evidence["required_attestations"] = pol.required_attestations
        if client is None:
            problems.append("attestations cannot be checked offline")
        else:
            try:
                verdicts = [client.attestation_of(record.id, attester) for attester in dict.fromkeys(pol.attesters)]
            except RegistryError as exc:
                problems.append(f"cannot read attestations: {exc}")
            else:
                passed = sorted(a.attester for a in verdicts if a is not None and a.passed)
                failed = sorted(a.attester for a in verdicts if a is not None and not a.passed)
                evidence.update(passed_by=passed, failed_by=failed)
                if len(passed) < pol.required_attestations:
                    problems.append(f"{len(passed)} of {pol.required_attestations} required attestations from "
                                    "listed attesters")
    if problems:
        return fail("policy", "; ".join(problems), evidence)
    return Check("policy", "pass", "policy rules met", evidence)


def _confirmations(client: "ChainReader", record: "ReleaseRecord") -> int:
    """Blocks on top of the one that anchored the release (from its ReleasePublished event)."""
    from registry.chain.reads import confirmations

    return confirmations(client, record)
