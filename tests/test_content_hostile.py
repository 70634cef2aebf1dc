"""Stores and inputs that lie (issue 10, content side): DAGs cheap to send but expensive to walk, endless or
huge answers, deep JSON, and a pinning token that must not travel in clear."""

from __future__ import annotations

import hashlib
import io
import threading
import time
from http.server import BaseHTTPRequestHandler

import pytest

from registry.content.car import car_bytes
from registry.content.cids import DAG_PB, RAW, make_cid
from registry.content.dagpb import encode_node, unixfs_file_data
from registry.content.local import LocalStore
from registry.content.reader import iter_file
from registry.errors import IntegrityError, KeyAccessError, UnreachableError

from tests._content_fixtures import _QuietServer


def _put(blocks: dict, codec: int, block: bytes):
    cid = make_cid(1, codec, hashlib.sha256(block).digest())
    blocks[str(cid)] = (cid, block)
    return cid


def repeated_dag(levels: int, leaf: bytes = bytes(262144), fanout: int = 174):
    """A file DAG that repeats one leaf fanout**levels times: a few blocks, astronomically many bytes."""
    blocks: dict = {}
    child = _put(blocks, RAW, leaf)
    size = len(leaf)
    for _ in range(levels):
        node = encode_node([(bytes(child), size)] * fanout, unixfs_file_data(size * fanout, [size] * fanout))
        child = _put(blocks, DAG_PB, node)
        size *= fanout
    return child, blocks, size


def test_repeated_block_dag_is_refused_fast_by_the_walk():
    root, blocks, declared = repeated_dag(2, leaf=b"x")
    fetch = lambda c: blocks[str(c)][1]  # noqa: E731
    start = time.monotonic()
    with pytest.raises(IntegrityError, match="blocks for"):
        for _ in iter_file(root, fetch):
            pass
    assert time.monotonic() - start < 2


def test_zero_size_links_are_refused():
    blocks: dict = {}
    leaf = _put(blocks, RAW, b"abc")
    empty = _put(blocks, RAW, b"")
    root = _put(blocks, DAG_PB, encode_node([(bytes(leaf), 3), (bytes(empty), 0)], unixfs_file_data(3, [3, 0])))
    with pytest.raises(IntegrityError, match="size zero"):
        list(iter_file(root, lambda c: blocks[str(c)][1]))


def test_import_car_of_a_petabyte_of_repeated_zeros_finishes_fast(tmp_path):
    root, blocks, declared = repeated_dag(6)
    assert declared > 10**18
    car = car_bytes([root], [v for v in blocks.values()])
    store = LocalStore(tmp_path / "blocks", fsync=False)
    start = time.monotonic()
    assert store.import_car(io.BytesIO(car)) == [root]  # complete and well-formed: pinned
    assert time.monotonic() - start < 3
    assert store.is_pinned(root)
    # reading it is bounded by the expected size, refused at the root
    with pytest.raises(IntegrityError, match="more than the expected"):
        next(iter(store.open(root, max_size=10**9)))


def test_import_car_with_a_missing_block_is_refused(tmp_path):
    root, blocks, _ = repeated_dag(2)
    partial = [v for k, v in blocks.items() if k != str(root)][:1]
    store = LocalStore(tmp_path / "blocks", fsync=False)
    with pytest.raises(IntegrityError, match="does not hold the whole DAG"):
        store.import_car(io.BytesIO(car_bytes([root], partial)))


def test_skipped_car_sections_are_capped():
    from registry.content.carwalk import MAX_SKIPPED_SECTIONS, car_fetch

    blocks: dict = {}
    leaf = _put(blocks, RAW, b"a" * 100)
    root = _put(blocks, DAG_PB, encode_node([(bytes(leaf), 100)] * 2, unixfs_file_data(200, [100, 100])))
    other = _put(blocks, RAW, b"b" * 100)
    sections = [blocks[str(root)], blocks[str(leaf)]] + [blocks[str(other)]] * (MAX_SKIPPED_SECTIONS + 10)
    fetch = car_fetch(root, io.BytesIO(car_bytes([root], sections)), lambda c: blocks[str(c)][1], False, "test")
    fetch(root)
    fetch(other)  # seen once: later copies are repeats the walker skips
    with pytest.raises(IntegrityError, match="repeated CAR sections"):
        fetch(make_cid(1, RAW, hashlib.sha256(b"never").digest()))


