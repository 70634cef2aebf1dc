"""Shared helpers for the content tests: the vector stream, a cheap deterministic byte stream, vectors."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import numpy as np

VECTORS = Path("/work/shared/vectors/unixfs-cids.tsv")
REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Vector:
    file: str
    size: int
    content: str
    kubo_v0: str
    kubo_v1: str


def load_vectors() -> list[Vector]:
    rows = VECTORS.read_text(encoding="utf-8").splitlines()[1:]
    out = []
    for row in rows:
        f, size, content, v0, v1 = row.split("\t")
        out.append(Vector(f, int(size), content, v0, v1))
    return out


def gen_stream(size: int, seed: bytes = b"", piece: int = 1 << 20) -> Iterator[bytes]:
    """gen.py's stream (SHA-256 of seed + 8-byte big-endian counter), cut into ``piece``-byte parts."""
    return rechunk(_gen_blocks(size, seed), piece)


def _gen_blocks(size: int, seed: bytes) -> Iterator[bytes]:
    counter = 0
    left = size
    sha = hashlib.sha256
    per = 32768  # digests per block: 1 MiB
    while left > 0:
        out = b"".join(sha(seed + i.to_bytes(8, "big")).digest() for i in range(counter, counter + per))
        counter += per
        yield out[:left]
        left -= len(out)


def rechunk(blocks: Iterator[bytes], piece: int) -> Iterator[bytes]:
    buf = bytearray()
    for b in blocks:
        buf += b
        while len(buf) >= piece:
            yield bytes(buf[:piece])
            del buf[:piece]
    if buf:
        yield bytes(buf)


def vector_bytes(v: Vector) -> bytes:
    if v.content.startswith("gen:"):
        return b"".join(gen_stream(v.size, v.content[4:].encode()))
    if v.content == "zeros":
        return bytes(v.size)
    assert v.content.startswith("literal:")
    return v.content[len("literal:"):].replace("\\n", "\n").encode()


@lru_cache(maxsize=1)
def xorshift_pool() -> np.ndarray:
    """64 KiB of xorshift32 output (seed 2463534242): the pool the JS helper builds too."""
    x = 2463534242
    out = np.empty(16384, dtype=np.uint32)
    for i in range(16384):
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        out[i] = x
    return out


