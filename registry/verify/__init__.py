"""Verification before load: nine named checks, one report, and a runtime session only if all pass.

The checks run in the order of the design (resolve, not_revoked, publisher_authorised, signature,
sha256, cid, provenance, onnx, policy). Each records pass/fail/skip with its evidence (expected vs
actual digests, the recovered signer, the revocation reason), and the procedure keeps going where
the answer is still meaningful so an operator sees every problem at once. Bytes that failed
integrity are never parsed or loaded.

``load_verified`` hashes and loads the *same* in-memory bytes: the artifact is read once (bounded
by the signed size plus one byte, so an endless or extended stream is cut off), hashed, checked, and
that buffer goes to onnxruntime. No path is opened again after the check, so swapping the file
between check and load has no effect.

Importing this module is cheap and never imports torch; onnx and onnxruntime are imported inside the
functions that need them, and the chain is read without web3, eth-account or py_ecc (the lean
reader, ``registry.chain.reads``), because a device's first verify must be fast.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from registry.verify.chain_checks import MAX_PARENT_DEPTH
from registry.verify.procedure import load_verified, verify, verify_bytes
from registry.verify.provenance_check import provenance_path_beside
from registry.verify.report import (
    CHECK_ERRORS,
    CHECK_NAMES,
    Check,
    Status,
    VerificationFailed,
    VerificationReport,
    describe_exit_codes,
)

__all__ = [
    "CHECK_ERRORS", "CHECK_NAMES", "MAX_PARENT_DEPTH", "Check", "Status", "VerificationFailed", "VerificationReport",
    "describe_exit_codes", "load_verified", "provenance_path_beside", "verify", "verify_bytes",
]


class _CallableModule(types.ModuleType):
    """``registry.verify(ref, ...)`` must work even after ``import registry.verify`` made the package
    attribute the module: the module itself then forwards calls to ``verify``."""

    def __call__(self, *args: Any, **kwargs: Any) -> VerificationReport:
        return verify(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