class _Drip(BaseHTTPRequestHandler):
    """Answers 200 and then one byte every 0.2 s, forever (a slow-drip node)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.ipld.car")
        self.end_headers()
        try:
            self.wfile.write(b"\x7f")  # a header of 127 bytes, then one byte at a time
            while True:
                self.wfile.write(b"\xa0")
                self.wfile.flush()
                time.sleep(0.2)
        except OSError:
            pass

    do_POST = do_GET


class _HugeError(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    sent = [0]

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = b'{"Message": "' + b"x" * (50 << 20) + b'"}'
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            for i in range(0, len(body), 1 << 16):
                self.wfile.write(body[i:i + (1 << 16)])
                _HugeError.sent[0] += 1 << 16
        except OSError:
            pass

    do_GET = do_POST


class _DeepJson(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = b"[" * 200_000 + b"]" * 200_000
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST


def _serve(handler: type) -> tuple[_QuietServer, str]:
    httpd = _QuietServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"


def test_a_slow_drip_gateway_hits_the_overall_deadline():
    from registry.content.gateway import GatewayStore

    httpd, url = _serve(_Drip)
    try:
        store = GatewayStore(url, timeout=0.5, retries=0)
        start = time.monotonic()
        with pytest.raises(UnreachableError, match="deadline|longer than"):
            list(store.open(make_cid(1, RAW, hashlib.sha256(b"x").digest()), max_size=1000))
        assert time.monotonic() - start < 10
    finally:
        httpd.shutdown()


def test_error_bodies_are_read_up_to_a_small_limit():
    from registry.content.kubo import KuboStore

    httpd, url = _serve(_HugeError)
    try:
        store = KuboStore(url, timeout=5, retries=0)
        _HugeError.sent[0] = 0
        start = time.monotonic()
        with pytest.raises(UnreachableError) as info:
            store.version()
        assert len(str(info.value)) < 400
        assert time.monotonic() - start < 5
        time.sleep(0.5)  # the server notices the closed connection
        assert _HugeError.sent[0] < 16 << 20, "the client read the whole 50 MB error page"
    finally:
        httpd.shutdown()


def test_deep_json_from_a_node_is_refused_without_a_crash(tmp_path):
    """py_ecc raises the recursion limit to 100000; the strict parser's depth limit keeps the C stack safe."""
    import subprocess
    import sys

    httpd, url = _serve(_DeepJson)
    try:
        code = ("import sys; sys.setrecursionlimit(100000)\n"
                "from registry.content.kubo import KuboStore\n"
                "from registry.content.pinning import PinningService\n"
                "from registry.errors import IntegrityError\n"
                f"try:\n    KuboStore({url!r}, retries=0).version()\nexcept IntegrityError as e:\n    print('kubo', e)\n"
                f"try:\n    PinningService({url!r}, 'tok', retries=0).list()\nexcept IntegrityError as e:\n"
                "    print('pinning', e)\n")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr[-2000:]
        assert "kubo" in out.stdout and "pinning" in out.stdout and "deeper" in out.stdout
    finally:
        httpd.shutdown()


@pytest.mark.parametrize("url,allowed", [
    ("https://pin.example", True), ("http://127.0.0.1:5000", True), ("http://localhost:1", True),
    ("http://[::1]:8080", True), ("http://pin.example", False), ("http://10.0.0.5", False),
    ("http://127.0.0.1.evil.example", False),
])
def test_pinning_token_only_over_https_or_loopback(url, allowed):
    from registry.content.pinning import PinningService

    if allowed:
        PinningService(url, "secret").close()
    else:
        with pytest.raises(KeyAccessError, match="plain http"):
            PinningService(url, "secret")


