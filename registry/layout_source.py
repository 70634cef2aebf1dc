"""Reading the model a tensor layout is written from: its entry ONNX proto (no external bytes loaded),
the files of its tree, and byte ranges of its external data, never through a link.

Only the main graph's initializers can be laid out: external data anywhere else (a ``Constant``, a
subgraph, a model-local function, training info) is refused here rather than left dangling.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from registry.errors import InputError

ENTRY = "model.onnx"
COPY_PIECE = 8 << 20


@dataclass
class Source:
    """The model to lay out: its proto (no external bytes loaded), its tree, and a way to read ranges."""

    root: Path
    entry: str
    model: Any
    files: list[str]
    root_fd: int
    out_entry: str = ENTRY  # where the entry model goes in the layout (a single file becomes model.onnx)
    single: bool = False    # a file was given: only it and the external data it names are read

    def close(self) -> None:
        os.close(self.root_fd)

    def read_range(self, rel: str, offset: int, length: int) -> Iterator[bytes]:
        from registry.content.tree import open_in_tree

        try:
            fd = open_in_tree(self.root_fd, rel)
        except OSError as exc:
            raise InputError(f"cannot open {self.root}/{rel}: {exc.strerror or exc} (links are not followed)") from exc
        try:
            left = length
            pos = offset
            while left:
                piece = os.pread(fd, min(left, COPY_PIECE), pos)
                if not piece:
                    raise InputError(f"{self.root}/{rel} ends before byte {offset + length}")
                yield piece
                pos += len(piece)
                left -= len(piece)
        finally:
            os.close(fd)


def _entry_of(paths: list[str], where: Path) -> str:
    if ENTRY in paths:
        return ENTRY
    models = [p for p in paths if p.lower().endswith(".onnx")]
    if len(models) == 1:
        return models[0]
    if not models:
        raise InputError(f"{where} holds no .onnx model")
    raise InputError(f"{where} holds {len(models)} .onnx files and no top-level {ENTRY}: name the entry model {ENTRY}")


def parse_model(data: bytes, shown: str) -> Any:
    import onnx

    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise InputError(f"{shown} is not an ONNX model: {str(exc)[:200]}") from exc
    if not model.HasField("graph"):
        raise InputError(f"{shown} is not an ONNX model: no graph")
    if model.ir_version < 4 or not len(model.opset_import) or not len(model.graph.output):
        raise InputError(f"{shown} is not a usable ONNX model (IR version {model.ir_version}, "
                         f"{len(model.opset_import)} opset imports, {len(model.graph.output)} graph outputs)")
    return model


def open_source(source: Path) -> Source:
    from registry.content.tree import is_tree, open_root, scan_tree
    from registry.fsutil import read_small_file

    if is_tree(source):
        scan = scan_tree(source)
        paths = [f.path for f in scan.files]
        entry = _entry_of(paths, source)
        root = source
    elif source.is_file():
        root, entry = source.parent, source.name
        paths = [entry]
    else:
        raise InputError(f"cannot read {source}: not a file or a directory")
    data = read_small_file(root / entry, limit=2 * 1024**3, what="ONNX model")
    model = parse_model(data, str(root / entry))
    single = not is_tree(source)
    return Source(root, entry, model, paths, open_root(root), ENTRY if single else entry, single)


def external_source(src: Source, tensor: Any) -> tuple[str, int, int]:
    from registry.errors import PolicyError
    from registry.verify.external import _number, resolve_location

    entries = {e.key: e.value for e in tensor.external_data}
    try:
        path = resolve_location(entries.get("location", ""), src.entry)
        offset = _number(entries.get("offset", "0"), tensor.name, "offset")
        length = _number(entries["length"], tensor.name, "length") if "length" in entries else -1
    except PolicyError as exc:
        raise InputError(f"{src.root}/{src.entry}: {exc}") from exc
    if src.single and path not in src.files and _regular(src.root / path):
        src.files.append(path)  # the data file beside a model given as a file
    if path not in src.files:
        raise InputError(f"{src.root}/{src.entry}: tensor {tensor.name!r} names external data {path!r}, "
                         "which is not a regular file of the model's directory")
    if length < 0:
        length = os.stat(src.root / path, follow_symlinks=False).st_size - offset
    return path, offset, length


def _regular(path: Path) -> bool:
    import stat

    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def refuse_other_external(src: Source) -> None:
    """External data anywhere but the main graph's initializers (a Constant, a subgraph, a function) is
    refused: the layout places those initializers only, and would leave such a reference dangling."""
    import onnx

    for tensor in _other_tensors(src.model):
        if tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.external_data):
            raise InputError(f"{src.root}/{src.entry}: tensor {tensor.name[:80]!r} outside the main graph's "
                             "initializers uses external data; only initializers can be laid out")


def _other_tensors(model: Any) -> Iterator[Any]:
    """Every tensor but the main graph's initializers (``onnx_checks._model_tensors`` minus those)."""
    from registry.onnx_checks import _attr_tensors, _graph_tensors

    graph = model.graph
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attr in node.attribute:
            yield from _attr_tensors(attr)
    for function in model.functions:
        for attr in function.attribute_proto:
            yield from _attr_tensors(attr)
        for node in function.node:
            for attr in node.attribute:
                yield from _attr_tensors(attr)
    for training in model.training_info:
        yield from _graph_tensors(training.initialization)
        yield from _graph_tensors(training.algorithm)
