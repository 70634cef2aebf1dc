"""The web explorer: catalog, models, releases with a live verification report, lineage, diff.

``create_app(Explorer(settings))`` is the ASGI app; ``registry serve`` runs it under uvicorn.
"""

from __future__ import annotations

from registry.explorer.app import create_app
from registry.explorer.state import Explorer

__all__ = ["Explorer", "create_app"]
