"""Cross-check against an independent implementation: the npm ``ipfs-unixfs-importer`` (17.x).

One node process serves every size (spawning node per size would dominate the run time); both
sides generate the same cheap byte stream, so nothing is written to disk. Sizes sit on every chunk
and layer boundary of each profile, plus hypothesis-chosen ones.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from hypothesis import given, settings, strategies as st

from registry.content.unixfs import PROFILES, Profile, import_chunks

from tests._content_fixtures import REPO, fast_stream

SCRIPT = REPO / "scripts" / "js" / "unixfs-cid.mjs"

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not (REPO / "node_modules" / "ipfs-unixfs-importer").is_dir(),
    reason="node or node_modules/ipfs-unixfs-importer missing",
)


class JsImporter:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(["node", str(SCRIPT), "--serve"], cwd=REPO, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)

    def cid(self, size: int, p: Profile) -> str:
        req = {"size": size, "chunk": p.chunk_size, "rawLeaves": p.raw_leaves, "cidVersion": p.cid_version,
               "maxLinks": p.max_links}
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline())
        assert "error" not in answer, answer
        assert answer["size"] == size
        return answer["cid"]

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def js():
    importer = JsImporter()
    yield importer
    importer.close()


def boundaries(p: Profile) -> list[int]:
    """0, 1, chunk±1, and both fan-outs in use (174 and 1024 links) ±1 for every profile."""
    c = p.chunk_size
    sizes = {0, 1, c - 1, c, c + 1, 2 * c}
    for links in (174, 1024, p.max_links):
        sizes |= {links * c - 1, links * c, links * c + 1}
    return sorted(sizes)


def _cases(slow: bool) -> list[tuple[str, int]]:
    out = []
    for name, p in PROFILES.items():
        for size in boundaries(p):
            is_slow = size > 100 * 1024 * 1024
            if is_slow == slow:
                out.append((name, size))
    return out


@pytest.mark.parametrize("profile,size", _cases(slow=False))
def test_agrees_with_npm_importer_at_boundaries(js, profile, size):
    p = PROFILES[profile]
    assert str(import_chunks(fast_stream(size), p).cid) == js.cid(size, p)


@pytest.mark.slow
@pytest.mark.parametrize("profile,size", _cases(slow=True))
def test_agrees_with_npm_importer_at_gib_boundaries(js, profile, size):
    """The 1024-link boundaries: 256 MiB (kubo profiles) and 1 GiB (unixfs-v1-2025, whose second level
    starts there), streamed on both sides."""
    p = PROFILES[profile]
    assert str(import_chunks(fast_stream(size), p).cid) == js.cid(size, p)


@given(size=st.one_of(st.integers(0, 3 * 262144), st.integers(0, 50_000_000)),
       profile=st.sampled_from(sorted(PROFILES)))
@settings(max_examples=25, deadline=None)
def test_agrees_with_npm_importer_on_random_sizes(js, size, profile):
    p = PROFILES[profile]
    assert str(import_chunks(fast_stream(size), p).cid) == js.cid(size, p)


@given(links=st.integers(2, 6), chunk=st.sampled_from([1, 7, 1024]), raw=st.booleans(), version=st.sampled_from([0, 1]),
       size=st.integers(0, 200_000))
@settings(max_examples=40, deadline=None)
def test_agrees_on_deep_trees_with_tiny_parameters(js, links, chunk, raw, version, size):
    """Small chunks and fan-out build 4-8 level DAGs cheaply: the balanced layout at depth."""
    if version == 0 and raw:
        raw = False  # CIDv0 cannot name raw leaves
    p = Profile("custom", version, raw, chunk, links)
    size = min(size, chunk * links ** 5 + 3)
    assert str(import_chunks(fast_stream(size), p).cid) == js.cid(size, p)
