"""The tensor layout: ``model.onnx`` plus external data cut so that an unchanged tensor keeps its CID.

Content addressing gives differential updates almost for free, *if* a tensor whose values did not
change lands in a file with the same bytes (hence the same blocks and CID) as before. A single ONNX
file defeats this as soon as a tensor before it changes size, and one big ``model.onnx.data`` does
too. ``write_tensor_layout`` rewrites a model (a single ONNX file, or a directory holding one with
its external data and other files) into::

    model.onnx            the graph; initializers under INLINE_MAX bytes stay inside it
    tensors/<name>.bin    one file per tensor of at least LARGE_MIN bytes, at offset 0: its data starts
                          on a chunk boundary under every CID profile, so its CID depends on its values
                          and nothing else
    groups/<key>.bin      the other tensors, grouped by the module they belong to (``group_key``: the
                          name up to its first numeric component, e.g. ``encoder.layer.5``, else its
                          first component), sorted by name, each at a GROUP_ALIGN-aligned offset: a
                          fine-tune of one layer rewrites that layer's group and nothing else
    (every other file of a source directory, tokenizer and config, copied unchanged)

File names come from the tensor (or group) name alone: characters outside ``[A-Za-z0-9._-]`` become
``_`` and, when anything had to change (or the name is long), 8 hex digits of the name's SHA-256 are
appended, so two tensors never share a file and a renamed tensor never inherits another's. The entry
model keeps its place in the tree (``model.onnx`` at the top, or ``onnx/model.onnx``), ``tensors/``
and ``groups/`` sit beside it, and locations are relative to it, as onnxruntime resolves them.
Every location satisfies ``verify.external``'s rules, so the tree passes every check of a release.
The result is deterministic: the same model gives the same bytes, file by file.
"""

from __future__ import annotations

import filecmp
import hashlib
import os
import posixpath
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from math import prod
from pathlib import Path
from typing import Any, Iterator

from registry.errors import InputError
from registry.layout_source import (  # noqa: F401  (ENTRY: public, the layout's entry file)
    ENTRY,
    Source,
    external_source,
    open_source,
    parse_model,
    refuse_other_external,
)

LAYOUTS = ("as-is", "tensors")
INLINE_MAX = 1024          # bytes: smaller tensors stay inside model.onnx (as onnx's own size_threshold)
LARGE_MIN = 64 * 1024      # bytes: a tensor this large gets a file of its own
GROUP_ALIGN = 64           # offset alignment inside a group file
TENSOR_DIR = "tensors"
GROUP_DIR = "groups"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_MAX_STEM = 100


@dataclass(frozen=True)
class Placement:
    """Where one tensor's bytes went (``file`` relative to the tree's root)."""

    name: str
    file: str
    offset: int
    length: int
    grouped: bool

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "file": self.file, "offset": self.offset, "length": self.length,
                "grouped": self.grouped}


@dataclass(frozen=True)
class LayoutResult:
    """The written tree: its root, entry model, where each external tensor went, what was copied."""

    path: Path
    model: str
    placements: tuple[Placement, ...]
    inline: int
    copied: tuple[str, ...] = field(default_factory=tuple)
    reused: bool = False  # the target already held exactly this tree and was kept

    @property
    def files(self) -> list[str]:
        return sorted({p.file for p in self.placements} | {self.model} | set(self.copied))

    def to_json(self) -> dict[str, Any]:
        return {"kind": "tensors", "path": str(self.path), "model": self.model, "files": len(self.files),
                "external_tensors": len(self.placements), "inline_tensors": self.inline,
                "tensor_files": len({p.file for p in self.placements if not p.grouped}),
                "group_files": len({p.file for p in self.placements if p.grouped}),
                "copied": list(self.copied), "reused": self.reused}


# --------------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------------


def file_stem(name: str) -> str:
    """A file-name stem derived from a tensor or group name alone (see the module docstring)."""
    safe = _UNSAFE.sub("_", name).lstrip(".") or "tensor"
    if safe != name or len(safe) > _MAX_STEM:
        safe = f"{safe[:_MAX_STEM]}.{hashlib.sha256(name.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"
    return safe


def group_key(name: str) -> str:
    """The module a small tensor belongs to: its name up to the first numeric component, else its first."""
    parts = [p for p in re.split(r"[./:]+", name) if p]
    for i, part in enumerate(parts):
        if part.isdigit():
            return ".".join(parts[: i + 1])
    return parts[0] if parts else "misc"


