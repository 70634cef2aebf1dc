"""FeedClient: the only code that talks to a PredictionFeed contract.

Reads retry with backoff and end in UnreachableError; writes are signed locally; reverts come back
as ChainError subclasses named after the feed's custom errors (``ReleaseNotApproved(...)``), so
an oracle node can tell "another node closed this round" from "my model is no longer approved".
Answers on chain are fixed-point integers: ``to_fixed``/``from_fixed`` convert with the feed's
decimals, and refuse NaN and infinities rather than posting garbage.

The feed's rules, enforced on chain: the quorum is odd (2f+1, so the median is one of the answers
and f liars cannot move it outside the honest range), answers outside the optional
[min_answer, max_answer] bounds are refused, and a release is accepted only while the registry's
``lineageValid`` holds (``RegistryClient.lineage_ok`` asks the same question off chain).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, TypeVar

from eth_account.signers.local import LocalAccount
from eth_utils import is_address, to_checksum_address
from web3 import Web3
from web3.exceptions import ContractLogicError, Web3RPCError

from registry.chain.artifacts import load_artifact
from registry.chain.errors import ContractRevert, decode_revert
from registry.chain.confirm import confirm_receipt
from registry.chain.rpc import is_transient, make_web3, with_retries
from registry.chain.tx import send_call
from registry.errors import ChainError, InputError, UnreachableError

T = TypeVar("T")
CONTRACT = "PredictionFeed"
ZERO32 = bytes(32)
INT256_MAX = 2**255 - 1
INT256_MIN = -(2**255)
GAS_HEADROOM = 1.25


@dataclass(frozen=True)
class RoundData:
    """A closed round: Chainlink's five values plus the model that produced it."""

    round_id: int
    answer: int
    started_at: int
    updated_at: int
    answered_in_round: int
    release_id: bytes
    artifact_sha256: bytes
    submissions: int

    def to_json(self, decimals: int | None = None) -> dict[str, Any]:
        data: dict[str, Any] = dataclasses.asdict(self)
        data["release_id"] = "0x" + self.release_id.hex()
        data["artifact_sha256"] = self.artifact_sha256.hex()
        if decimals is not None:
            data["value"] = from_fixed(self.answer, decimals)
        return data


@dataclass(frozen=True)
class OpenRound:
    round_id: int
    submissions: int
    started_at: int


@dataclass(frozen=True)
class FeedStatus:
    """Everything `registry oracle feed status` shows."""

    address: str
    registry: str
    model_name: str
    description: str
    decimals: int
    version: int
    owner: str
    quorum: int
    nodes: tuple[str, ...]
    approved_release: bytes
    approved_artifact_sha256: bytes
    follow_latest: bool
    open_round: OpenRound
    latest: RoundData | None
    min_answer: int = INT256_MIN
    max_answer: int = INT256_MAX

    @property
    def bounded(self) -> bool:
        return self.min_answer != INT256_MIN or self.max_answer != INT256_MAX

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "registry": self.registry,
            "model_name": self.model_name,
            "description": self.description,
            "decimals": self.decimals,
            "version": self.version,
            "owner": self.owner,
            "quorum": self.quorum,
            "nodes": list(self.nodes),
            "approved_release": "0x" + self.approved_release.hex(),
            "approved_artifact_sha256": self.approved_artifact_sha256.hex(),
            "follow_latest": self.follow_latest,
            "open_round": dataclasses.asdict(self.open_round),
            "latest": None if self.latest is None else self.latest.to_json(self.decimals),
            "min_answer": str(self.min_answer) if self.bounded else None,
            "max_answer": str(self.max_answer) if self.bounded else None,
        }


def to_fixed(value: float, decimals: int) -> int:
    """``value`` as the feed's fixed-point integer (half-even rounding); InputError if not finite."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise InputError(f"prediction {value!r} is not a finite number")
    try:
        scaled = (Decimal(repr(float(value))) * (Decimal(10) ** decimals)).to_integral_value()
    except InvalidOperation as exc:  # pragma: no cover - finite floats always convert
        raise InputError(f"prediction {value!r} cannot be scaled: {exc}") from exc
    result = int(scaled)
    if abs(result) > INT256_MAX:
        raise InputError(f"prediction {value!r} does not fit an int256 at {decimals} decimals")
    return result


def from_fixed(answer: int, decimals: int) -> float:
    return float(Decimal(answer) / (Decimal(10) ** decimals))


def _address(value: str, what: str) -> str:
    if not isinstance(value, str) or not is_address(value):
        raise InputError(f"invalid {what} {value!r}: expected a 0x-prefixed 20-byte hex address")
    return to_checksum_address(value)


def _revert_data(exc: BaseException) -> tuple[Any, str | None] | None:
    """The raw revert data and message of a web3 exception, looking through ``raise ... from``."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ContractLogicError):
            return seen.data, seen.message
        if isinstance(seen, Web3RPCError):
            rpc = seen.rpc_response or {}
            error = rpc.get("error", {}) if isinstance(rpc, dict) else {}
            return error.get("data"), error.get("message") or str(seen)
        seen = seen.__cause__
    return None


