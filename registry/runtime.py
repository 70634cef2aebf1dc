"""Building an onnxruntime session from verified bytes, with nothing else for it to read.

onnxruntime resolves a tensor's external data relative to the model's directory, and for a model
given as bytes relative to the *current directory*: a ``Constant`` whose ``sparse_value`` named
``.env`` once made a verified model read the file beside a node and post its bytes on chain. The
ONNX check refuses external data anywhere in the model (``registry.onnx_checks``); this module is
the second line: whatever runs a verified model loads it from a fresh, private (0700) directory
that holds nothing but the verified file(s), so a reference that slipped through can only name
bytes that were verified. The directory is removed as soon as the session is built (onnxruntime
reads everything at start-up).

Everything that builds a session for a verified model calls ``session_from_bytes`` (one file) or
``session_from_tree`` (a model with its external-data files, all verified): ``load_verified``, the
oracle node, and the directory loader. ``load_verified`` of a single file writes the verified bytes
into such a directory while it hashes them and hands that file over (``session_from_private_dir``),
so no in-memory copy of the model is held beside the runtime's own.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from registry.errors import InputError, PolicyError

if TYPE_CHECKING:
    import onnxruntime

MODEL_FILE = "model.onnx"
DEFAULT_PROVIDERS = ("CPUExecutionProvider",)


def session_from_bytes(data: bytes | bytearray | memoryview, options: "onnxruntime.SessionOptions | None" = None,
                       providers: Sequence[Any] | None = None) -> "onnxruntime.InferenceSession":
    """An InferenceSession for one verified model file, loaded from an empty private directory."""
    return session_from_tree({MODEL_FILE: data}, MODEL_FILE, options, providers)


def session_from_tree(files: Mapping[str, bytes | bytearray | memoryview], model: str,
                      options: "onnxruntime.SessionOptions | None" = None,
                      providers: Sequence[Any] | None = None) -> "onnxruntime.InferenceSession":
    """An InferenceSession for ``model`` among ``files`` (relative POSIX path -> verified bytes).

    The files are written, and only they, into a fresh 0700 directory; paths that are absolute,
    contain ``..`` or empty parts are refused. ``PolicyError`` when onnxruntime refuses the model.
    """
    if model not in files:
        raise InputError(f"{model!r} is not among the files to load")
    with tempfile.TemporaryDirectory(prefix="registry-ort-") as directory:
        root = Path(directory)
        os.chmod(root, 0o700)
        for name, data in files.items():
            _write_private(root, _safe_relative(name), data)
        return session_from_private_dir(root, model, options, providers)


def session_from_private_dir(root: Path, model: str, options: "onnxruntime.SessionOptions | None" = None,
                             providers: Sequence[Any] | None = None) -> "onnxruntime.InferenceSession":
    """An InferenceSession for ``root/model``, where ``root`` is a 0700 directory this process created
    and filled with verified files only (the caller removes it afterwards)."""
    import onnxruntime

    try:
        return onnxruntime.InferenceSession(str(root / _safe_relative(model)), sess_options=options,
                                            providers=list(providers or DEFAULT_PROVIDERS))
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        first = first.replace(str(root), "<model dir>")
        raise PolicyError(f"onnxruntime refused the verified model: {first[:300]}") from exc


def _safe_relative(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if not name or path.is_absolute() or any(part in ("", ".", "..") for part in name.split("/")) or "\\" in name:
        raise InputError(f"file name {name[:100]!r} is not a plain relative path")
    return path


def _write_private(root: Path, relative: PurePosixPath, data: bytes | bytearray | memoryview) -> None:
    target = root.joinpath(*relative.parts)
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(target, flags, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
