"""A device's acceptance policy (TOML): what it requires beyond "the bytes are the signed bytes".

Example ``policy.toml``::

    trusted_publishers = ["0xf39F...2266"]   # only these may have published what we load
    min_confirmations = 2                    # the release must be this deep on chain
    max_artifact_size = 104857600            # bytes
    allowed_ops = ["Gemm", "Relu", "Add"]    # ONNX op types (default domain) we accept
    allowed_domains = ["com.acme"]           # op domains beyond the standard ones (default:
                                             # onnxruntime's "com.microsoft"; [] refuses it too)
    allow_unbounded_ops = ["ConstantOfShape"] # size-taking ops exempt from the allocation check
    max_alloc_elements = 268435456           # growth factor a size-taking op may apply
    opset = [7, 23]                          # inclusive range for the default-domain opset
    min_accuracy = 0.9                       # provenance predicate.metrics.accuracy must reach this
    refuse_rollback = true                   # never go back to a version older than one installed
    chain_id = 31337                         # pin the domain (stops replay from another chain)
    contract = "0x5FbD...0aa3"
    offline = false                          # true: verify from the manifest, never ask the chain
                                             # (no revocation check; an unreachable RPC is never offline)

    [attestations]
    required = 2                             # k passed attestations ...
    attesters = ["0x...", "0x...", "0x..."]  # ... from these verifiers

A policy file is input the operator writes, so mistakes in it are ``InputError`` (unknown keys
included: a typo must not silently disable a rule); refusals by a valid policy are ``PolicyError``.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from registry.errors import InputError

DEFAULT_OPSET_MIN = 7
# The newest default-domain opset this build of onnx knows; a newer one cannot be checked.
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_KEYS = {
    "trusted_publishers", "min_confirmations", "max_artifact_size", "allowed_ops", "opset", "min_accuracy",
    "refuse_rollback", "chain_id", "contract", "attestations", "offline", "allowed_domains",
    "allow_unbounded_ops", "max_alloc_elements",
}
# Largest policy file read (a policy is a few hundred bytes; /dev/zero must not be read forever).
MAX_POLICY_BYTES = 256 * 1024


@dataclass(frozen=True)
class Policy:
    trusted_publishers: tuple[str, ...] = ()
    min_confirmations: int = 0
    max_artifact_size: int | None = None
    allowed_ops: frozenset[str] | None = None
    opset_min: int = DEFAULT_OPSET_MIN
    opset_max: int | None = None  # None: the newest opset the installed onnx knows
    min_accuracy: float | None = None
    refuse_rollback: bool = False
    chain_id: int | None = None
    contract: str | None = None
    required_attestations: int = 0
    attesters: tuple[str, ...] = field(default_factory=tuple)
    offline: bool = False
    allowed_domains: frozenset[str] | None = None  # None: onnx_checks.DEFAULT_ALLOWED_DOMAINS
    allow_unbounded_ops: frozenset[str] = frozenset()
    max_alloc_elements: int | None = None  # None: onnx_alloc.DEFAULT_MAX_ALLOC_ELEMENTS

    @property
    def has_rules(self) -> bool:
        """True when the policy check has something to decide (beyond ONNX/publisher rules)."""
        return bool(self.required_attestations or self.min_accuracy is not None or self.refuse_rollback
                    or self.min_confirmations)


def load_policy(path: str | os.PathLike[str]) -> Policy:
    from registry.fsutil import read_small_file

    target = Path(path)
    data = read_small_file(target, limit=MAX_POLICY_BYTES, what="policy")
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, ValueError, RecursionError) as exc:  # ValueError: a 5000-digit integer
        raise InputError(f"policy {target} is not valid TOML: {str(exc)[:200]}") from exc
    return parse_policy(raw, where=f"policy {target.name}")


def parse_policy(raw: dict[str, Any], *, where: str = "policy") -> Policy:
    def fail(message: str) -> InputError:
        return InputError(f"{where}: {message}")

    unknown = set(raw) - _KEYS
    if unknown:
        raise fail(f"unknown keys {sorted(unknown)} (known: {sorted(_KEYS)})")
    values: dict[str, Any] = {}
    if "trusted_publishers" in raw:
        values["trusted_publishers"] = _addresses(raw["trusted_publishers"], "trusted_publishers", fail)
    for key in ("min_confirmations", "max_artifact_size", "chain_id", "max_alloc_elements"):
        if key in raw:
            values[key] = _int(raw[key], key, fail)
    if "allowed_ops" in raw:
        ops = raw["allowed_ops"]
        if not isinstance(ops, list) or not all(isinstance(op, str) and op for op in ops):
            raise fail("allowed_ops must be a list of op type names")
        values["allowed_ops"] = frozenset(ops)
    for key in ("allowed_domains", "allow_unbounded_ops"):
        if key in raw:
            items = raw[key]
            if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
                raise fail(f"{key} must be a list of strings")
            values[key] = frozenset(items)
    if "opset" in raw:
        rng = raw["opset"]
        if not (isinstance(rng, list) and len(rng) == 2):
            raise fail("opset must be [min, max]")
        low, high = (_int(v, "opset", fail) for v in rng)
        if low > high:
            raise fail("opset min is greater than max")
        values["opset_min"], values["opset_max"] = low, high
    if "min_accuracy" in raw:
        acc = raw["min_accuracy"]
        if isinstance(acc, bool) or not isinstance(acc, (int, float)) or not 0 <= acc <= 1:
            raise fail("min_accuracy must be a number in [0, 1]")
        values["min_accuracy"] = float(acc)
    for key in ("refuse_rollback", "offline"):
        if key in raw:
            if not isinstance(raw[key], bool):
                raise fail(f"{key} must be true or false")
            values[key] = raw[key]
    if "contract" in raw:
        values["contract"] = _addresses([raw["contract"]], "contract", fail)[0]
    if "attestations" in raw:
        table = raw["attestations"]
        if not isinstance(table, dict) or set(table) - {"required", "attesters"}:
            raise fail("[attestations] takes only 'required' and 'attesters'")
        required = _int(table.get("required", 0), "attestations.required", fail)
        attesters = _addresses(table.get("attesters", []), "attestations.attesters", fail)
        if required > len(attesters):
            raise fail(f"attestations.required={required} but only {len(attesters)} attesters are listed")
        values["required_attestations"], values["attesters"] = required, attesters
    return Policy(**values)


def _int(value: Any, key: str, fail: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise fail(f"{key} must be a non-negative integer")
    return value


def _addresses(value: Any, key: str, fail: Any) -> tuple[str, ...]:
    from registry.chain.lean import to_checksum_address  # eth_utils' rules, without its import time

    if not isinstance(value, list) or not all(isinstance(v, str) and _ADDRESS.match(v) for v in value):
        raise fail(f"{key} must be a list of 0x-prefixed 20-byte addresses")
    return tuple(to_checksum_address(v) for v in value)


def version_key(version: str) -> tuple[Any, ...]:
    """SemVer precedence as a sort key (build metadata ignored; pre-releases sort before the release)."""
    core, _, _build = version.partition("+")
    main, dash, pre = core.partition("-")
    numbers = tuple(int(p) for p in main.split("."))
    if not dash:
        return (*numbers, 1, ())
    ids = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
    return (*numbers, 0, ids)
