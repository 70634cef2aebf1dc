"""Building an onnxruntime session from a verified artifact, and from nothing else.

* A single file: the private copy written while it was hashed, in a fresh 0700 directory that
  holds nothing else (``registry.runtime.session_from_private_dir``): a model given as bytes would
  resolve any external reference against the current directory, and holding the model in memory
  beside the runtime's own copy would double the peak memory.
* A tree was copied to a private 0700 directory while it was hashed: onnxruntime opens the entry
  model there and maps its external data from that copy, which only this process wrote; the
  directory is removed right after the session is built. Mapping matters: onnxruntime copies
  in-memory initializers, so a tree handed over in memory costs twice its size, while mapped
  weights cost only the pages the runtime touches (measured: 826 MB against 59 MB for 256 MiB).
  (A tree some caller kept in memory goes through ``registry.runtime.session_from_tree``.)

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
    providers = providers or ["CPUExecutionProvider"]
    try:
        if artifact.tree is None:
            assert artifact.data is not None
            if artifact.staged is not None and artifact.staged_name is not None:
                from registry.runtime import session_from_private_dir

                artifact.data = None  # the map the ONNX check read; the runtime reads the file itself
                return session_from_private_dir(artifact.staged.path, artifact.staged_name, session_options,
                                                providers)
            from registry.runtime import session_from_bytes

            return session_from_bytes(artifact.data, session_options, providers)
        return _tree_session(artifact, session_options, providers)
    except PolicyError:
        raise
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise PolicyError(f"onnxruntime refused the verified model: {str(exc).splitlines()[0][:300]}") from exc


def _tree_session(artifact: "ArtifactBytes", session_options: Any, providers: list[Any]) -> Any:
    from registry.content.sinks import DiskSink, MemorySink
    from registry.verify.tree import entry_model, external_files

    tree = artifact.tree
    assert tree is not None
    entry = entry_model(tree.files)
    if isinstance(tree.sink, DiskSink):
        from registry.runtime import session_from_private_dir

        # the private copy written while hashing holds the verified files and nothing else
        return session_from_private_dir(tree.sink.path, entry, session_options, providers)
    assert isinstance(tree.sink, MemorySink)
    from registry.runtime import session_from_tree

    files = tree.sink.files
    needed = {entry: files[entry]}
    needed.update({path: files[path] for path in external_files(tree, entry).values()})
    return session_from_tree(needed, entry, session_options, providers)
