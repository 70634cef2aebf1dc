"""The contract's events as typed values: which ones the index follows, and how a raw log decodes.

The event ABIs come from the committed ModelRegistry artifact, so a rebuilt contract reaches the
index without edits to the decoder. Handlers read arguments by *name* (``aliasName``,
``namespaceKey``, ``cardSha256``...), so an event whose fields are reordered still decodes; one that
is renamed or loses a followed event fails ``specs()`` at once instead of leaving the index silently
incomplete.

Logs are decoded with eth_abi directly (no web3 contract objects on the hot path): indexing 10,000
releases spends its time in SQLite, not in decoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Mapping

from eth_abi import decode as abi_decode
from eth_utils import keccak, to_checksum_address

# Events this index applies, with the arguments its handlers read (anything else from the contract
# is counted and ignored). Names own nothing on their own: their namespace's owner owns them (D2).
FOLLOWED: dict[str, tuple[str, ...]] = {
    "NamespaceClaimed": ("namespaceKey", "namespace", "owner"),
    "NamespaceTransferProposed": ("namespaceKey", "namespace", "from", "to"),
    "NamespaceTransferred": ("namespaceKey", "namespace", "from", "to"),
    "PublisherAdded": ("nameKey", "name", "publisher"),
    "PublisherRemoved": ("nameKey", "name", "publisher"),
    "ReleasePublished": ("releaseId", "nameKey", "artifactSha256", "name", "version", "artifactCid", "artifactSize",
                         "provenanceSha256", "provenanceCid", "cardSha256", "cardCid", "parent", "publisher",
                         "submitter"),
    "ReleaseRevoked": ("releaseId", "nameKey", "by", "reason"),
    "ReleaseAttested": ("releaseId", "attester", "passed", "reportSha256"),
    "AliasSet": ("nameKey", "name", "aliasName", "releaseId"),
    "AliasRemoved": ("nameKey", "name", "aliasName"),
}


@dataclass(frozen=True)
class EventSpec:
    name: str
    topic0: bytes
    indexed: tuple[tuple[str, str], ...]
    data: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Event:
    """One decoded log: where it sits on chain and its arguments by name."""

    name: str
    block: int
    log_index: int
    block_hash: bytes
    tx_hash: bytes
    args: Mapping[str, Any]


def signature(abi: Mapping[str, Any]) -> str:
    return f"{abi['name']}({','.join(_canonical_type(i) for i in abi['inputs'])})"


def _canonical_type(item: Mapping[str, Any]) -> str:
    if item["type"].startswith("tuple"):
        inner = ",".join(_canonical_type(c) for c in item["components"])
        return f"({inner}){item['type'][5:]}"
    return str(item["type"])


def _spec(abi: Mapping[str, Any]) -> EventSpec:
    indexed = tuple((i["name"], i["type"]) for i in abi["inputs"] if i.get("indexed"))
    data = tuple((i["name"], _canonical_type(i)) for i in abi["inputs"] if not i.get("indexed"))
    return EventSpec(name=abi["name"], topic0=keccak(text=signature(abi)), indexed=indexed, data=data)


@lru_cache(maxsize=1)
def specs() -> dict[bytes, EventSpec]:
    """topic0 -> spec for every followed event, from the committed artifact. A followed event the
    artifact lacks, or one without an argument a handler reads, is a RuntimeError: the contract and
    the index disagree, and indexing on would silently drop state."""
    from registry.chain.artifacts import load_artifact

    events = {e["name"]: e for e in load_artifact().abi if e.get("type") == "event" and e.get("name") in FOLLOWED}
    for name, wanted in FOLLOWED.items():
        if name not in events:
            raise RuntimeError(f"the ModelRegistry artifact has no {name} event; the index cannot follow it")
        have = {i["name"] for i in events[name]["inputs"]}
        if missing := [w for w in wanted if w not in have]:
            raise RuntimeError(f"the ModelRegistry artifact's {name} event lacks {', '.join(missing)}")
    return {spec.topic0: spec for spec in map(_spec, events.values())}


def _topic_value(kind: str, topic: bytes) -> Any:
    if kind == "address":
        return to_checksum_address(topic[-20:])
    if kind == "bool":
        return topic[-1] != 0
    if kind.startswith(("uint", "int")):
        return int.from_bytes(topic, "big", signed=kind.startswith("int"))
    return bytes(topic)  # bytes32, and the keccak of a dynamic indexed value


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    text = str(value)
    return bytes.fromhex(text[2:] if text.startswith("0x") else text)


def _int(value: Any) -> int:
    """A quantity from a raw JSON-RPC log ("0x1a") or a formatted one (26)."""
    if isinstance(value, str):
        return int(value, 16) if value.startswith(("0x", "0X")) else int(value)
    return int(value)


def decode_log(log: Mapping[str, Any]) -> Event | None:
    """The event a raw log (``eth_getLogs`` item) carries, or None for a topic the index does not follow.

    A log whose data does not decode under its topic's ABI raises ``ValueError``: that is a contract
    the index does not understand, and silently skipping it would leave the index wrong.
    """
    topics = [_as_bytes(t) for t in log.get("topics") or []]
    if not topics:
        return None
    spec = specs().get(topics[0])
    if spec is None:
        return None
    if len(topics) != 1 + len(spec.indexed):
        raise ValueError(f"{spec.name} log has {len(topics) - 1} indexed topics, expected {len(spec.indexed)}")
    args: dict[str, Any] = {name: _topic_value(kind, topic) for (name, kind), topic in zip(spec.indexed, topics[1:])}
    try:
        values = abi_decode([kind for _, kind in spec.data], _as_bytes(log.get("data") or b""), strict=True)
    except Exception as exc:  # eth_abi raises several decoding errors
        raise ValueError(f"{spec.name} log data does not decode: {exc}") from exc
    for (name, kind), value in zip(spec.data, values):
        args[name] = to_checksum_address(value) if kind == "address" else value
    return Event(
        name=spec.name,
        block=_int(log["blockNumber"]),
        log_index=_int(log["logIndex"]),
        block_hash=_as_bytes(log["blockHash"]),
        tx_hash=_as_bytes(log["transactionHash"]),
        args=args,
    )
