"""The delta of a release against its parent: which tensors changed, their bytes, and what an update costs.

``registry delta NAME@VERSION`` answers a reviewer's (or a fleet operator's) question before anything
is pulled: what did this release change relative to its parent (or ``--base``), and how many bytes
will a device that holds the parent have to fetch? Both releases are read from the store starting at
their anchored CIDs, every block verified, but only the parts that answer the question:

* the directory nodes and the files' inner nodes (links carry each leaf's CID and size, so leaves are
  not fetched): that gives every block of both DAGs, hence the exact transfer (blocks of the release
  that the base does not have) and which files changed (their root CIDs differ);
* the entry ``model.onnx`` of a tree (small in the tensor layout): each initializer's dtype, shape,
  size and where its bytes are. A tensor that is a whole file is identified by that file's CID (same
  CID, same bytes); one that shares a file with others (a layout group, a ``model.onnx.data``) is
  identified by the SHA-256 of its range, read from that file; an inline one by the SHA-256 of its
  bytes. A single-file release is read whole and hashed against its anchored SHA-256.

So for a tensor-layout release the delta reads the graph, the group files and the DAG's inner nodes
(a few hundred KiB for a 90 MB model) and never a large tensor. ``tree_facts`` gives ``registry
diff`` the same per-tensor identities for directory releases.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable

from registry.errors import InputError, IntegrityError

if TYPE_CHECKING:
    from multiformats import CID

    from registry.chain.records import ReleaseRecord
    from registry.modelfacts import ModelFacts, TensorFact

MAX_LISTED = 1000
# a dag-pb child whose sub-DAG is at most this many bytes bigger than its file data is a kubo-v0 leaf
# (the UnixFS wrapping of one chunk is ~14 bytes; any inner node adds its own block of links)
_LEAF_WRAPPING_MAX = 32
MAX_NODES = 1_000_000
MAX_ENTRY_MODEL = 2 * 1024**3

Fetch = Callable[["CID"], bytes]


@dataclass
class DagInventory:
    """Every block of a DAG (nodes fetched and verified, leaves known from their parents' links)."""

    blocks: dict[str, int] = field(default_factory=dict)       # block key -> bytes
    files: dict[str, tuple[Any, int]] = field(default_factory=dict)  # path ("" for a file DAG) -> (cid, size)
    kind: str = "file"
    directories: set[str] = field(default_factory=set)  # keys of the directory (and HAMT shard) nodes

    @property
    def total_bytes(self) -> int:
        return sum(self.blocks.values())


def inventory(root: "CID", fetch: Fetch) -> DagInventory:
    """The blocks and files of the DAG under ``root`` (see the module docstring)."""
    from registry.content.cids import DAG_PB, RAW, fast_cid, to_v1_text
    from registry.content.dagpb import T_DIRECTORY, T_FILE, T_HAMT_SHARD, T_RAW, decode_node, decode_unixfs
    from registry.content.filelist import check_component
    from registry.content.hamt import read_shard
    from registry.content.reader import checked_block

    inv = DagInventory()
    # (cid, path, "entry" | "shard" | "file-child", sub-DAG size from the link, file bytes from the link)
    stack: list[tuple[Any, str, str, int | None, int | None]] = [(root, "", "entry", None, None)]
    while stack:
        cid, path, role, tsize, filebytes = stack.pop()
        key = to_v1_text(cid)
        if len(inv.blocks) > MAX_NODES:
            raise IntegrityError(f"{root}: more than {MAX_NODES} blocks; refused")
        if role == "file-child" and (cid.codec.code == RAW or (
                tsize is not None and filebytes is not None and 0 <= tsize - filebytes <= _LEAF_WRAPPING_MAX)):
            inv.blocks[key] = tsize if tsize is not None else filebytes or 0
            continue
        if cid.codec.code == RAW:  # a one-block file named by a directory
            block = checked_block(cid, fetch(cid))
            inv.blocks[key] = len(block)
            inv.files[path] = (cid, len(block))
            continue
        if cid.codec.code != DAG_PB:
            raise IntegrityError(f"block {cid} has codec {cid.codec.name}; expected raw or dag-pb")
        block = checked_block(cid, fetch(cid))
        inv.blocks[key] = len(block)
        node = decode_node(block)
        fs = decode_unixfs(node.data)
        if fs.type in (T_FILE, T_RAW):
            if role == "entry":
                inv.files[path] = (cid, len(fs.data) + sum(fs.blocksizes))
            if len(fs.blocksizes) != len(node.links):
                raise IntegrityError(f"block {cid}: {len(node.links)} links but {len(fs.blocksizes)} block sizes")
            for link, size in reversed(list(zip(node.links, fs.blocksizes))):
                stack.append((fast_cid(link.hash), path, "file-child", link.tsize, size))
            continue
        if role == "file-child":
            raise IntegrityError(f"block {cid} is a directory inside a file")
        if root == cid:
            inv.kind = "directory"
        inv.directories.add(key)
        if fs.type == T_DIRECTORY:
            children = [(link.name or "", link.hash) for link in node.links]
        elif fs.type == T_HAMT_SHARD:
            shard_links = read_shard(node, fs, f"directory {path or '/'}")
            for link in reversed(shard_links):
                if link.name is None:
                    stack.append((fast_cid(link.cid), path, "shard", link.tsize, None))
            children = [(link.name, link.cid) for link in shard_links if link.name is not None]
        else:
            raise IntegrityError(f"block {cid} is a UnixFS type {fs.type} node; refused")
        for name, raw in reversed(children):
            try:
                check_component(name, path)
            except InputError as exc:
                raise IntegrityError(f"directory entry refused: {exc}") from None
            stack.append((fast_cid(raw), f"{path}/{name}" if path else name, "entry", None, None))
    return inv


# --------------------------------------------------------------------------------------------
# Tensors
# --------------------------------------------------------------------------------------------


def _read_file(store: Any, cid: Any, size: int) -> bytes:
    return store.get_bytes(cid, max_size=size)


def tree_facts(record: "ReleaseRecord", store: Any, inv: DagInventory | None = None) -> "ModelFacts":
    """ModelFacts of a directory release's entry model, every tensor carrying an identity (see the module docstring)."""
    from registry.content.cids import cid_from_bytes, to_v1_text
    from registry.errors import PolicyError
    from registry.modelfacts import model_facts
    from registry.verify.external import resolve_location

    if inv is None:
        inv = inventory(cid_from_bytes(record.artifact_cid), store._fetch_block)
    if inv.kind != "directory":
        raise InputError(f"{record.ref} is a single file, not a directory")
    entry = _entry(sorted(inv.files))
    cid, size = inv.files[entry]
    if size > MAX_ENTRY_MODEL:
        raise PolicyError(f"{record.ref}: {entry} is {size} bytes, over protobuf's limit")
    data = _read_file(store, cid, size)
    facts = model_facts(data)
    import onnx

    model = onnx.ModelProto()
    model.ParseFromString(data)
    ranges: dict[str, list[tuple[str, int, int]]] = {}
    identities: dict[str, str] = {}
    for tensor in model.graph.initializer:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        entries = {e.key: e.value for e in tensor.external_data}
        try:
            path = resolve_location(entries.get("location", ""), entry)
        except PolicyError as exc:
            raise PolicyError(f"{record.ref}: {exc}") from exc
        if path not in inv.files:
            raise PolicyError(f"{record.ref}: tensor {tensor.name!r} names {path!r}, not a file of the release")
        file_cid, file_size = inv.files[path]
        offset = _int(entries.get("offset", "0"))
        length = _int(entries["length"]) if "length" in entries else file_size - offset
        if offset == 0 and length == file_size:
            identities[tensor.name] = "cid:" + to_v1_text(file_cid)
        else:
            ranges.setdefault(path, []).append((tensor.name, offset, length))
    for path, wanted in ranges.items():
        file_cid, file_size = inv.files[path]
        for name, offset, length in wanted:
            if offset < 0 or length < 0 or offset + length > file_size:
                raise PolicyError(f"{record.ref}: tensor {name!r} lies past the end of {path}")
        identities.update(range_digests(store.open(file_cid, max_size=file_size), wanted))
    tensors = {name: replace(fact, sha256=identities.get(name, fact.sha256)) for name, fact in facts.tensors.items()}
    return replace(facts, size=record.artifact_size, tensors=tensors)


def range_digests(chunks: Any, ranges: list[tuple[str, int, int]]) -> dict[str, str]:
    """``name -> "sha256:<hex>"`` of each (name, offset, length) range of a byte stream, in one pass.

    The file streams by (a shared ``model.onnx.data`` may be far larger than memory); each chunk
    feeds the digests of the ranges it overlaps, ranges being activated in offset order."""
    pending = sorted(ranges, key=lambda r: r[1])
    hashers = {name: hashlib.sha256() for name, _o, _n in pending}
    active: list[tuple[str, int, int]] = []
    nxt = 0
    pos = 0
    for chunk in chunks:
        view = memoryview(chunk)
        end = pos + len(view)
        while nxt < len(pending) and pending[nxt][1] < end:
            active.append(pending[nxt])
            nxt += 1
        still = []
        for name, offset, length in active:
            lo, hi = max(offset, pos), min(offset + length, end)
            if hi > lo:
                hashers[name].update(view[lo - pos:hi - pos])
            if offset + length > end:
                still.append((name, offset, length))
        active = still
        pos = end
    return {name: "sha256:" + h.hexdigest() for name, h in hashers.items()}


def _entry(paths: list[str]) -> str:
    from registry.errors import PolicyError

    if "model.onnx" in paths:
        return "model.onnx"
    models = [p for p in paths if p.lower().endswith(".onnx")]
    if len(models) != 1:
        raise PolicyError("the tree has no top-level model.onnx and not exactly one .onnx file")
    return models[0]


def _int(text: str) -> int:
    from registry.verify.external import _DECIMAL

    if not _DECIMAL.match(text or ""):
        raise IntegrityError(f"external data offset or length {text[:30]!r} is not a decimal integer")
    return int(text)


def file_facts(record: "ReleaseRecord", store: Any) -> "ModelFacts":
    from registry.content.cids import cid_from_bytes
    from registry.modelfacts import model_facts

    data = store.get_bytes(cid_from_bytes(record.artifact_cid), max_size=record.artifact_size)
    if hashlib.sha256(data).digest() != record.artifact_sha256 or len(data) != record.artifact_size:
        raise IntegrityError(f"{record.ref}: the store's bytes do not match the release's SHA-256")
    return model_facts(data)


# --------------------------------------------------------------------------------------------
# The delta
# --------------------------------------------------------------------------------------------


@dataclass
class ReleaseDelta:
    base: str
    release: str
    kind: str
    tensors: dict[str, Any]
    files: dict[str, Any]
    transfer: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        return {"base": self.base, "release": self.release, "kind": self.kind, "tensors": self.tensors,
                "files": self.files, "transfer": self.transfer}


def _tensor_delta(a: dict[str, "TensorFact"], b: dict[str, "TensorFact"]) -> dict[str, Any]:
    def row(t: "TensorFact") -> dict[str, Any]:
        return {"name": t.name, "dtype": t.dtype, "shape": list(t.shape), "nbytes": t.nbytes}

    changed = [b[n] for n in sorted(set(a) & set(b))
               if (a[n].sha256, a[n].dtype, a[n].shape) != (b[n].sha256, b[n].dtype, b[n].shape)]
    added = [b[n] for n in sorted(set(b) - set(a))]
    removed = [a[n] for n in sorted(set(a) - set(b))]
    return {
        "counts": {"changed": len(changed), "added": len(added), "removed": len(removed),
                   "unchanged": len(set(a) & set(b)) - len(changed)},
        "bytes": {"changed": sum(t.nbytes for t in changed), "added": sum(t.nbytes for t in added),
                  "removed": sum(t.nbytes for t in removed), "release": sum(t.nbytes for t in b.values())},
        "changed": [row(t) for t in changed[:MAX_LISTED]],
        "added": [row(t) for t in added[:MAX_LISTED]],
        "removed": [row(t) for t in removed[:MAX_LISTED]],
        "truncated": any(len(x) > MAX_LISTED for x in (changed, added, removed)),
    }


def _file_delta(a: DagInventory, b: DagInventory) -> dict[str, Any]:
    from registry.content.cids import to_v1_text

    def ident(item: tuple[Any, int]) -> str:
        return to_v1_text(item[0])

    changed = sorted(p for p in set(a.files) & set(b.files) if ident(a.files[p]) != ident(b.files[p]))
    added = sorted(set(b.files) - set(a.files))
    removed = sorted(set(a.files) - set(b.files))
    return {"changed": [{"path": p, "size": b.files[p][1]} for p in changed[:MAX_LISTED]],
            "added": [{"path": p, "size": b.files[p][1]} for p in added[:MAX_LISTED]],
            "removed": removed[:MAX_LISTED],
            "unchanged": len(set(a.files) & set(b.files)) - len(changed)}


def transfer_between(a: DagInventory, b: DagInventory) -> dict[str, int]:
    """Blocks of ``b`` that a device holding ``a`` lacks (what an incremental pull fetches)."""
    missing = {k: n for k, n in b.blocks.items() if k not in a.blocks}
    return {"fetch_bytes": sum(missing.values()), "fetch_blocks": len(missing),
            "reuse_bytes": b.total_bytes - sum(missing.values()), "total_bytes": b.total_bytes,
            "total_blocks": len(b.blocks)}


def release_delta(base: "ReleaseRecord", target: "ReleaseRecord", store: Any) -> ReleaseDelta:
    """What ``target`` changed relative to ``base`` (see the module docstring)."""
    from registry.content.cids import cid_from_bytes

    inv_a = inventory(cid_from_bytes(base.artifact_cid), store._fetch_block)
    inv_b = inventory(cid_from_bytes(target.artifact_cid), store._fetch_block)
    facts_a = tree_facts(base, store, inv_a) if inv_a.kind == "directory" else file_facts(base, store)
    facts_b = tree_facts(target, store, inv_b) if inv_b.kind == "directory" else file_facts(target, store)
    kind = inv_b.kind if inv_a.kind == inv_b.kind else f"{inv_a.kind} -> {inv_b.kind}"
    return ReleaseDelta(base.ref, target.ref, kind, _tensor_delta(facts_a.tensors, facts_b.tensors),
                        _file_delta(inv_a, inv_b), transfer_between(inv_a, inv_b))


def delta_refs(ref: str, base: str | None = None, settings: Any = None, *, client: Any = None,
               store: Any = None) -> ReleaseDelta:
    """``registry delta``: ``ref`` against ``base`` (default: its parent on chain)."""
    from registry.config import load_settings
    from registry.content.stores import open_store

    settings = settings or load_settings()
    if client is None:
        from registry.chain.client import RegistryClient

        client = RegistryClient.connect(settings)
    store = store or open_store(settings)
    target = client.resolve(ref)
    if base is not None:
        parent = client.resolve(base)
    elif any(target.parent):
        parent = client.get_by_id(target.parent)
    else:
        raise InputError(f"{target.ref} has no parent: name the release to compare with (--base NAME@VERSION)")
    if not hasattr(store, "_fetch_block"):
        raise InputError("this store cannot fetch single blocks; the delta needs a local store, Kubo or a gateway")
    return release_delta(parent, target, store)


def render_delta(delta: ReleaseDelta) -> list[str]:
    """Plain lines for the terminal."""
    t = delta.tensors
    c, b = t["counts"], t["bytes"]
    lines = [f"{delta.release} against {delta.base} ({delta.kind})",
             f"tensors    {c['changed']} changed ({b['changed']} B), {c['added']} added ({b['added']} B), "
             f"{c['removed']} removed ({b['removed']} B), {c['unchanged']} unchanged"]
    for label in ("changed", "added", "removed"):
        for row in t[label][:20]:
            lines.append(f"  {label:<8} {row['name']}  {row['dtype']}{row['shape']}  {row['nbytes']} B")
        if len(t[label]) > 20:
            lines.append(f"  ... {len(t[label]) - 20} more {label}")
    f = delta.files
    if delta.kind == "directory":
        lines.append(f"files      {len(f['changed'])} changed, {len(f['added'])} added, {len(f['removed'])} removed, "
                     f"{f['unchanged']} unchanged")
    x = delta.transfer
    share = 100 * x["fetch_bytes"] / x["total_bytes"] if x["total_bytes"] else 0.0
    lines.append(f"update     a device holding {delta.base} fetches {x['fetch_bytes']} B in {x['fetch_blocks']} blocks "
                 f"({share:.1f}% of {x['total_bytes']} B) and reuses {x['reuse_bytes']} B")
    return lines
