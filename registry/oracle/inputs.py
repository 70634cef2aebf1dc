"""Where an oracle node reads the model's input from, and the checks that make garbage a skip.

A source yields the newest ``n`` numbers of a series: a CSV file (one numeric column, or the
column named ``value``, or the last column), a JSON file, or an HTTP endpoint returning JSON
(a list of numbers, or an object with ``values``/``inputs``/``window``). Anything else — text
where numbers should be, NaN, infinities, too few values, a 500, a timeout — raises InputError or
UnreachableError with one line saying why, so the node skips that round and logs the reason
instead of posting a prediction made from garbage.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from registry.errors import InputError, UnreachableError
from registry.strictjson import parse_json_strict, read_capped

JSON_KEYS = ("values", "inputs", "window")
MAX_BYTES = 8 * 1024 * 1024


class InputSource(Protocol):
    description: str

    def read(self, n: int) -> np.ndarray:
        """The newest ``n`` values, oldest first, as float32; InputError/UnreachableError otherwise."""


def parse_values(data: Any, where: str) -> list[float]:
    """Numbers out of a decoded JSON document; InputError for anything that is not plain numbers."""
    if isinstance(data, dict):
        for key in JSON_KEYS:
            if key in data:
                data = data[key]
                break
        else:
            raise InputError(f"{where}: JSON object has none of the keys {', '.join(JSON_KEYS)}")
    if isinstance(data, list) and len(data) == 1 and isinstance(data[0], list):
        data = data[0]  # [[...]]: one batch row
    if not isinstance(data, list):
        raise InputError(f"{where}: expected a list of numbers, got {type(data).__name__}")
    values: list[float] = []
    for i, item in enumerate(data):
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            raise InputError(f"{where}: item {i} is {item!r}, not a number")
        if not math.isfinite(item):
            raise InputError(f"{where}: item {i} is not finite ({item})")
        values.append(float(item))
    return values


def _parse_csv(text: str, where: str) -> list[float]:
    try:
        rows = [row for row in csv.reader(io.StringIO(text)) if row and any(cell.strip() for cell in row)]
    except csv.Error as exc:  # a field over csv's limit, a NUL byte, ...
        raise InputError(f"{where}: not CSV ({exc})") from exc
    if not rows:
        raise InputError(f"{where}: CSV is empty")
    header = [cell.strip().lower() for cell in rows[0]]
    column = len(header) - 1
    has_header = False
    try:
        float(rows[0][column])
    except ValueError:
        has_header = True
        column = header.index("value") if "value" in header else column
    values: list[float] = []
    for line, row in enumerate(rows[1:] if has_header else rows, start=2 if has_header else 1):
        try:
            value = float(row[column])
        except (ValueError, IndexError) as exc:
            raise InputError(f"{where}: line {line}: not a number in column {column + 1}") from exc
        if not math.isfinite(value):
            raise InputError(f"{where}: line {line}: not finite ({value})")
        values.append(value)
    return values


def _tail(values: list[float], n: int, where: str) -> np.ndarray:
    if len(values) < n:
        raise InputError(f"{where}: {len(values)} values, the model needs {n}")
    return np.asarray(values[-n:], dtype=np.float32)


@dataclass(frozen=True)
class FileSource:
    """A CSV or JSON file, re-read every round (another process may append to it)."""

    path: Path

    @property
    def description(self) -> str:
        return str(self.path)

    def read(self, n: int) -> np.ndarray:
        from registry.fsutil import read_small_file

        if not self.path.exists():
            raise UnreachableError(f"input file {self.path} does not exist")
        # a regular file only: a FIFO would block the node, /dev/zero would fill its memory
        raw = read_small_file(self.path, limit=MAX_BYTES, what="input file")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"{self.path}: not UTF-8 text") from exc
        where = str(self.path)
        if self.path.suffix.lower() == ".json" or text.lstrip()[:1] in ("[", "{"):
            return _tail(parse_values(parse_json_strict(raw, what=where, limit=MAX_BYTES), where), n, where)
        return _tail(_parse_csv(text, where), n, where)


@dataclass(frozen=True)
class HttpSource:
    """An HTTP(S) endpoint answering GET with JSON."""

    url: str
    timeout_s: float = 5.0

    @property
    def description(self) -> str:
        return self.url

    def read(self, n: int) -> np.ndarray:
        import httpx

        try:
            with httpx.stream("GET", self.url, timeout=self.timeout_s, follow_redirects=False) as response:
                if response.status_code >= 500 or response.status_code == 429:
                    raise UnreachableError(f"input endpoint {self.url} answered HTTP {response.status_code}")
                if response.status_code != 200:
                    raise InputError(f"input endpoint {self.url} answered HTTP {response.status_code}")
                # bounded in size and in total time: a trickling server cannot hold the round
                body = read_capped(response.iter_bytes(), limit=MAX_BYTES, what=f"answer of {self.url}",
                                   deadline_s=self.timeout_s * 2, error=InputError, timeout_error=UnreachableError)
        except httpx.HTTPError as exc:
            raise UnreachableError(f"input endpoint {self.url} did not answer ({type(exc).__name__})") from exc
        data = parse_json_strict(body, what=f"answer of {self.url}", limit=MAX_BYTES)
        return _tail(parse_values(data, self.url), n, self.url)


def open_source(spec: str) -> InputSource:
    """``http(s)://...`` is an endpoint; anything else a file path."""
    if spec.startswith(("http://", "https://")):
        return HttpSource(spec)
    if not spec:
        raise InputError("empty --input")
    return FileSource(Path(spec).expanduser())