def test_tree_walk_refuses_hostile_directory_nodes(tmp_path):
    from registry.content.dagtree import walk_tree
    from registry.content.dirs import DIRECTORY_DATA, encode_pbnode

    blocks: dict = {}
    leaf = _put(blocks, RAW, b"data")

    def directory(*entries: tuple[bytes, object]) -> object:
        return _put(blocks, DAG_PB, encode_pbnode([(bytes(c), n, 4) for n, c in entries], DIRECTORY_DATA))

    fetch = lambda c: blocks[str(c)][1]  # noqa: E731
    for name, match in ((b"..", "'..'"), (b"a/b", "'/'"), (b".hidden", "hidden"), (b"x\x01", "control")):
        with pytest.raises(IntegrityError, match=match):
            list(walk_tree(directory((name, leaf)), fetch))
    with pytest.raises(IntegrityError, match="twice"):
        list(walk_tree(directory((b"a", leaf), (b"a", leaf)), fetch))
    with pytest.raises(IntegrityError, match="empty"):
        list(walk_tree(directory((b"a", directory())), fetch))
    # a directory that links itself many times over: bounded by the file count
    inner = directory(*[(b"f%d" % i, leaf) for i in range(1000)])
    outer = directory(*[(b"d%03d" % i, inner) for i in range(200)])
    from registry.content.filelist import MAX_FILES

    assert 1000 * 200 > MAX_FILES
    with pytest.raises(IntegrityError, match="more than"):
        for item in walk_tree(outer, fetch):
            pass


# --------------------------------------------------------------------------------------------
# dag-pb links and UnixFS data read strictly, field by field (hand-written blocks)
# --------------------------------------------------------------------------------------------

_HASH = bytes([0x01, 0x55, 0x12, 0x20]) + bytes(32)


def _len_field(num: int, payload: bytes) -> bytes:
    return bytes([(num << 3) | 2, len(payload)]) + payload


def _node_with_link(link: bytes) -> bytes:
    return _len_field(2, link) + _len_field(1, bytes([0x08, 0x02]))


def test_a_link_is_read_with_only_the_fields_it_has():
    from registry.content.dagpb import decode_node

    node = decode_node(_node_with_link(_len_field(1, _HASH)))
    assert node.links[0].hash == _HASH and node.links[0].name is None and node.links[0].tsize is None
    named = decode_node(_node_with_link(_len_field(1, _HASH) + _len_field(2, b"a") + bytes([0x18, 0x05])))
    assert (named.links[0].name, named.links[0].tsize) == ("a", 5)


@pytest.mark.parametrize("link,why", [
    (_len_field(2, b"a"), "without a hash"),
    (_len_field(1, _HASH) + _len_field(1, _HASH), "out of order or repeated"),
    (_len_field(1, _HASH) + bytes([0x18, 0x05, 0x18, 0x06]), "out of order or repeated"),
    (_len_field(1, _HASH) + _len_field(3, b"\x05"), "unexpected link field 3/2"),
    (_len_field(1, _HASH) + bytes([0x10, 0x01]), "unexpected link field 2/0"),
    (_len_field(1, _HASH) + bytes([0x20, 0x01]), "unexpected link field 4/0"),
])
def test_a_malformed_link_is_refused_saying_how(link, why):
    from registry.content.dagpb import decode_node

    with pytest.raises(IntegrityError, match=why):
        decode_node(_node_with_link(link))


def test_unixfs_data_keeps_absent_fields_absent_and_needs_a_type():
    from registry.content.dagpb import decode_unixfs

    plain = decode_unixfs(bytes([0x08, 0x02]))
    assert (plain.type, plain.filesize, plain.hash_type, plain.fanout, plain.blocksizes) == (2, None, None, None, [])
    with pytest.raises(IntegrityError, match="no type"):
        decode_unixfs(bytes([0x18, 0x05]))


