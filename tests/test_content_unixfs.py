"""The importer must give Kubo's CIDs: every vector row, streaming, bounded memory, clear errors."""

from __future__ import annotations

import hashlib
import os

import pytest
from hypothesis import given, settings, strategies as st

from registry.content import unixfs
from registry.content.cids import parse_cid
from registry.content.dagpb import decode_node, decode_unixfs
from registry.content.unixfs import PROFILES, import_bytes, import_chunks, import_file
from registry.errors import InputError

from tests._content_fixtures import gen_stream, load_vectors, vector_bytes

VECTORS = load_vectors()
SMALL = [v for v in VECTORS if v.size <= 4_000_000]
LARGE = [v for v in VECTORS if v.size > 4_000_000]


@pytest.mark.parametrize("vector", SMALL, ids=[v.file for v in SMALL])
def test_vectors_small(vector):
    data = vector_bytes(vector)
    assert len(data) == vector.size
    r0 = import_bytes(data, "kubo-v0")
    r1 = import_bytes(data, "kubo-v1")
    assert str(r0.cid) == vector.kubo_v0
    assert str(r1.cid) == vector.kubo_v1
    assert r0.sha256 == r1.sha256 == hashlib.sha256(data).digest()
    assert r0.size == r1.size == vector.size


@pytest.mark.slow
def test_vectors_large_streamed():
    """The two rows around the second DAG level, fed as a stream of odd-sized pieces (never on disk)."""
    assert [v.size for v in LARGE] == [45613056, 45613057]
    data = b"".join(gen_stream(LARGE[-1].size))
    for vector in LARGE:
        view = memoryview(data)[:vector.size]
        pieces = (view[i:i + 1_000_003] for i in range(0, vector.size, 1_000_003))
        r0 = import_chunks(pieces, "kubo-v0")
        r1 = import_bytes(view, "kubo-v1")
        assert str(r0.cid) == vector.kubo_v0
        assert str(r1.cid) == vector.kubo_v1
        assert r0.size == r1.size == vector.size
        assert r0.sha256 == r1.sha256 == hashlib.sha256(view).digest()


def test_vector_file_on_disk(tmp_path):
    vector = next(v for v in VECTORS if v.size == 3_000_000)
    path = tmp_path / vector.file
    path.write_bytes(vector_bytes(vector))
    seen = []
    result = import_file(path, "kubo-v0", progress=seen.append)
    assert str(result.cid) == vector.kubo_v0
    assert sum(seen) == vector.size
    assert result.to_json()["cid_v1"] == str(parse_cid(vector.kubo_v0).set(version=1).encode("base32"))


def test_profiles_are_the_documented_ones():
    assert set(PROFILES) == {"kubo-v0", "kubo-v1", "unixfs-v1-2025"}
    assert PROFILES["kubo-v0"].cid_version == 0 and not PROFILES["kubo-v0"].raw_leaves
    assert PROFILES["unixfs-v1-2025"].chunk_size == 1 << 20 and PROFILES["unixfs-v1-2025"].max_links == 1024


def test_single_chunk_v1_is_one_raw_block_and_empty_file_is_empty_raw_block():
    assert import_bytes(b"", "kubo-v1").cid.codec.name == "raw"
    assert str(import_bytes(b"", "kubo-v1").cid) == "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
    assert import_bytes(b"x" * 262144, "kubo-v1").cid.codec.name == "raw"
    assert import_bytes(b"x" * 262145, "kubo-v1").cid.codec.name == "dag-pb"


def test_links_carry_an_empty_name_and_precede_data():
    blocks = {}
    r = import_bytes(os.urandom(262144 * 3 + 1), "kubo-v1", block_sink=lambda c, b: blocks.__setitem__(str(c), b))
    root = blocks[str(r.cid)]
    node = decode_node(root)
    assert len(node.links) == 4
    assert all(link.name == "" for link in node.links)
    assert root.startswith(b"\x12")  # field 2 (Links) comes first
    fs = decode_unixfs(node.data)
    assert fs.filesize == 262144 * 3 + 1 and fs.blocksizes == [262144] * 3 + [1]


def test_block_sink_receives_every_block_once_with_matching_hashes():
    blocks = []
    r = import_bytes(os.urandom(262144 * 200), "kubo-v0", block_sink=lambda c, b: blocks.append((c, b)))
    # 200 leaves, 2 level-one nodes, 1 root
    assert len(blocks) == 203
    for cid, block in blocks:
        assert hashlib.sha256(block).digest() == bytes(cid.raw_digest)
    assert blocks[-1][0] == r.cid


@given(st.binary(max_size=3000), st.sampled_from(sorted(PROFILES)), st.integers(1, 5000))
@settings(max_examples=60, deadline=None)
def test_stream_piece_size_does_not_change_the_result(data, profile, piece):
    pieces = [data[i:i + piece] for i in range(0, len(data), piece)]
    assert import_chunks(pieces, profile) == import_bytes(data, profile)


