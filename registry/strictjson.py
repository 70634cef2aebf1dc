"""Strict JSON for every byte that comes from outside: files, RPC nodes, stores, HTTP clients.

Every JSON document the registry reads from a place it does not control goes through
``parse_json_strict``; every network body it reads goes through ``read_capped`` first. The rules:

- **size**: the bytes are refused above ``limit`` before they are decoded;
- **depth**: nesting deeper than ``max_depth`` is refused by a linear pre-scan, *before* the C
  parser sees it. CPython's C scanner recurses on the C stack and is bounded only by the
  interpreter's recursion limit, which py_ecc raises to 100000 on import (see
  ``registry.recursion``): without the pre-scan a hostile ``[[[[...`` is a segfault, not an error;
- **meaning**: UTF-8 only, no NaN/Infinity, no numbers that overflow a float, no duplicate keys
  (two readers could pick different values), no lone UTF-16 surrogates (they cannot be encoded
  again, so they would fail later, far from the input).

Failures raise the ``error`` class given (``InputError`` by default) with one line that names
``what`` was being read. Other areas call these directly; the hostile-input suite
(``tests/test_hostile_*.py``) runs every caller against the same cases.
"""

from __future__ import annotations

import json
import math
import re
import time
from typing import Any, Iterable

from registry.errors import InputError, RegistryError

# Nesting deeper than this is refused before parsing; real documents here are < 10 levels deep.
MAX_DEPTH = 64
# The default size limit: documents here (manifests, provenance, RPC answers) are KiB, not MiB.
MAX_DOCUMENT_BYTES = 4 * 1024 * 1024
# One token of the depth pre-scan: a string (closing quote optional, so an unterminated string
# is consumed once instead of being re-scanned from every later quote: linear, never quadratic),
# or a bracket. Brackets inside strings are skipped with their string.
_STRUCTURE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[\]{}]', re.DOTALL)


def nesting_depth(text: str, stop_above: int | None = None) -> int:
    """The deepest bracket nesting of ``text`` outside strings (stops early above ``stop_above``)."""
    depth = deepest = 0
    for match in _STRUCTURE.finditer(text):
        token = match.group()
        if token == "[" or token == "{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if stop_above is not None and deepest > stop_above:
                    return deepest
        elif token == "]" or token == "}":
            depth -= 1
    return deepest


def parse_json_strict(
    data: bytes | bytearray | memoryview | str,
    *,
    what: str,
    limit: int = MAX_DOCUMENT_BYTES,
    max_depth: int = MAX_DEPTH,
    error: type[RegistryError] = InputError,
) -> Any:
    """JSON that a careful reader accepts (see the module docstring); ``error`` otherwise."""
    if isinstance(data, str):
        if len(data) > limit:
            raise error(f"{what} is larger than {limit} bytes")
        text = data
    else:
        if len(data) > limit:
            raise error(f"{what} is larger than {limit} bytes")
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise error(f"{what} is not UTF-8: {exc.reason} at byte {exc.start}") from exc
    if nesting_depth(text, stop_above=max_depth) > max_depth:
        raise error(f"{what} is nested deeper than {max_depth} levels")
    try:
        value = json.loads(text, parse_constant=_no_constants, object_pairs_hook=_no_duplicates,
                           parse_float=_finite_float)
    except RecursionError as exc:  # pragma: no cover - the pre-scan bounds the depth first
        raise error(f"{what} is nested too deeply") from exc
    except ValueError as exc:  # JSONDecodeError is a ValueError; so are the hooks' refusals
        raise error(f"{what} is malformed JSON: {str(exc)[:200]}") from exc
    if not _encodable(value):
        raise error(f"{what} holds a lone UTF-16 surrogate (\\ud800-\\udfff), which is not text")
    return value


def read_capped(chunks: Iterable[bytes], *, limit: int, what: str, deadline_s: float | None = None,
                error: type[RegistryError] = InputError,
                timeout_error: type[RegistryError] | None = None) -> bytes:
    """At most ``limit`` bytes from a stream of chunks (e.g. ``response.iter_content(65536)``).

    A body above ``limit`` is refused as soon as the first byte past it arrives, so a hostile
    server cannot make us buffer more. With ``deadline_s`` the whole body must arrive within that
    many seconds: a per-read socket timeout alone lets a server trickle one byte at a time forever.
    """
    started = time.monotonic()
    parts: list[bytes] = []
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise error(f"{what} is larger than {limit} bytes")
        parts.append(chunk)
        if deadline_s is not None and time.monotonic() - started > deadline_s:
            raise (timeout_error or error)(f"{what} did not arrive within {deadline_s:g} s")
    return b"".join(parts)


def _no_constants(name: str) -> Any:
    raise ValueError(f"number {name} is not finite (NaN and Infinity are not JSON)")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key[:80]!r}")
        out[key] = value
    return out


def _finite_float(text_value: str) -> float:
    value = float(text_value)
    if not math.isfinite(value):
        raise ValueError(f"number {text_value[:32]} overflows")
    return value


def _encodable(value: Any) -> bool:
    """No lone surrogates anywhere (the depth is already bounded, so recursion is safe)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(_encodable(k) and _encodable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_encodable(v) for v in value)
    return True
