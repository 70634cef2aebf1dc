"""The verification report: nine named checks, each pass/fail/skip with its evidence.

A failing check carries the exit code of its error class, so a script on a device can branch on
the kind of failure (integrity, signature, revocation, provenance, format) without parsing text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal, Sequence

from registry.errors import (
    ChainError,
    IntegrityError,
    PolicyError,
    ProvenanceError,
    RegistryError,
    RevokedError,
    SignatureError,
)

if TYPE_CHECKING:
    from registry.chain.records import ReleaseRecord

CHECK_NAMES: tuple[str, ...] = (
    "resolve", "not_revoked", "publisher_authorised", "signature", "sha256", "cid", "provenance", "onnx", "policy",
)
# The error class a failing check stands for (its exit code is what a script on a device branches on).
CHECK_ERRORS: dict[str, type[RegistryError]] = {
    "resolve": ChainError,
    "not_revoked": RevokedError,
    "publisher_authorised": SignatureError,
    "signature": SignatureError,
    "sha256": IntegrityError,
    "cid": IntegrityError,
    "provenance": ProvenanceError,
    "onnx": PolicyError,
    "policy": PolicyError,
}
Status = Literal["pass", "fail", "skip"]


@dataclass
class Check:
    name: str
    status: Status
    detail: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None  # set on failure: the class of the failure

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "status": self.status, "detail": self.detail,
                               "evidence": self.evidence}
        if self.exit_code is not None:
            out["exit_code"] = self.exit_code
        return out


@dataclass
class VerificationReport:
    ref: str
    checks: list[Check]
    release: "ReleaseRecord | None" = None
    mode: Literal["online", "offline"] = "online"
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.status != "fail" for c in self.checks) and any(c.status == "pass" for c in self.checks)

    @property
    def exit_code(self) -> int:
        """0 when ok, else the exit code of the first failing check (in verification order)."""
        for check in self.checks:
            if check.status == "fail":
                return check.exit_code or CHECK_ERRORS[check.name].exit_code
        return 0

    @property
    def first_failure(self) -> Check | None:
        return next((c for c in self.checks if c.status == "fail"), None)

    def check(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)

    def summary(self) -> str:
        failure = self.first_failure
        if failure is None:
            return f"{self.ref}: verified ({self.mode})"
        return f"{self.ref}: {failure.name} failed: {failure.detail}"

    def to_json(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "ok": self.ok,
            "exit_code": self.exit_code,
            "mode": self.mode,
            "notes": self.notes,
            "release": self.release.to_json() if self.release is not None else None,
            "checks": [c.to_json() for c in self.checks],
        }


class VerificationFailed(RegistryError):
    """Raised by ``load_verified``/``pull`` when a check failed; carries the full report."""

    def __init__(self, report: VerificationReport) -> None:
        super().__init__(report.summary())
        self.report = report
        self.exit_code = report.exit_code




def fail(name: str, detail: str, evidence: dict[str, Any] | None = None,
         error: type[RegistryError] | None = None) -> Check:
    """A failed check whose exit code is that of ``error`` (default: the check's own class)."""
    code = (error or CHECK_ERRORS[name]).exit_code
    return Check(name, "fail", detail, evidence or {}, exit_code=code)


def guarded(name: str, run: Callable[[], Check]) -> Check:
    """Runs one check; any exception becomes that check's failure, never a traceback."""
    try:
        return run()
    except RegistryError as exc:
        return fail(name, str(exc), error=type(exc))
    except Exception as exc:
        return unexpected(name, exc)


def unexpected(name: str, exc: BaseException) -> Check:
    if isinstance(exc, RegistryError):
        return fail(name, str(exc), error=type(exc))
    message = str(exc).splitlines()[0][:200] if str(exc) else ""
    return fail(name, f"unexpected {type(exc).__name__}: {message}", {"exception": type(exc).__name__})


def describe_exit_codes() -> Sequence[tuple[int, str]]:
    return (
        (0, "verified"),
        (3, "bad input (reference, manifest, policy file)"),
        (6, "chain refused (unknown release, wrong chain, no contract)"),
        (10, "integrity: SHA-256, CID or size mismatch"),
        (11, "signature or publisher authorisation"),
        (12, "revoked (the release or an ancestor)"),
        (13, "provenance missing, altered or for another artifact"),
        (14, "format/policy: not acceptable ONNX or a policy rule refuses it"),
        (15, "unreachable: RPC, store or gateway did not answer"),
    )