def test_unixfs_data_reads_every_field_in_both_encodings():
    from registry.content.dagpb import decode_unixfs

    full = (bytes([0x08, 0x05]) + _len_field(2, b"payload") + bytes([0x18, 0x90, 0x03])  # type 5, data, filesize 400
            + bytes([0x20, 0x64, 0x20, 0xAC, 0x02])                                  # blocksizes 100, 300 (unpacked)
            + bytes([0x28, 0x22, 0x30, 0x80, 0x02]))                                 # hashType 0x22, fanout 256
    data = decode_unixfs(full)
    assert (data.type, data.data, data.filesize, data.blocksizes, data.hash_type, data.fanout) == \
        (5, b"payload", 400, [100, 300], 0x22, 256)
    packed = decode_unixfs(bytes([0x08, 0x02]) + _len_field(4, bytes([0x64, 0xAC, 0x02, 0x01])))
    assert packed.blocksizes == [100, 300, 1] and packed.data == b""
    # unknown fields of every width are skipped (mode, mtime and whatever comes later)
    extra = (bytes([0x08, 0x02]) + bytes([0x39]) + bytes(8) + bytes([0x45]) + bytes(4) + _len_field(7, b"xyz")
             + bytes([0x38, 0x01]) + _len_field(2, b"d"))
    assert decode_unixfs(extra).data == b"d"


@pytest.mark.parametrize("data,why", [
    (bytes([0x08, 0x02, 0x39]) + bytes(7), "truncated"),
    (bytes([0x08, 0x02, 0x45]) + bytes(3), "truncated"),
    (bytes([0x08, 0x02, 0x3B]), "wire type 3"),
    (bytes([0x08, 0x02]) + _len_field(4, bytes([0x80])), "truncated varint"),
])
def test_malformed_unixfs_data_is_an_integrity_error(data, why):
    from registry.content.dagpb import decode_unixfs

    with pytest.raises(IntegrityError, match=why):
        decode_unixfs(data)


def test_varints_at_their_boundaries_match_protobuf():
    from registry.content.dagpb import decode_node, varint

    assert [varint(n) for n in (127, 128, 129)] == [b"\x7f", b"\x80\x01", b"\x81\x01"]
    widest = _len_field(1, _HASH) + bytes([0x18]) + varint(2**64 - 1)  # Tsize as a 10-byte varint
    assert len(varint(2**64 - 1)) == 10
    assert decode_node(_node_with_link(widest)).links[0].tsize == 2**64 - 1
    with pytest.raises(IntegrityError, match="varint too long"):
        decode_node(_node_with_link(_len_field(1, _HASH) + bytes([0x18]) + b"\xff" * 10 + b"\x01"))


@pytest.mark.parametrize("block,why", [
    (_len_field(3, b"x") + _len_field(1, b"\x08\x02"), "unexpected field 3/2"),
    (bytes([0x10, 0x01]) + _len_field(1, b"\x08\x02"), "unexpected field 2/0"),
    (bytes([0x08, 0x01]), "unexpected field 1/0"),
])
def test_a_node_with_a_field_dag_pb_does_not_have_is_refused(block, why):
    from registry.content.dagpb import decode_node

    with pytest.raises(IntegrityError, match=why):
        decode_node(block)


def _flat_file(leaves: list[bytes]):
    """A one-level file over the given leaves: (root, {cid text: (cid, block)}, leaf CIDs in order)."""
    blocks: dict = {}
    cids = [_put(blocks, RAW, leaf) for leaf in leaves]
    root = _put(blocks, DAG_PB, encode_node([(bytes(c), len(b)) for c, b in zip(cids, leaves)],
                                            unixfs_file_data(sum(map(len, leaves)), [len(b) for b in leaves])))
    return root, blocks, cids


