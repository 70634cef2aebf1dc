"""Where content lives: one ``ContentStore`` protocol, four back-ends, and the profile that picks one.

``local``            blocks in the data dir (the embedded default, no IPFS node needed)
``kubo:<rpc url>``   a Kubo node over its RPC API (every answer checked against our own CID)
``gateway:<url>``    a trustless gateway, read-only (every block verified while streaming)

The pinning service (IPFS Pinning Service API) keeps content alive elsewhere and stores no bytes
itself, so it pairs with one of the above rather than replacing it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from registry.content.base import BlockReadingStore, ContentStore
from registry.content.local import LocalStore
from registry.errors import InputError

if TYPE_CHECKING:
    from registry.config import Settings
    from registry.content.gateway import GatewayStore
    from registry.content.kubo import KuboStore
    from registry.content.pinning import PinningService

__all__ = [
    "ContentStore",
    "BlockReadingStore",
    "LocalStore",
    "KuboStore",
    "GatewayStore",
    "PinningService",
    "open_store",
]


def __getattr__(name: str) -> object:
    # the HTTP back-ends import httpx; load them only when asked for
    if name == "KuboStore":
        from registry.content.kubo import KuboStore

        return KuboStore
    if name == "GatewayStore":
        from registry.content.gateway import GatewayStore

        return GatewayStore
    if name == "PinningService":
        from registry.content.pinning import PinningService

        return PinningService
    raise AttributeError(name)


def open_store(settings: "Settings") -> ContentStore:
    """The store the active profile names (``local`` | ``kubo:<url>`` | ``gateway:<url>``)."""
    prof = settings.profile
    spec = prof.store.strip()
    if spec == "local":
        return LocalStore(settings.blocks_dir, prof.cid_profile)
    kind, _, url = spec.partition(":")
    if kind == "kubo" and url:
        from registry.content.kubo import KuboStore

        return KuboStore(url, profile=prof.cid_profile, timeout=prof.timeout_s, retries=prof.retries)
    if kind == "gateway" and url:
        from registry.content.gateway import GatewayStore

        return GatewayStore(url, timeout=prof.timeout_s, retries=prof.retries)
    raise InputError(f"unknown content store {spec!r} in profile {prof.name!r} "
                     "(expected local, kubo:<rpc url> or gateway:<url>)")