def feed_revert(exc: BaseException) -> ChainError:
    """A revert decoded against the feed's ABI first, then the registry's (its errors bubble up
    through ``syncApprovedRelease``), so the message names the contract that refused."""
    raw = _revert_data(exc)
    if raw is None:
        return exc if isinstance(exc, ChainError) else ChainError(f"{CONTRACT} call failed: {exc}")
    data, message = raw
    decoded = decode_revert(data, contract=CONTRACT, message=message)
    if isinstance(decoded, ContractRevert) and decoded.error_name == "UnknownError":
        return decode_revert(data, contract="ModelRegistry", message=message)
    return decoded


class FeedClient:
    """A connected PredictionFeed. Build with ``at(rpc_url, address)`` or ``deploy(...)``."""

    def __init__(self, w3: Web3, address: str, rpc_url: str, confirmations: int = 0, retries: int = 3) -> None:
        self.w3 = w3
        self.address = to_checksum_address(address)
        self.rpc_url = rpc_url
        self.confirmations = confirmations
        self.retries = retries
        self.contract = w3.eth.contract(address=self.address, abi=load_artifact(CONTRACT).abi)
        self._decimals: int | None = None

    def __repr__(self) -> str:
        return f"FeedClient(rpc_url={self.rpc_url!r}, address={self.address!r})"

    @classmethod
    def at(cls, rpc_url: str, address: str, confirmations: int = 0, timeout_s: float = 10.0,
           retries: int = 3) -> "FeedClient":
        """Checks that code exists at ``address`` (a typo'd address fails here, not mid-run)."""
        checked = _address(address, "feed address")
        w3 = make_web3(rpc_url, timeout_s)
        code = with_retries(lambda: bytes(w3.eth.get_code(checked)), rpc_url, retries)
        if not code:
            raise ChainError(f"no contract at {checked} ({rpc_url})")
        return cls(w3, checked, rpc_url, confirmations, retries)

    @classmethod
    def deploy(
        cls,
        rpc_url: str,
        sender: LocalAccount,
        registry: str,
        model_name: str,
        description: str,
        decimals: int = 8,
        quorum: int = 1,
        confirmations: int = 0,
        timeout_s: float = 10.0,
        retries: int = 3,
    ) -> "FeedClient":
        """Deploys a feed for ``model_name`` reading ``registry``; ``sender`` becomes its owner."""
        from registry.release import validate_name

        validate_name(model_name)
        if not 0 <= decimals <= 36:
            raise InputError(f"decimals must be 0..36, not {decimals}")
        if quorum < 1 or quorum % 2 == 0:
            raise InputError(f"quorum must be odd (2f+1 answers tolerate f liars), not {quorum}")
        registry = _address(registry, "registry address")
        w3 = make_web3(rpc_url, timeout_s)
        artifact = load_artifact(CONTRACT)
        factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        ctor = factory.constructor(registry, model_name, description, decimals, quorum)
        try:
            receipt = send_call(w3, sender, lambda p: ctor.build_transaction(p), 0, retries=retries)
            receipt = confirm_receipt(w3, receipt, confirmations, rpc_url, retries)
        except ChainError as exc:
            raise feed_revert(exc) from exc
        if not receipt["contractAddress"]:
            raise ChainError("deployment receipt has no contract address")
        return cls(w3, receipt["contractAddress"], rpc_url, confirmations, retries)

    # ----------------------------------------------------------------------------------------
    # Plumbing
    # ----------------------------------------------------------------------------------------

    def _read(self, fn: Callable[[], T]) -> T:
        def attempt() -> T:
            try:
                return fn()
            except (ContractLogicError, Web3RPCError) as exc:
                raise feed_revert(exc) from exc

        return with_retries(attempt, self.rpc_url, self.retries)

    def _write(self, fn: Any, sender: LocalAccount) -> str:
        def build(params: dict[str, Any]) -> dict[str, Any]:
            # Headroom over the estimate: the estimate runs against the pending block, whose state
            # (another node's answer closing the round, a timestamp) may differ from the mined one.
            estimate = fn.estimate_gas({"from": params["from"]})
            return fn.build_transaction({**params, "gas": int(estimate * GAS_HEADROOM) + 10_000})

        try:
            receipt = send_call(self.w3, sender, build, 0, retries=self.retries)
            receipt = confirm_receipt(self.w3, receipt, self.confirmations, self.rpc_url, self.retries)
        except ChainError as exc:
            raise feed_revert(exc) from exc
        except Exception as exc:
            if is_transient(exc):
                raise UnreachableError(f"RPC node at {self.rpc_url} failed during a transaction: {exc}") from exc
            raise
        return "0x" + bytes(receipt["transactionHash"]).hex()

    # ----------------------------------------------------------------------------------------
    # Reads
    # ----------------------------------------------------------------------------------------

    @property
    def decimals(self) -> int:
        if self._decimals is None:
            self._decimals = self._read(lambda: int(self.contract.functions.decimals().call()))
        return self._decimals

    def description(self) -> str:
        return self._read(lambda: str(self.contract.functions.description().call()))

    def approved_release(self) -> bytes:
        return self._read(lambda: bytes(self.contract.functions.approvedRelease().call()))

    def follow_latest(self) -> bool:
        return self._read(lambda: bool(self.contract.functions.followLatest().call()))

    def answer_bounds(self) -> tuple[int, int]:
        """(min, max) answers the feed accepts; the int256 extremes when unbounded."""
        fns = self.contract.functions
        return (self._read(lambda: int(fns.minAnswer().call())), self._read(lambda: int(fns.maxAnswer().call())))

    def latest_round_id(self) -> int:
        return self._read(lambda: int(self.contract.functions.latestRoundId().call()))

    def open_round(self) -> OpenRound:
        round_id, submissions, started = self._read(lambda: self.contract.functions.openRound().call())
        return OpenRound(int(round_id), int(submissions), int(started))

    def has_submitted(self, round_id: int, node: str) -> bool:
        node = _address(node, "node address")
        return self._read(lambda: bool(self.contract.functions.hasSubmitted(round_id, node).call()))

    def is_node(self, account: str) -> bool:
        account = _address(account, "node address")
        return self._read(lambda: bool(self.contract.functions.isNode(account).call()))

    def round(self, round_id: int) -> RoundData:
        """A closed round; ChainError ``NoSuchRound`` if it has not closed."""
        fns = self.contract.functions
        rid, answer, started, updated, answered = self._read(lambda: fns.getRoundData(round_id).call())
        release_id, sha = self._read(lambda: fns.roundModel(round_id).call())
        submissions = self._read(lambda: int(fns.roundSubmissions(round_id).call()))
        return RoundData(int(rid), int(answer), int(started), int(updated), int(answered), bytes(release_id),
                         bytes(sha), submissions)

    def latest(self) -> RoundData | None:
        """The newest closed round, or None before the first one."""
        latest_id = self.latest_round_id()
        return None if latest_id == 0 else self.round(latest_id)

    def status(self) -> FeedStatus:
        fns = self.contract.functions
        return FeedStatus(
            address=self.address,
            registry=self._read(lambda: to_checksum_address(fns.registry().call())),
            model_name=self._read(lambda: str(fns.modelName().call())),
            description=self.description(),
            decimals=self.decimals,
            version=self._read(lambda: int(fns.version().call())),
            owner=self._read(lambda: to_checksum_address(fns.owner().call())),
            quorum=self._read(lambda: int(fns.quorum().call())),
            nodes=tuple(to_checksum_address(a) for a in self._read(lambda: fns.nodes().call())),
            approved_release=self.approved_release(),
            approved_artifact_sha256=self._read(lambda: bytes(fns.approvedArtifactSha256().call())),
            follow_latest=self.follow_latest(),
            open_round=self.open_round(),
            latest=self.latest(),
            min_answer=self._read(lambda: int(fns.minAnswer().call())),
            max_answer=self._read(lambda: int(fns.maxAnswer().call())),
        )

    # ----------------------------------------------------------------------------------------
    # Writes
    # ----------------------------------------------------------------------------------------

    def submit(self, round_id: int, answer: int, release_id: bytes, sender: LocalAccount) -> str:
        """Posts this node's answer for ``round_id`` made with ``release_id``; returns the tx hash."""
        if len(release_id) != 32:
            raise InputError("release id must be 32 bytes")
        return self._write(self.contract.functions.submit(round_id, int(answer), bytes(release_id)), sender)

    def add_node(self, node: str, sender: LocalAccount) -> str:
        return self._write(self.contract.functions.addNode(_address(node, "node address")), sender)

    def remove_node(self, node: str, sender: LocalAccount) -> str:
        return self._write(self.contract.functions.removeNode(_address(node, "node address")), sender)

    def set_quorum(self, quorum: int, sender: LocalAccount) -> str:
        if quorum < 1 or quorum % 2 == 0:
            raise InputError(f"quorum must be odd (2f+1 answers tolerate f liars), not {quorum}")
        return self._write(self.contract.functions.setQuorum(quorum), sender)

    def set_answer_bounds(self, min_answer: int, max_answer: int, sender: LocalAccount) -> str:
        """Refuse answers outside [min_answer, max_answer] (fixed-point, the feed's decimals); the
        int256 extremes lift a bound."""
        if not INT256_MIN <= min_answer <= max_answer <= INT256_MAX:
            raise InputError(f"answer bounds must satisfy min <= max within int256, not [{min_answer}, {max_answer}]")
        return self._write(self.contract.functions.setAnswerBounds(int(min_answer), int(max_answer)), sender)

    def set_approved_release(self, release_id: bytes, sender: LocalAccount) -> str:
        if len(release_id) != 32:
            raise InputError("release id must be 32 bytes")
        return self._write(self.contract.functions.setApprovedRelease(bytes(release_id)), sender)

    def set_follow_latest(self, enabled: bool, sender: LocalAccount) -> str:
        return self._write(self.contract.functions.setFollowLatest(enabled), sender)

    def sync_approved_release(self, sender: LocalAccount) -> str:
        return self._write(self.contract.functions.syncApprovedRelease(), sender)