def _walk_car(root, blocks, order, dups=False, fallback=None):
    from registry.content.carwalk import walk_car_stream

    stream = io.BytesIO(car_bytes([root], [blocks[str(c)] for c in order]))
    fallback = fallback or (lambda c: pytest.fail(f"fetched {c} singly"))
    return b"".join(bytes(w.data) for w in walk_car_stream(root, stream, fallback, dups, "gw") if w.data)


@pytest.mark.parametrize("ahead,ok", [(64, True), (65, False)])
def test_a_car_stream_may_send_up_to_64_blocks_ahead_of_the_walk(ahead, ok):
    """A producer that sends leaves in reverse is served from the buffer up to 64 blocks early; one
    more is refused before memory grows with what a hostile gateway sends."""
    from registry.content.carwalk import MAX_BUFFERED_BLOCKS

    assert MAX_BUFFERED_BLOCKS == 64
    leaves = [bytes([i]) * 10 for i in range(ahead + 1)]
    root, blocks, cids = _flat_file(leaves)
    order = [root] + cids[::-1]
    if ok:
        assert _walk_car(root, blocks, order) == b"".join(leaves)
    else:
        with pytest.raises(IntegrityError, match="^gw: too many blocks out of order"):
            _walk_car(root, blocks, order)


@pytest.mark.parametrize("between,singly", [(15, 0), (16, 1)])
def test_a_block_sent_once_is_served_again_from_the_last_16_without_a_request(between, singly):
    """Without dups=y a repeated leaf comes once; the walk serves a repeat from its recent blocks
    (no extra request) when at most 15 other blocks came between, and fetches it singly after that."""
    leaves = [b"A" * 10] + [bytes([i]) * 10 for i in range(between)] + [b"A" * 10]
    root, blocks, cids = _flat_file(leaves)
    requests = []
    got = _walk_car(root, blocks, [root] + cids[:-1], fallback=lambda c: requests.append(c) or blocks[str(c)][1])
    assert got == b"".join(leaves)
    assert len(requests) == singly


def test_a_recently_used_block_stays_in_memory_longest():
    """The recent-block memory drops the least recently *used* block: a leaf that keeps repeating
    is never fetched again even when more than 16 distinct blocks pass between its first copy and now."""
    a = b"A" * 10
    others = [bytes([i]) * 10 for i in range(30)]
    leaves = [a]
    for i in range(0, 30, 10):
        leaves += others[i:i + 10] + [a]
    root, blocks, cids = _flat_file(leaves)
    order, seen = [root], set()
    for c in cids:
        if str(c) not in seen:
            seen.add(str(c))
            order.append(c)
    requests = []
    assert _walk_car(root, blocks, order, fallback=lambda c: requests.append(c) or blocks[str(c)][1]) == b"".join(leaves)
    assert requests == []


def test_with_dups_every_repeat_must_come_again_in_the_stream():
    """dups=y: the producer promised to resend repeats, so a missing repeat is an incomplete CAR."""
    leaves = [b"A" * 10, b"B" * 10, b"A" * 10]
    root, blocks, cids = _flat_file(leaves)
    assert _walk_car(root, blocks, [root] + cids, dups=True) == b"".join(leaves)
    with pytest.raises(IntegrityError, match="incomplete CAR, block .* never arrived"):
        _walk_car(root, blocks, [root] + cids[:2], dups=True)


