"""``registry serve``: the explorer under uvicorn, with the index following the chain in a thread.

Binds to 127.0.0.1 by default and accepts only Host headers naming the address it listens on
(loopback names included), so a web page elsewhere cannot reach it through DNS rebinding.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from registry.config import Settings


def allowed_hosts(host: str) -> list[str]:
    if host in ("0.0.0.0", "::", ""):
        return ["*"]
    names = {host, "127.0.0.1", "localhost", "::1", "[::1]"} if host in ("127.0.0.1", "localhost", "::1") else {host}
    return sorted(names)


def run(settings: "Settings", host: str = "127.0.0.1", port: int = 8470, follow: bool = True,
        interval: float = 2.0) -> None:
    """Serves until interrupted (Ctrl-C); the follower thread stops with the server."""
    import uvicorn

    from registry.explorer.app import create_app
    from registry.explorer.state import Explorer

    explorer = Explorer(settings)
    explorer.start_head_poller()
    if follow:
        explorer.sync_once()  # the first pages already show what is on chain
        explorer.start_following(interval)
    app = create_app(explorer, allowed_hosts=allowed_hosts(host))
    print(f"registry explorer on http://{host if ':' not in host else f'[{host}]'}:{port}/ "
          f"(index {explorer.index_file}; Ctrl-C stops it)", flush=True)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, server_header=False)
    finally:
        explorer.stop()