def test_small_read_batches_give_the_same_cid(monkeypatch):
    data = os.urandom(262144 * 5 + 17)
    expected = import_bytes(data, "kubo-v0")
    monkeypatch.setattr(unixfs, "READ_BATCH", 1)  # one chunk per batch
    assert import_bytes(data, "kubo-v0") == expected


def test_unknown_profile_is_an_input_error():
    with pytest.raises(InputError, match="unknown CID profile 'kubo-v9'"):
        import_bytes(b"x", "kubo-v9")


def test_unreadable_files_are_input_errors(tmp_path):
    with pytest.raises(InputError, match=r"^cannot read file .*missing\.bin"):
        import_file(tmp_path / "missing.bin")
    with pytest.raises(InputError, match=r"^file .* is a directory; a regular file is needed"):
        import_file(tmp_path)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match=r"^file .*pipe is a FIFO"):  # never blocks on the open or a read
        import_file(fifo)
    locked = tmp_path / "locked.bin"
    locked.write_bytes(b"x")
    locked.chmod(0)
    if os.geteuid() != 0:
        with pytest.raises(InputError, match="cannot read"):
            import_file(locked)


class _ZeroReader:
    """size zero bytes through readinto, counting what was read (the importer must read each byte once)."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.read_total = 0

    def readinto(self, buf):
        n = min(len(buf), self.left)
        buf[:n] = bytes(n) if n < 4096 else memoryview(_ZEROS)[:n]
        self.left -= n
        self.read_total += n
        return n


_ZEROS = bytes(16 << 20)


def test_memory_stays_bounded_and_each_byte_is_read_once():
    import tracemalloc

    size = 96 * 1024 * 1024 + 12345
    reader = _ZeroReader(size)
    tracemalloc.start()
    try:
        result = unixfs.import_stream(reader, "kubo-v1")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.size == size == reader.read_total
    # three read buffers (one being read ahead) plus link lists; the file is 4x bigger than this bound
    assert peak < 3 * unixfs.READ_BATCH + 4 * 1024 * 1024, peak
    expected = hashlib.sha256()
    for _ in range(size // len(_ZEROS)):
        expected.update(_ZEROS)
    expected.update(bytes(size % len(_ZEROS)))
    assert result.sha256 == expected.digest()


def test_an_import_result_shows_both_cid_forms_and_what_was_hashed():
    data = b"model bytes" * 100
    result = import_bytes(data, "kubo-v0")
    shown = result.to_json()
    assert shown["cid"] == str(result.cid) and shown["cid_v0"].startswith("Qm") and shown["cid_v1"].startswith("b")
    assert shown["sha256"] == hashlib.sha256(data).hexdigest()
    assert (shown["size"], shown["profile"]) == (len(data), "kubo-v0")


def test_chunks_of_any_size_give_the_same_dag_and_blocks_as_the_bytes():
    data = os.urandom(3 * 262144 + 77)
    cuts = [0, 1, 1000, 262144, 262145, 600000, len(data)]
    pieces = [data[a:b] for a, b in zip(cuts, cuts[1:])]
    whole_blocks: list = []
    chunk_blocks: list = []
    whole = import_bytes(data, "kubo-v1", block_sink=lambda c, b: whole_blocks.append((str(c), bytes(b))))
    chunked = import_chunks(iter(pieces), "kubo-v1", block_sink=lambda c, b: chunk_blocks.append((str(c), bytes(b))))
    assert (chunked.cid, chunked.sha256, chunked.size) == (whole.cid, whole.sha256, whole.size)
    assert sorted(chunk_blocks) == sorted(whole_blocks) and len(whole_blocks) == 5


def test_importing_a_file_raises_no_warning(tmp_path):
    import warnings

    path = tmp_path / "m.bin"
    path.write_bytes(os.urandom(1000))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert import_file(path, "kubo-v1").size == 1000


def test_a_shared_leaf_pool_gives_the_same_dag_blocks_and_progress():
    """A tree import hashes every file's leaves on one pool it passes in: same answer as a file's own."""
    import io
    from concurrent.futures import ThreadPoolExecutor

    from registry.content.unixfs import import_stream

    data = os.urandom(2 * 1048576 + 5)
    own_blocks: list = []
    own = import_bytes(data, "unixfs-v1-2025", block_sink=lambda c, b: own_blocks.append((str(c), bytes(b))))
    shared_blocks: list = []
    seen: list[int] = []
    with ThreadPoolExecutor(max_workers=1) as pool:
        shared = import_stream(io.BytesIO(data), "unixfs-v1-2025", seen.append,
                               lambda c, b: shared_blocks.append((str(c), bytes(b))), pool)
    assert (shared.cid, shared.sha256, shared.size, shared.profile) == (own.cid, own.sha256, own.size, own.profile)
    assert shared.dag_size == own.dag_size == sum(len(b) for _c, b in own_blocks)
    assert sorted(shared_blocks) == sorted(own_blocks) and sum(seen) == len(data)


@pytest.mark.parametrize("profile", ["kubo-v0", "kubo-v1"])
def test_an_empty_file_writes_its_one_block_to_the_sink(profile):
    blocks: list = []
    result = import_bytes(b"", profile, block_sink=lambda c, b: blocks.append((c, bytes(b))))
    assert [str(c) for c, _b in blocks] == [str(result.cid)]
    block = blocks[0][1]
    assert hashlib.sha256(block).digest() == result.cid.digest[-32:]
    assert result.dag_size == len(block) and result.size == 0


def test_an_empty_batch_mid_stream_is_skipped_not_taken_for_the_end():
    """A reader may hand over an empty view before the rest (a pipe with nothing ready yet): the bytes
    after it still count, so the CID and size are those of the whole input."""
    p = PROFILES["kubo-v1"]
    data = os.urandom(2 * p.chunk_size + 5)
    views = [memoryview(data)[:p.chunk_size], memoryview(b""), memoryview(data)[p.chunk_size:]]
    got = unixfs.import_batches(iter(views), p)
    want = import_bytes(data, p)
    assert (got.cid, got.size, got.sha256) == (want.cid, len(data), hashlib.sha256(data).digest())


def test_keep_sees_every_byte_also_with_a_callers_pool():
    """``keep`` (the verifier's staging copy) must receive every view whether or not the caller
    brings its own leaf pool; otherwise the staged file would be empty or short."""
    from concurrent.futures import ThreadPoolExecutor

    p = PROFILES["kubo-v0"]
    data = os.urandom(3 * p.chunk_size + 17)
    step = 2 * p.chunk_size
    kept = []
    with ThreadPoolExecutor(max_workers=1) as pool:
        result = unixfs.import_batches((memoryview(data)[i:i + step] for i in range(0, len(data), step)), p,
                                       pool=pool, keep=lambda v: kept.append(bytes(v)))
    assert b"".join(kept) == data
    assert result.cid == import_bytes(data, p).cid



def test_keep_receives_the_views_in_order_even_when_one_is_slow():
    """The staging copy is written in the order ``keep`` is called: the importer's own leaf worker
    is one thread, so a slow write of the first view never lets the second overtake it."""
    import time

    p = PROFILES["kubo-v0"]
    data = os.urandom(3 * p.chunk_size)
    kept: list[bytes] = []

    def keep(view: memoryview) -> None:
        if not kept and bytes(view) == data[:p.chunk_size]:
            time.sleep(0.3)  # the first write stalls (a slow disk)
        kept.append(bytes(view))

    views = (memoryview(data)[i:i + p.chunk_size] for i in range(0, len(data), p.chunk_size))
    result = unixfs.import_batches(views, p, keep=keep)
    assert b"".join(kept) == data
    assert result.cid == import_bytes(data, p).cid

@pytest.mark.skipif(not (os.path.isdir(os.path.join(os.path.dirname(__file__), "..", "node_modules",
                                                    "ipfs-unixfs-importer"))),
                    reason="node_modules/ipfs-unixfs-importer missing")
def test_dags_of_three_and_more_levels_match_the_npm_importer():
    """Kubo's balanced layout at depth (a 3-level DAG needs 7.9 GB at the real fan-out): tiny chunks and
    fan-out reach 3-5 levels in bytes, and every size around a level boundary must give the npm
    ipfs-unixfs-importer's CID, CIDv0 and CIDv1 raw leaves alike."""
    from registry.content.unixfs import Profile
    from tests._content_fixtures import fast_stream
    from tests.test_content_npm import JsImporter

    js = JsImporter()
    try:
        for version, raw, chunk, links in ((0, False, 1, 3), (1, True, 7, 4)):
            p = Profile("custom", version, raw, chunk, links)
            sizes = sorted({k * chunk * links ** d + e for d in (2, 3, 4) for k in (1, 2) for e in (-1, 0, 1)})
            for size in sizes:
                assert str(import_chunks(fast_stream(size), p).cid) == js.cid(size, p), (p, size)
    finally:
        js.close()


def test_an_unknown_fixed64_field_before_the_data_is_skipped_by_exactly_eight_bytes():
    """A producer's future 64-bit field (wire type 1) in a UnixFS Data message must not shift the
    fields after it: the payload read is the one written, not a misparse or a refusal."""
    from registry.content.dagpb import decode_unixfs

    data = bytes([0x08, 0x02, 0x39]) + bytes(range(1, 9)) + bytes([0x12, 0x02]) + b"ok" + bytes([0x18, 0x02])
    got = decode_unixfs(data)
    assert (got.type, got.data, got.filesize) == (2, b"ok", 2)