def _stems(names: list[str]) -> dict[str, str]:
    """Stems for a set of names; two that collide under case folding both get their hash suffix."""
    stems = {n: file_stem(n) for n in names}
    seen: dict[str, str] = {}
    clash: set[str] = set()
    for name, stem in stems.items():
        key = stem.casefold()
        if key in seen:
            clash.update((name, seen[key]))
        seen[key] = name
    for name in clash:
        stems[name] = f"{stems[name][:_MAX_STEM]}.{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    return stems


# --------------------------------------------------------------------------------------------
# The rewrite
# --------------------------------------------------------------------------------------------


@dataclass
class _Tensor:
    proto: Any
    length: int
    external: tuple[str, int] | None  # (tree path, offset) of the source bytes, when they were external


def _itemsize(data_type: int) -> int | None:
    from registry.verify.external import _ITEMSIZE  # the types whose external length can be checked

    return _ITEMSIZE.get(data_type)


def _value_bytes(tensor: Any) -> bytes:
    """The raw little-endian bytes of an inline tensor, whichever field holds them."""
    if tensor.HasField("raw_data"):
        return bytes(tensor.raw_data)
    import numpy as np
    from onnx import numpy_helper

    try:
        array = numpy_helper.to_array(tensor)
        return np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
    except Exception as exc:  # typed fields that disagree with the shape, unknown types: the model is malformed
        raise InputError(f"tensor {tensor.name[:80]!r} cannot be read: {str(exc)[:160]}") from exc


def _collect(src: Source) -> tuple[list[_Tensor], set[str], int]:
    """The initializers to move out, the source files that held external data, and how many stay inline."""
    import onnx

    refuse_other_external(src)
    moving: list[_Tensor] = []
    data_files: set[str] = set()
    inline = 0
    for tensor in src.model.graph.initializer:
        is_external = tensor.data_location == onnx.TensorProto.EXTERNAL
        itemsize = _itemsize(tensor.data_type)
        if itemsize is None or tensor.HasField("segment") or any(d < 0 for d in tensor.dims):
            if is_external:
                raise InputError(f"tensor {tensor.name!r} is external data of a type this layout cannot place "
                                 f"(type {tensor.data_type}); save it inline first")
            inline += 1
            continue
        needed = prod(tensor.dims) * itemsize
        source = None
        if is_external:
            path, offset, length = external_source(src, tensor)
            data_files.add(path)
            source = (path, offset)
        else:
            length = len(_value_bytes(tensor)) if not tensor.HasField("raw_data") else len(tensor.raw_data)
        if length != needed:
            raise InputError(f"tensor {tensor.name!r} holds {length} bytes, its shape {list(tensor.dims)} needs "
                             f"{needed}")
        if needed < INLINE_MAX:
            if is_external:  # small external tensors come back into the graph
                assert source is not None
                raw = b"".join(src.read_range(source[0], source[1], length))
                _set_inline(tensor, raw)
            inline += 1
            continue
        moving.append(_Tensor(tensor, needed, source))
    return moving, data_files, inline


def _set_inline(tensor: Any, raw: bytes) -> None:
    import onnx

    del tensor.external_data[:]
    tensor.data_location = onnx.TensorProto.DEFAULT
    tensor.raw_data = raw


_TYPED_FIELDS = ("float_data", "int32_data", "string_data", "int64_data", "double_data", "uint64_data")


def _set_external(tensor: Any, location: str, offset: int, length: int) -> None:
    import onnx

    tensor.ClearField("raw_data")
    for name in _TYPED_FIELDS:
        tensor.ClearField(name)
    del tensor.external_data[:]
    tensor.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(length))):
        item = tensor.external_data.add()
        item.key, item.value = key, value


class _Writer:
    """Writes files under a fresh staging directory (created 0700, opened without following links)."""

    def __init__(self, staging: Path) -> None:
        self.root = staging

    def write(self, rel: str, pieces: Iterator[bytes] | list[bytes]) -> int:
        target = self.root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        total = 0
        try:
            for piece in pieces:
                view = memoryview(piece)
                while len(view):
                    n = os.write(fd, view)
                    view = view[n:]
                    total += n
        except OSError as exc:
            raise InputError(f"cannot write {target}: {exc.strerror or exc}") from exc
        finally:
            os.close(fd)
        return total


def _tensor_pieces(src: Source, item: _Tensor) -> Iterator[bytes]:
    if item.external is not None:
        yield from src.read_range(item.external[0], item.external[1], item.length)
    else:
        yield _value_bytes(item.proto)


