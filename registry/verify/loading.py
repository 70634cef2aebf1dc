"""Building an onnxruntime session from a verified artifact, and from nothing else.

* A single file: from the verified in-memory buffer (``InferenceSession(bytes)``).
* A tree held in memory (under 2 GiB): the entry model from its verified bytes, and each external
  data file it names handed to onnxruntime as an in-memory file
  (``add_external_initializers_from_files_in_memory``); no directory is readable by the runtime.
* A larger tree was copied to a private 0700 directory while it was hashed: the entry model is
  parsed from its verified bytes and onnxruntime maps the external data from that copy
  (``session.model_external_initializers_file_folder_path``), which only this process wrote; the
  directory is removed right after the session is built. Mapping matters: onnxruntime copies
  in-memory initializers, so a tree handed over in memory costs twice its size, while mapped
  weights cost only the pages the runtime touches (measured: 826 MB against 59 MB for 256 MiB).

Either way the runtime never opens the user's path, so swapping files there after the check has
no effect.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from registry.errors import PolicyError

if TYPE_CHECKING:
    import onnxruntime

    from registry.verify.artifact import ArtifactBytes


def session_from_artifact(artifact: "ArtifactBytes", session_options: Any = None,
                          providers: list[Any] | None = None) -> "onnxruntime.InferenceSession":
    import onnxruntime

    providers = providers or ["CPUExecutionProvider"]
    try:
        if artifact.tree is None:
            assert artifact.data is not None
            # bytes() copies the private, already-verified buffer; nothing is read from disk again.
            return onnxruntime.InferenceSession(bytes(artifact.data), sess_options=session_options,
                                                providers=providers)
        return _tree_session(artifact, session_options, providers)
    except PolicyError:
        raise
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise PolicyError(f"onnxruntime refused the verified model: {str(exc).splitlines()[0][:300]}") from exc


def _tree_session(artifact: "ArtifactBytes", session_options: Any, providers: list[Any]) -> Any:
    import onnxruntime

    from registry.content.sinks import DiskSink, MemorySink
    from registry.verify.tree import entry_model, external_files

    tree = artifact.tree
    assert tree is not None
    entry = entry_model(tree.files)
    options = session_options or onnxruntime.SessionOptions()
    if isinstance(tree.sink, DiskSink):
        import posixpath

        model = bytes(tree.sink.read(entry))
        folder = tree.sink.path / posixpath.dirname(entry)
        options.add_session_config_entry("session.model_external_initializers_file_folder_path", str(folder))
        return onnxruntime.InferenceSession(model, sess_options=options, providers=providers)
    assert isinstance(tree.sink, MemorySink)
    files = tree.sink.files
    names, buffers, lengths = [], [], []
    for location, path in external_files(tree, entry).items():
        names.append(location)
        buffers.append(files[path])
        lengths.append(len(files[path]))
    if names:
        options.add_external_initializers_from_files_in_memory(names, buffers, lengths)
    return onnxruntime.InferenceSession(bytes(files[entry]), sess_options=options, providers=providers)
