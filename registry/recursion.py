"""Keep Python's recursion limit sane, whatever our dependencies do on import.

``py_ecc`` (imported by eth-keyfile, so by eth-account, so by every signing or chain command) runs
``sys.setrecursionlimit(100000)`` when it is imported. The limit is also what bounds recursion in C
code: the JSON scanner, ``repr`` of nested lists, the JSON encoder. With 100000 a hostile
``[[[[...`` answer from an RPC node recurses until the C stack overflows and the process dies with
SIGSEGV instead of raising RecursionError.

``install()`` (called once from ``registry/__init__.py``, so before any registry code can import
py_ecc) puts a meta-path hook in front of py_ecc's import that restores the limit it found as soon
as py_ecc's module body has run. If py_ecc was imported before registry, the raised limit is
lowered back to ``SANE_RECURSION_LIMIT`` at once. Strict parsing with a depth limit
(``registry.strictjson``) is the second line of defence, not a replacement.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from types import ModuleType
from typing import Any, Sequence

# CPython's default, known safe for the C stack of the main thread and of worker threads.
SANE_RECURSION_LIMIT = 1000
# What py_ecc sets; a limit at or above it was not chosen by the application.
PY_ECC_LIMIT = 100_000
_WATCHED = frozenset({"py_ecc"})


class _RestoringLoader(importlib.abc.Loader):
    """Runs the real loader, then puts back the recursion limit the module body raised."""

    def __init__(self, inner: importlib.abc.Loader) -> None:
        self._inner = inner

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        before = sys.getrecursionlimit()
        try:
            self._inner.exec_module(module)
        finally:
            if sys.getrecursionlimit() > before:
                sys.setrecursionlimit(before)

    def __getattr__(self, name: str) -> Any:  # resource readers and the like
        return getattr(self._inner, name)


class _Guard(importlib.abc.MetaPathFinder):
    """Finds watched modules with the other finders and wraps their loader."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in _WATCHED:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _RestoringLoader(spec.loader)  # type: ignore[arg-type]
                return spec
        return None


def install() -> None:
    """Idempotent: guards future imports and repairs a limit raised by an earlier one."""
    if not any(isinstance(finder, _Guard) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Guard())
    if any(name in sys.modules for name in _WATCHED) and sys.getrecursionlimit() >= PY_ECC_LIMIT:
        sys.setrecursionlimit(SANE_RECURSION_LIMIT)