@pytest.mark.parametrize("extra,why", [(0, "incomplete CAR"), (1, "more than 4096 repeated CAR sections")])
def test_exactly_4096_repeated_sections_are_skipped(extra, why):
    from registry.content.carwalk import MAX_SKIPPED_SECTIONS, car_fetch

    assert MAX_SKIPPED_SECTIONS == 4096
    blocks: dict = {}
    leaf = _put(blocks, RAW, b"a" * 100)
    root = _put(blocks, DAG_PB, encode_node([(bytes(leaf), 100)], unixfs_file_data(100, [100])))
    sections = [blocks[str(root)]] + [blocks[str(leaf)]] * (MAX_SKIPPED_SECTIONS + 1 + extra)
    fetch = car_fetch(root, io.BytesIO(car_bytes([root], sections)), lambda c: blocks[str(c)][1], False, "test")
    fetch(root)
    fetch(leaf)
    with pytest.raises(IntegrityError, match=why):
        fetch(make_cid(1, RAW, hashlib.sha256(b"never").digest()))


def test_a_car_stream_must_name_exactly_the_requested_root():
    """A gateway's CAR with an extra root, or another root, is refused before any block is used; the
    same root written as CIDv0 or CIDv1 is the same request."""
    from registry.content.carwalk import car_fetch

    root, blocks, cids = _flat_file([b"x" * 10])
    body = [blocks[str(root)], blocks[str(cids[0])]]
    for roots in ([root, cids[0]], [cids[0]], []):
        with pytest.raises(IntegrityError, match="roots .* are not"):
            car_fetch(root, io.BytesIO(car_bytes(roots, body)), lambda c: b"", False, "gw")
    v0 = root.set(base="base58btc", version=0)
    assert car_fetch(str(v0), io.BytesIO(car_bytes([root], body)), lambda c: b"", False, "gw")(root) == body[0][1]


class _Pieces(list):
    """An httpx-like response whose body comes in the given pieces (or raises the given exception)."""

    def iter_bytes(self):
        for piece in self:
            if isinstance(piece, BaseException):
                raise piece
            if isinstance(piece, float):
                time.sleep(piece)
                continue
            yield piece


def test_a_response_stream_reads_exactly_what_is_asked_across_pieces():
    from registry.content.carwalk import ResponseStream

    s = ResponseStream(_Pieces([b"ab", b"", b"cde", b"f"]), "gw")  # type: ignore[arg-type]
    assert s.readable()
    assert [s.read(1), s.read(3), s.read(0), s.read(-1), s.read(5), s.read()] == [b"a", b"bcd", b"", b"ef", b"", b""]


@pytest.mark.parametrize("exc,why", [(__import__("httpx").ReadTimeout("slow"), "gw: timed out mid-stream"),
                                     (__import__("httpx").ReadError("reset"), r"gw: the stream broke \(ReadError\)")])
def test_a_transport_failure_mid_stream_is_unreachable_not_a_crash(exc, why):
    from registry.content.carwalk import ResponseStream

    s = ResponseStream(_Pieces([b"ab", exc]), "gw")  # type: ignore[arg-type]
    with pytest.raises(UnreachableError, match=why):
        s.read(10)


def test_a_response_stream_enforces_its_overall_deadline_and_only_when_given():
    from registry.content.carwalk import ResponseStream

    slow = [b"a", 0.3, b"b", 0.3, b"c"]
    assert ResponseStream(_Pieces(slow), "gw").read(-1) == b"abc"  # type: ignore[arg-type]
    assert ResponseStream(_Pieces(slow), "gw", 5.0).read(-1) == b"abc"  # type: ignore[arg-type]
    with pytest.raises(UnreachableError, match="gw: the stream took longer than 0 s"):
        ResponseStream(_Pieces(slow), "gw", 0.4).read(-1)  # type: ignore[arg-type]


def test_a_response_stream_pulls_no_more_of_the_body_than_asked():
    """read(n) stops pulling once it holds n bytes (and read(0) pulls nothing): a failure later in the
    body must not surface while the bytes already asked for are being read."""
    import httpx

    from registry.content.carwalk import ResponseStream

    s = ResponseStream(_Pieces([b"ab", httpx.ReadError("later")]), "gw")  # type: ignore[arg-type]
    assert s.read(0) == b""
    assert s.read(2) == b"ab"
    with pytest.raises(UnreachableError, match="the stream broke"):
        s.read(1)