def fast_stream(size: int, piece_blocks: int = 64) -> Iterator[bytes]:
    """Cheap, non-repeating test bytes: 64 KiB block k = pool XOR (k * 0x9E3779B1), little-endian u32.

    scripts/js/unixfs-cid.mjs generates the same stream, so sizes up to GiBs cross-check fast.
    """
    pool = xorshift_pool()
    block = 65536
    k = 0
    left = size
    while left > 0:
        nblocks = min(piece_blocks, (left + block - 1) // block)
        keys = (np.arange(k, k + nblocks, dtype=np.uint64) * np.uint64(0x9E3779B1)) & np.uint64(0xFFFFFFFF)
        arr = pool[None, :] ^ keys.astype(np.uint32)[:, None]
        raw = arr.astype("<u4").tobytes()
        n = min(len(raw), left)
        yield raw[:n]
        left -= n
        k += nblocks


# ------------------------------------------------------------------------------------------------
# Local HTTP servers that follow the specs (Kubo RPC, trustless gateway, pinning service API),
# backed by a real LocalStore, with switchable lies. One per test, on a free 127.0.0.1 port.

import io  # noqa: E402
import json as _json  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from email.parser import BytesParser  # noqa: E402
from email.policy import HTTP  # noqa: E402
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402
from urllib.parse import parse_qs, urlparse  # noqa: E402


class RefusedPort:
    """A loopback port that is bound but never listens: connections are refused for as long as it is
    held, and no other test (or xdist worker) can start a server on it meanwhile."""

    def __init__(self) -> None:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def __enter__(self) -> "RefusedPort":
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


class _QuietServer(ThreadingHTTPServer):
    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN (a DNS round trip); not needed on loopback
        import socketserver

        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", self.server_address[1]

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that hang up early (timeouts under test) are expected


class _Server:
    """Runs a handler class in a thread; ``.url`` and ``.mode`` (the current lie, or "honest")."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.mode = "honest"
        self.requests: list[tuple[str, str]] = []
        # single-block answers (Kubo block/get, gateway ?format=raw): what was sent, wrong answers to give
        # for chosen CIDs (base32 v1 text -> bytes: e.g. the old version's block for a new CID), and a
        # count after which every block request fails (503) as if the link dropped half-way
        self.blocks_served = 0
        self.bytes_served = 0
        self.substitute: dict[str, bytes] = {}
        self.fail_after: int | None = None
        state = self

        class Bound(handler):  # type: ignore[misc, valid-type]
            server_state = state

        self.httpd = _QuietServer(("127.0.0.1", 0), Bound)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    server_state: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass

    @property
    def state(self) -> _Server:
        return self.server_state

    def body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            return self.rfile.read(n)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        return b""

    def send(self, status: int, payload: bytes, ctype: str = "application/json",
             length: int | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload) if length is None else length))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
            self.wfile.flush()

    def send_json(self, status: int, obj: object) -> None:
        self.send(status, _json.dumps(obj).encode() + b"\n")

    def block_answer(self, cid: object, block: bytes) -> bytes | None:
        """The block to send for one block request (a substitute when one is set); None: fail it (503)."""
        from registry.content.cids import to_v1_text

        st = self.state
        if st.fail_after is not None and st.blocks_served >= st.fail_after:
            return None
        block = st.substitute.get(to_v1_text(cid), block)  # type: ignore[arg-type]
        if self.command != "HEAD":
            st.blocks_served += 1
            st.bytes_served += len(block)
        return block

    def send_truncated(self, payload: bytes, ctype: str) -> None:
        """Promises the full length, sends half, hangs up."""
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload[: len(payload) // 2])
        self.wfile.flush()
        self.close_connection = True

    def multipart_named(self, raw: bytes) -> list[tuple[str, bytes, str]]:
        """(URL-unescaped file name, payload, content type) of every part."""
        from urllib.parse import unquote

        ctype = self.headers.get("Content-Type", "")
        msg = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + raw)
        return [(unquote(part.get_filename() or ""), part.get_payload(decode=True) or b"", part.get_content_type())
                for part in msg.iter_parts()]

    def _add_tree(self, named: list[tuple[str, bytes, str]], version: int, raw_leaves: bool, chunk: int, links: int,
                  mode: str) -> None:
        """``add`` of a directory: rebuild the tree in a temp dir and import it like ``ipfs add -r``."""
        import tempfile

        from registry.content.tree import import_tree
        from registry.content.unixfs import Profile

        st = self.state
        with tempfile.TemporaryDirectory() as tmp:
            for name, payload, ctype in named:
                rel = name.partition("/")[2]
                target = Path(tmp) / rel
                if ctype == "application/x-directory":
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                if mode == "wrong-bytes-add":
                    payload = payload + b"!"
                target.write_bytes(payload)
            prof = Profile("fake", version, raw_leaves, chunk, links)
            result = import_tree(tmp, prof, block_sink=lambda c, b: st.store._write_block(c, b))  # type: ignore[attr-defined]
        lines = [{"Name": f"root/{e.path}", "Hash": "", "Size": str(e.size)} for e in result.files.entries]
        lines.append({"Name": "root", "Hash": str(result.cid), "Size": str(result.size)})
        self.send(200, b"".join(_json.dumps(line).encode() + b"\n" for line in lines), "application/x-ndjson")

    def multipart_files(self, raw: bytes) -> list[bytes]:
        ctype = self.headers.get("Content-Type", "")
        msg = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + raw)
        return [part.get_payload(decode=True) or b"" for part in msg.iter_parts()]


class FakeKubo(_Server):
    """Kubo RPC (POST only) over a LocalStore. Lies: wrong-cid, wrong-bytes, truncated, slow, down-503,
    oversize-block, wrong-pin."""

    def __init__(self, store_dir: Path) -> None:
        from registry.content.local import LocalStore

        self.store = LocalStore(store_dir, fsync=False)
        self.add_params: list[dict[str, str]] = []
        super().__init__(_KuboHandler)


class _KuboHandler(_Handler):
    def do_GET(self) -> None:
        self.send_json(405, {"Message": "405 - Method Not Allowed", "Code": 0, "Type": "error"})

    do_HEAD = do_GET

    def do_POST(self) -> None:  # noqa: C901 - one branch per endpoint keeps the fake readable
        from registry.content.cids import parse_cid
        from registry.content.unixfs import Profile, import_bytes

        st: FakeKubo = self.state  # type: ignore[assignment]
        url = urlparse(self.path)
        q = {k: v[-1] for k, v in parse_qs(url.query).items()}
        raw = self.body()
        cmd = url.path.removeprefix("/api/v0/")
        st.requests.append(("POST", cmd))
        mode = st.mode
        if mode == "down-503":
            return self.send(503, b"service unavailable", "text/plain")
        if mode == "slow":
            time.sleep(1.5)
        err = {"Code": 0, "Type": "error"}
        try:
            if cmd == "version":
                return self.send_json(200, {"Version": "0.39.0-fake", "Commit": "", "Repo": "16"})
            if cmd == "add":
                st.add_params.append(q)
                chunk = int(q.get("chunker", "size-262144").removeprefix("size-"))
                version = int(q.get("cid-version", "0"))
                raw_leaves = q.get("raw-leaves", "true" if version == 1 else "false") == "true"
                links = int(q.get("max-file-links", "174"))
                if q.get("trickle", "false") != "false":
                    return self.send_json(400, {"Message": "trickle not supported here", **err})
                named = self.multipart_named(raw)
                if len(named) > 1 or (named and named[0][2] == "application/x-directory"):
                    return self._add_tree(named, version, raw_leaves, chunk, links, mode)
                data = self.multipart_files(raw)[0]
                if mode == "wrong-bytes-add":
                    data = data[:-1] + bytes([data[-1] ^ 1]) if data else b"x"
                prof = Profile("fake", version, raw_leaves, chunk, links)
                r = import_bytes(data, prof, block_sink=lambda c, b: st.store._write_block(c, b))
                cid = r.cid
                if mode == "wrong-cid":
                    cid = import_bytes(data + b"!", prof).cid
                return self.send(200, _json.dumps({"Name": "f", "Hash": str(cid), "Size": str(r.size)}).encode() + b"\n",
                                 "application/x-ndjson")
            if cmd == "block/get":
                cid = parse_cid(q["arg"])
                path = st.store.block_path(cid)
                if not path.exists():
                    return self.send_json(500, {"Message": "block was not found locally (offline): ipld: could not find " + str(cid), **err})
                answer = self.block_answer(cid, path.read_bytes())
                if answer is None:
                    return self.send(503, b"connection to the network lost", "text/plain")
                block = answer
                if mode == "wrong-bytes" and len(block) > 10:
                    block = block[:5] + bytes([block[5] ^ 0xFF]) + block[6:]
                if mode == "oversize-block":
                    block = block + bytes(3 * 1024 * 1024)
                if mode == "truncated":
                    return self.send_truncated(block, "text/plain")
                return self.send(200, block, "text/plain")
            if cmd == "block/stat":
                cid = parse_cid(q["arg"])
                path = st.store.block_path(cid)
                if not path.exists():
                    return self.send_json(500, {"Message": "block was not found locally (offline)", **err})
                return self.send_json(200, {"Key": str(cid), "Size": path.stat().st_size})
            if cmd == "block/put":
                from registry.content.cids import make_cid, DAG_PB, RAW
                import hashlib

                block = self.multipart_files(raw)[0]
                codec = DAG_PB if q.get("cid-codec") == "dag-pb" else RAW
                cid = make_cid(1, codec, hashlib.sha256(block).digest())
                st.store._write_block(cid, block)
                return self.send_json(200, {"Key": str(cid), "Size": len(block)})
            if cmd == "pin/add":
                cid = parse_cid(q["arg"])
                try:
                    st.store.pin(cid)
                except Exception as exc:
                    return self.send_json(500, {"Message": f"pin: {exc}", **err})
                pinned = str(cid) if mode != "wrong-pin" else "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
                return self.send_json(200, {"Pins": [pinned]})
            if cmd == "dag/import":
                car = self.multipart_files(raw)[0]
                roots = st.store.import_car(io.BytesIO(car), pin=q.get("pin-roots", "true") == "true")
                out = b"".join(_json.dumps({"Root": {"Cid": {"/": str(r)}, "PinErrorMsg": ""}}).encode() + b"\n"
                               for r in roots)
                return self.send(200, out, "application/x-ndjson")
            if cmd == "dag/export":
                from registry.content.car import car_bytes

                root = parse_cid(q["arg"])
                if not st.store.has(root):
                    return self.send_json(500, {"Message": f"block was not found locally (offline): {root}", **err})
                unique: dict[bytes, tuple[object, bytes]] = {}
                for c, b in st.store._car_blocks(root):  # each block once, depth-first, like go-car
                    unique.setdefault(bytes(c), (c, b))
                blocks = list(unique.values())
                if mode == "wrong-bytes" and len(blocks) > 1:
                    c, b = blocks[-1]
                    blocks[-1] = (c, b[:-1] + bytes([b[-1] ^ 1]))
                if mode == "incomplete":
                    blocks = blocks[:-1]
                payload = car_bytes([root], blocks)  # type: ignore[arg-type]
                if mode == "truncated":
                    return self.send_truncated(payload, "application/vnd.ipld.car")
                st.bytes_served += len(payload)
                return self.send(200, payload, "application/vnd.ipld.car")
            if cmd == "cat":
                data = st.store.get_bytes(parse_cid(q["arg"]))
                return self.send(200, data, "text/plain")
            return self.send(404, b"404 page not found", "text/plain")
        except Exception as exc:  # the fake answers like Kubo: 500 + message
            return self.send_json(500, {"Message": str(exc), **err})


class FakeGateway(_Server):
    """Trustless gateway (GET/HEAD /ipfs/<cid>?format=car|raw) over a LocalStore.
    Lies: wrong-bytes, truncated, incomplete, oversize-block, wrong-root, reordered, html, not-found."""

    def __init__(self, store_dir: Path) -> None:
        from registry.content.local import LocalStore

        self.store = LocalStore(store_dir, fsync=False)
        super().__init__(_GatewayHandler)


class _GatewayHandler(_Handler):
    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        from registry.content.car import car_bytes, encode_header, encode_section
        from registry.content.cids import parse_cid

        st: FakeGateway = self.state  # type: ignore[assignment]
        url = urlparse(self.path)
        q = {k: v[-1] for k, v in parse_qs(url.query).items()}
        st.requests.append((self.command, self.path))
        mode = st.mode
        if not url.path.startswith("/ipfs/"):
            return self.send(404, b"not found", "text/plain")
        try:
            cid = parse_cid(url.path.removeprefix("/ipfs/"))
        except Exception:
            return self.send(400, b"bad cid", "text/plain")
        if mode == "not-found" or not st.store.has(cid):
            return self.send(404, b"not found", "text/plain")
        if mode == "html":
            return self.send(200, b"<html>hello</html>", "text/html")
        fmt = q.get("format") or ("car" if "car" in self.headers.get("Accept", "") else "raw")
        if fmt == "raw":
            answer = self.block_answer(cid, st.store.block_path(cid).read_bytes())
            if answer is None:
                return self.send(503, b"upstream unavailable", "text/plain")
            block = answer
            if mode == "wrong-bytes":
                block = block[:-1] + bytes([block[-1] ^ 1])
            return self.send(200, block, "application/vnd.ipld.raw")
        tree = st.store.kind(cid) == "directory"
        # a file: every block in DFS order, repeats included (dups=y); a tree: each distinct block once
        blocks = list(st.store._car_blocks(cid) if tree else st.store.iter_blocks(cid))
        if mode == "wrong-bytes" and len(blocks) > 1:
            c, b = blocks[-1]
            blocks[-1] = (c, b[:-1] + bytes([b[-1] ^ 1]))
        if mode == "incomplete":
            blocks = blocks[:-1]
        if mode == "reordered":
            blocks = [blocks[0]] + list(reversed(blocks[1:]))
        if mode == "oversize-block":
            payload = encode_header([cid]) + encode_section(blocks[0][0], blocks[0][1] + bytes(3 << 20))
            return self.send(200, payload, "application/vnd.ipld.car")
        ctype = "application/vnd.ipld.car; version=1; order=dfs; dups=" + ("n" if tree else "y")
        if mode == "no-dups":
            unique: dict[bytes, tuple[object, bytes]] = {}
            for c, b in blocks:
                unique.setdefault(bytes(c), (c, b))
            blocks = list(unique.values())  # type: ignore[arg-type]
            ctype = "application/vnd.ipld.car; version=1; order=dfs; dups=n"
        roots = [cid]
        if mode == "wrong-root":
            roots = [blocks[-1][0]]
        payload = car_bytes(roots, blocks)  # type: ignore[arg-type]
        if mode == "truncated":
            return self.send_truncated(payload, ctype)
        if self.command == "GET":
            st.bytes_served += len(payload)
        return self.send(200, payload, ctype)


class FakePinning(_Server):
    """IPFS Pinning Service API: requests go queued -> pinning -> pinned on successive reads.
    Modes: fail (-> failed), wrong-cid (answers for another CID), stuck (stays queued)."""

    TOKEN = "secret-token"

    def __init__(self) -> None:
        self.pins: dict[str, dict[str, object]] = {}
        self.lock = threading.Lock()
        super().__init__(_PinningHandler)


class _PinningHandler(_Handler):
    def _auth(self) -> bool:
        if self.headers.get("Authorization") != f"Bearer {FakePinning.TOKEN}":
            self.send_json(401, {"error": {"reason": "UNAUTHORIZED", "details": "bad token"}})
            return False
        return True

    def _advance(self, pin: dict[str, object]) -> None:
        st: FakePinning = self.state  # type: ignore[assignment]
        order = ["queued", "pinning", "pinned"]
        if st.mode == "stuck":
            return
        if st.mode == "fail" and pin["status"] == "pinning":
            pin["status"] = "failed"
            pin["info"] = {"status_details": "content not found on the network"}
            return
        if pin["status"] in order[:-1]:
            pin["status"] = order[order.index(str(pin["status"])) + 1]

    def do_POST(self) -> None:
        st: FakePinning = self.state  # type: ignore[assignment]
        st.requests.append(("POST", self.path))
        raw = self.body()
        if not self._auth():
            return
        if self.path != "/pins":
            return self.send_json(404, {"error": {"reason": "NOT_FOUND"}})
        try:
            req = _json.loads(raw)
            cid = req["cid"]
        except Exception:
            return self.send_json(400, {"error": {"reason": "BAD_REQUEST", "details": "cid required"}})
        if st.mode == "wrong-cid":
            cid = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
        with st.lock:
            rid = f"req-{len(st.pins) + 1}"
            pin = {"requestid": rid, "status": "queued", "created": "2026-01-01T00:00:00Z",
                   "pin": {"cid": cid, "name": req.get("name")}, "delegates": ["/dnsaddr/pin.example"],
                   "info": {}}
            st.pins[rid] = pin
        self.send_json(202, pin)

    def do_GET(self) -> None:
        st: FakePinning = self.state  # type: ignore[assignment]
        st.requests.append(("GET", self.path))
        if not self._auth():
            return
        url = urlparse(self.path)
        q = {k: v[-1] for k, v in parse_qs(url.query).items()}
        with st.lock:
            if url.path == "/pins":
                wanted = set(q.get("status", "queued,pinning,pinned,failed").split(","))
                cids = set(q["cid"].split(",")) if "cid" in q else None
                results = [p for p in st.pins.values() if p["status"] in wanted
                           and (cids is None or p["pin"]["cid"] in cids)]  # type: ignore[index]
                return self.send_json(200, {"count": len(results), "results": results})
            rid = url.path.removeprefix("/pins/")
            pin = st.pins.get(rid)
            if pin is None:
                return self.send_json(404, {"error": {"reason": "NOT_FOUND", "details": rid}})
            self._advance(pin)
            return self.send_json(200, pin)

    def do_DELETE(self) -> None:
        st: FakePinning = self.state  # type: ignore[assignment]
        if not self._auth():
            return
        rid = urlparse(self.path).path.removeprefix("/pins/")
        with st.lock:
            if st.pins.pop(rid, None) is None:
                return self.send_json(404, {"error": {"reason": "NOT_FOUND"}})
        self.send(202, b"", "application/json")
