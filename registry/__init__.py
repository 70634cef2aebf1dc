"""A blockchain-anchored registry of compressed ML models.

The public API is re-exported here lazily (PEP 562): ``import registry`` stays cheap and never
pulls torch, onnxruntime or web3 until a name that needs them is used. A device that only verifies
and loads models never imports torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

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
    "Profile": "registry.config",
    "Settings": "registry.config",
    "load_settings": "registry.config",
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