def _lay_out(src: Source, writer: _Writer) -> tuple[list[Placement], int, list[str]]:
    moving, data_files, inline = _collect(src)
    base = posixpath.dirname(src.out_entry)
    large = [t for t in moving if t.length >= LARGE_MIN]
    small = [t for t in moving if t.length < LARGE_MIN]
    placements: list[Placement] = []

    stems = _stems([t.proto.name for t in large])
    for item in large:
        location = f"{TENSOR_DIR}/{stems[item.proto.name]}.bin"
        writer.write(posixpath.join(base, location), _tensor_pieces(src, item))
        placements.append(Placement(item.proto.name, posixpath.join(base, location), 0, item.length, False))
        _set_external(item.proto, location, 0, item.length)

    groups: dict[str, list[_Tensor]] = {}
    for item in small:
        groups.setdefault(group_key(item.proto.name), []).append(item)
    group_stems = _stems(sorted(groups))
    for key in sorted(groups):
        location = f"{GROUP_DIR}/{group_stems[key]}.bin"
        members = sorted(groups[key], key=lambda t: t.proto.name.encode("utf-8", "surrogatepass"))
        pieces: list[bytes] = []
        offset = 0
        for item in members:
            pad = -offset % GROUP_ALIGN
            if pad:
                pieces.append(bytes(pad))
                offset += pad
            pieces.append(b"".join(_tensor_pieces(src, item)))
            placements.append(Placement(item.proto.name, posixpath.join(base, location), offset, item.length, True))
            _set_external(item.proto, location, offset, item.length)
            offset += item.length
        writer.write(posixpath.join(base, location), pieces)

    written = {p.file for p in placements}
    copied = []
    for rel in src.files:
        if rel == src.entry or rel in data_files:
            continue
        if rel in written or any(w.startswith(rel + "/") for w in written):
            raise InputError(f"{src.root}/{rel} is where the layout writes a tensor file; move it away first")
        if rel.lower().endswith(".onnx") and _has_external(src, rel):
            raise InputError(f"{src.root}/{rel} is another ONNX model with external data: lay out one model "
                             "per directory")
        writer.write(rel, src.read_range(rel, 0, os.stat(src.root / rel, follow_symlinks=False).st_size))
        copied.append(rel)
    writer.write(src.out_entry, [src.model.SerializeToString(deterministic=True)])
    return placements, inline, copied


def _has_external(src: Source, rel: str) -> bool:
    import onnx

    try:
        model = parse_model(b"".join(src.read_range(rel, 0, os.stat(src.root / rel).st_size)), rel)
    except InputError:
        return False
    return any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)


def write_tensor_layout(source: str | os.PathLike[str], out: str | os.PathLike[str], *,
                        replace: bool = False) -> LayoutResult:
    """Writes ``source`` (an ONNX file, or a directory with one) as the tensor layout at ``out``.

    The tree is built in a staging directory beside ``out`` and renamed into place. An existing
    ``out`` that holds exactly the same files is kept (so re-running is harmless); one that differs
    is refused unless ``replace``. The source is never modified.
    """
    src_path, target = Path(source), Path(out)
    try:
        if target.resolve() == src_path.resolve() or src_path.resolve() in target.resolve().parents:
            raise InputError(f"the layout of {src_path} cannot be written inside it ({target})")
    except OSError as exc:
        raise InputError(f"cannot use {target}: {exc.strerror or exc}") from exc
    src = open_source(src_path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".layout", dir=target.parent))
    except OSError as exc:
        src.close()
        raise InputError(f"cannot create {target}: {exc.strerror or exc}") from exc
    try:
        placements, inline, copied = _lay_out(src, _Writer(staging))
        for folder, dirs, _files in os.walk(staging):
            for d in dirs:
                os.chmod(os.path.join(folder, d), 0o755)
        os.chmod(staging, 0o755)
        reused = _install(staging, target, replace)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        src.close()
    return LayoutResult(target, src.out_entry, tuple(placements), inline, tuple(copied), reused)


def _install(staging: Path, target: Path, replace: bool) -> bool:
    """Renames the staging tree to ``target``; True when an identical tree was already there (kept)."""
    if os.path.lexists(target):
        if target.is_dir() and not target.is_symlink() and _same_tree(staging, target):
            shutil.rmtree(staging, ignore_errors=True)
            return True
        if not replace:
            raise InputError(f"{target} exists and differs from this layout; remove it or choose another directory")
        aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
        os.rename(target, aside / "tree")
        os.rename(staging, target)
        shutil.rmtree(aside, ignore_errors=True)
        return False
    os.rename(staging, target)
    return False


def _listing(root: Path) -> list[str]:
    out = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        rel = os.path.relpath(folder, root)
        out.extend(os.path.normpath(os.path.join(rel, f)) for f in files if not f.startswith("."))
    return sorted(out)


def _same_tree(a: Path, b: Path) -> bool:
    names = _listing(a)
    if names != _listing(b):
        return False
    return all(not (b / n).is_symlink() and filecmp.cmp(a / n, b / n, shallow=False) for n in names)
