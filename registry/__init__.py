"""A blockchain-anchored registry of compressed ML models.

The public API is re-exported here lazily (PEP 562): ``import registry`` stays cheap and never
pulls torch, onnxruntime or web3 until a name that needs them is used. A device that only verifies
and loads models never imports torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from registry import recursion as _recursion

_recursion.install()  # before anything can import py_ecc, which raises the limit to 100000

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "RegistryError": "registry.errors",
    "InputError": "registry.errors",
    "KeyAccessError": "registry.errors",
    "UnreachableError": "registry.errors",
    "ChainError": "registry.errors",
    "IntegrityError": "registry.errors",
    "SignatureError": "registry.errors",
    "RevokedError": "registry.errors",
    "ProvenanceError": "registry.errors",
    "PolicyError": "registry.errors",
    "CompressionError": "registry.errors",
    "StorageError": "registry.errors",
    "Profile": "registry.config",
    "Settings": "registry.config",
    "load_settings": "registry.config",
    # releases, names, keys, chain
    "Release": "registry.release",
    "Ref": "registry.release",
    "parse_ref": "registry.release",
    "release_id": "registry.release",
    "sign_release": "registry.release",
    "recover_publisher": "registry.release",
    "validate_alias": "registry.release",
    "RegistryClient": "registry.chain.client",
    "ReleaseRecord": "registry.chain.records",
    "AttestationRecord": "registry.chain.records",
    "AliasRecord": "registry.chain.records",
    "resolve_ref": "registry.chain.resolve",
    "AmbiguousReference": "registry.chain.resolve",
    "load_signer": "registry.keys",
    # content addressing
    "ImportResult": "registry.content.unixfs",
    "import_file": "registry.content.unixfs",
    "import_bytes": "registry.content.unixfs",
    "open_store": "registry.content.stores",
    # publish, verify, pull
    "verify": "registry.verify",
    "load_verified": "registry.verify",
    "VerificationReport": "registry.verify",
    "Check": "registry.verify",
    "VerificationFailed": "registry.verify",
    "publish_model": "registry.publish",
    "PublishResult": "registry.publish",
    "pull": "registry.pull",
    # incremental updates: the tensor layout, the device block cache, pull from what is held, deltas
    "write_tensor_layout": "registry.layout",
    "pull_update": "registry.update",
    "BlockCache": "registry.content.blockcache",
    "delta_refs": "registry.delta",
    "release_delta": "registry.delta",
    "Policy": "registry.policy",
    "load_policy": "registry.policy",
    "Manifest": "registry.manifest",
    "collect_garbage": "registry.gc",
    "GcReport": "registry.gc",
    "load_manifest": "registry.manifest",
    # hostile input: strict JSON, bounded reads of regular files, loading verified bytes
    "parse_json_strict": "registry.strictjson",
    "read_small_file": "registry.fsutil",
    "session_from_bytes": "registry.runtime",
    # compression (needs the [compress] extra: torch)
    "compress_model": "registry.compress.pipeline",
    "RunResult": "registry.compress.pipeline",
    "load_recipe": "registry.compress.recipe",
    "parse_recipe": "registry.compress.recipe",
    "reproduce": "registry.compress.reproduce",
    # cards, diff, index, explorer
    "ModelCard": "registry.card",
    "parse_card": "registry.card",
    "load_card": "registry.card",
    "draft_card": "registry.card",
    "diff_refs": "registry.diff",
    "model_facts": "registry.modelfacts",
    "update_index": "registry.index",
    "Explorer": "registry.explorer",
    "create_app": "registry.explorer",
    # oracle
    "OracleNode": "registry.oracle.node",
    "NodeConfig": "registry.oracle.node",
    "FeedClient": "registry.oracle.feed",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'registry' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
