"""EIP-712 release digests and signer recovery without eth-account (whose import pulls py_ecc).

The typed-data layout is read from the committed ABI (``hashRelease``'s ``Release`` components),
the domain from the contract's own EIP-5267 ``eip712Domain()`` answer, so a change to the struct
reaches this code with the artifacts. Recovery is libsecp256k1 (``coincurve``); like the contract,
only low-s signatures with v in {27, 28} (or {0, 1}) are accepted.
"""

from __future__ import annotations

from typing import Any, Mapping

from registry.chain.lean import canonical_type, checksum, functions, keccak
from registry.errors import SignatureError

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_DOMAIN_TYPE = b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"


def release_components() -> list[dict[str, Any]]:
    fn = functions()["hashRelease"]
    return list(fn.inputs[0]["components"])


def release_type() -> bytes:
    """``Release(string name,string version,…)`` exactly as the contract declares the struct."""
    comps = release_components()
    return ("Release(" + ",".join(f"{canonical_type(c)} {c['name']}" for c in comps) + ")").encode()


def _encode_field(t: str, value: Any) -> bytes:
    if t in ("string", "bytes"):
        return keccak(value.encode("utf-8") if t == "string" else bytes(value))
    if t == "address":
        return bytes.fromhex(str(value).removeprefix("0x")).rjust(32, b"\x00")
    if t == "bool":
        return int(bool(value)).to_bytes(32, "big")
    if t.startswith("uint"):
        return int(value).to_bytes(32, "big")
    if t.startswith("bytes"):
        return bytes(value).ljust(32, b"\x00")
    raise SignatureError(f"EIP-712 field type {t} is not supported")


def struct_hash(message: Mapping[str, Any]) -> bytes:
    """hashStruct(Release) for a message keyed by the ABI's camelCase field names."""
    parts = [keccak(release_type())]
    for comp in release_components():
        if comp["name"] not in message:
            raise SignatureError(f"the release lacks the signed field {comp['name']}")
        parts.append(_encode_field(comp["type"], message[comp["name"]]))
    return keccak(b"".join(parts))


def domain_separator(name: str, version: str, chain_id: int, contract: str) -> bytes:
    return keccak(keccak(_DOMAIN_TYPE) + keccak(name.encode()) + keccak(version.encode())
                  + chain_id.to_bytes(32, "big") + bytes.fromhex(contract.removeprefix("0x")).rjust(32, b"\x00"))


def signing_digest(message: Mapping[str, Any], name: str, version: str, chain_id: int, contract: str) -> bytes:
    return keccak(b"\x19\x01" + domain_separator(name, version, chain_id, contract) + struct_hash(message))


def recover(digest: bytes, signature: bytes) -> str:
    """The checksummed address whose key made ``signature`` (65 bytes r‖s‖v) over ``digest``."""
    from coincurve import PublicKey

    sig = bytes(signature)
    if len(sig) != 65:
        raise SignatureError(f"malformed release signature: {len(sig)} bytes, expected 65")
    r, s, v = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big"), sig[64]
    if v in (27, 28):
        v -= 27
    if v not in (0, 1) or not 0 < r < SECP256K1_N or not 0 < s <= SECP256K1_N // 2:
        raise SignatureError("malformed release signature: bad v, or r/s out of range (only low-s is accepted)")
    try:
        public = PublicKey.from_signature_and_message(sig[:64] + bytes([v]), digest, hasher=None)
    except Exception as exc:  # libsecp256k1 refuses points that do not recover
        raise SignatureError(f"malformed release signature: {exc}") from exc
    return checksum(keccak(public.format(compressed=False)[1:])[-20:])
