"""External data inside a verified tree: the only external data a directory artifact may use.

An ONNX model over 2 GiB must keep its weights in separate files, named by each tensor's
``external_data`` entries (``location``, ``offset``, ``length``), which onnxruntime resolves
relative to the model file's directory. In a directory release those files are part of the signed
tree, so a tensor may point at them, and at nothing else:

* only initializers of the main graph may be external (attribute, sparse and subgraph tensors may
  not: the generic check refuses them);
* ``location`` is a relative POSIX path: never absolute, no ``\\``, no drive, no ``.`` or ``..``
  component, no control character; joined to the model's directory it names a file of the
  verified file list;
* ``offset`` and ``length`` are plain decimal integers, ``offset + length`` lies inside that file,
  and ``length`` is exactly what the tensor's type and shape need (without ``length``, the rest of
  the file from ``offset`` must be exactly that);
* no other key than ``location``, ``offset``, ``length`` and ``checksum``.

Checked tensors are lifted out of the proto given to ``onnx.checker`` (as typed graph inputs, the
same trick ``onnx_checks`` uses for large inline tensors), since the checker would otherwise look
for the files relative to the current directory.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from math import prod
from typing import Any

from registry.content.filelist import FileList
from registry.errors import PolicyError

_ITEMSIZE = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 14: 8, 15: 16, 16: 2,
             17: 1, 18: 1, 19: 1, 20: 1}
_KEYS = {"location", "offset", "length", "checksum"}
_DECIMAL = re.compile(r"^(0|[1-9][0-9]{0,18})$")


@dataclass(frozen=True)
class ExternalRef:
    """One verified external tensor: which file of the tree, where in it."""

    tensor: str
    location: str  # as written in the model (what onnxruntime looks up)
    path: str      # the tree path it resolves to
    offset: int
    length: int


@dataclass
class TreeExternalData:
    """The hook ``onnx_checks.check_onnx`` calls on a model of a tree (see the module docstring)."""

    files: FileList
    model_path: str
    refs: list[ExternalRef] = field(default_factory=list)

    def __call__(self, model: Any) -> None:
        import onnx

        graph = model.graph
        keep = []
        lifted = []
        for tensor in graph.initializer:
            if tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.external_data):
                self.refs.append(self.check(tensor))
                lifted.append(tensor)
            else:
                keep.append(tensor)
        if not lifted:
            return
        del graph.initializer[:]
        graph.initializer.extend(keep)
        names = {inp.name for inp in graph.input}
        for tensor in lifted:
            if tensor.name not in names:
                graph.input.append(onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims)))

    def check(self, tensor: Any) -> ExternalRef:
        import onnx

        name = tensor.name
        if tensor.data_location != onnx.TensorProto.EXTERNAL or tensor.HasField("raw_data"):
            raise PolicyError(f"tensor {name!r}: external_data entries on a tensor that is not stored externally")
        entries: dict[str, str] = {}
        for item in tensor.external_data:
            if item.key not in _KEYS:
                raise PolicyError(f"tensor {name!r}: unknown external_data key {item.key[:40]!r}")
            if item.key in entries:
                raise PolicyError(f"tensor {name!r}: external_data key {item.key!r} given twice")
            entries[item.key] = item.value
        location = entries.get("location")
        if not location:
            raise PolicyError(f"tensor {name!r}: external data without a location")
        path = resolve_location(location, self.model_path)
        entry = self.files.get(path)
        if entry is None:
            raise PolicyError(f"tensor {name!r}: external data {location[:120]!r} is not a file of this release")
        offset = _number(entries.get("offset", "0"), name, "offset")
        itemsize = _ITEMSIZE.get(tensor.data_type)
        if itemsize is None or any(d < 0 for d in tensor.dims):
            raise PolicyError(f"tensor {name!r}: external data of type {tensor.data_type} cannot be length-checked")
        needed = prod(tensor.dims) * itemsize
        length = _number(entries["length"], name, "length") if "length" in entries else entry.size - offset
        if offset > entry.size or offset + length > entry.size:
            raise PolicyError(f"tensor {name!r}: bytes {offset}..{offset + length} are past the end of {path} "
                              f"({entry.size} bytes)")
        if length != needed:
            raise PolicyError(f"tensor {name!r}: external data is {length} bytes, shape {list(tensor.dims)} of type "
                              f"{tensor.data_type} needs {needed}")
        return ExternalRef(name, location, path, offset, length)


def resolve_location(location: str, model_path: str) -> str:
    """The tree path an external-data location names, relative to the model's directory; or PolicyError."""
    shown = location[:120]
    if (location.startswith(("/", "\\")) or "\\" in location or re.match(r"^[A-Za-z]:", location)
            or any(ord(ch) < 0x20 for ch in location)):
        raise PolicyError(f"external data location {shown!r} is absolute or not a plain relative path")
    parts = location.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise PolicyError(f"external data location {shown!r} has an empty, '.' or '..' component")
    base = posixpath.dirname(model_path)
    return posixpath.join(base, location) if base else location


def _number(text: str, tensor: str, what: str) -> int:
    if not _DECIMAL.match(text or ""):
        raise PolicyError(f"tensor {tensor!r}: external data {what} {text[:30]!r} is not a decimal integer")
    return int(text)
