"""Input sources and fixed-point scaling: garbage must become a clear InputError, outages UnreachableError."""

from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from registry.errors import InputError, UnreachableError
from registry.oracle.feed import from_fixed, to_fixed
from registry.oracle.inputs import FileSource, HttpSource, open_source, parse_values


def test_json_shapes_are_accepted(tmp_path: Path) -> None:
    for doc in ([1, 2, 3, 4], {"values": [1, 2, 3, 4]}, {"inputs": [[1, 2, 3, 4]]}, {"window": [1.0, 2, 3, 4]}):
        path = tmp_path / "in.json"
        path.write_text(json.dumps(doc))
        assert FileSource(path).read(3).tolist() == [2.0, 3.0, 4.0]


def test_csv_with_and_without_header(tmp_path: Path) -> None:
    plain = tmp_path / "plain.csv"
    plain.write_text("1.5\n2.5\n\n3.5\n")
    assert FileSource(plain).read(2).tolist() == [2.5, 3.5]
    named = tmp_path / "named.csv"
    named.write_text("date,value,other\n2001-01-01,10,x\n2001-01-08,11,y\n")
    assert FileSource(named).read(2).tolist() == [10.0, 11.0]
    last = tmp_path / "last.csv"
    last.write_text("date,co2\n2001-01-01,370.1\n2001-01-08,370.4\n")
    assert np.allclose(FileSource(last).read(2), [370.1, 370.4])


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"values": [1, "2", 3]}', "not a number"),
        ('{"values": [1, true, 3]}', "not a number"),
        ('{"values": [1, null, 3]}', "not a number"),
        ('{"values": [1, Infinity, 3]}', "not finite"),
        ('{"values": [1, 2]}', "the model needs 3"),
        ('{"values": {"a": 1}}', "expected a list"),
        ('{"v": [1, 2, 3]}', "none of the keys"),
        ('[1, 2, 3', "malformed JSON"),
        ("", "CSV is empty"),
        ("a\nb\nc\n", "not a number"),
        ("1\nnan\n3\n", "not finite"),
        ("1,2\n3\n4,5\n", "not a number"),
    ],
)
def test_garbage_is_an_input_error_with_a_reason(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / ("in.json" if text.startswith(("{", "[")) else "in.csv")
    path.write_text(text)
    with pytest.raises(InputError, match=reason):
        FileSource(path).read(3)


def test_binary_and_missing_files(tmp_path: Path) -> None:
    path = tmp_path / "in.json"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(InputError, match="UTF-8"):
        FileSource(path).read(3)
    with pytest.raises(UnreachableError, match="does not exist"):
        FileSource(tmp_path / "missing.json").read(3)


class _Endpoint:
    def __init__(self) -> None:
        self.status = 200
        self.body = b"[1, 2, 3]"


@pytest.fixture
def endpoint() -> Iterator[tuple[str, _Endpoint]]:
    state = _Endpoint()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            self.send_response(state.status)
            self.send_header("Content-Length", str(len(state.body)))
            self.end_headers()
            self.wfile.write(state.body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/series", state
    finally:
        server.shutdown()
        server.server_close()


def test_http_source(endpoint: tuple[str, _Endpoint]) -> None:
    url, state = endpoint
    source = open_source(url)
    assert isinstance(source, HttpSource)
    assert source.read(2).tolist() == [2.0, 3.0]
    state.body = b"<html>oops</html>"
    with pytest.raises(InputError, match="malformed JSON"):
        source.read(2)
    state.body = b'{"values": ["x"]}'
    with pytest.raises(InputError, match="not a number"):
        source.read(1)
    state.status, state.body = 503, b"busy"
    with pytest.raises(UnreachableError, match="503"):
        source.read(1)
    state.status = 404
    with pytest.raises(InputError, match="404"):
        source.read(1)


def test_http_source_down() -> None:
    import socket

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with pytest.raises(UnreachableError, match="did not answer"):
        HttpSource(f"http://127.0.0.1:{port}/", timeout_s=1.0).read(1)


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=-1e12, max_value=1e12, allow_nan=False), st.integers(min_value=0, max_value=18))
def test_fixed_point_round_trips_within_half_a_unit(value: float, decimals: int) -> None:
    answer = to_fixed(value, decimals)
    assert isinstance(answer, int)
    assert abs(from_fixed(answer, decimals) - value) <= 0.5 * 10**-decimals + abs(value) * 1e-15


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, "1.0", None, True])
def test_fixed_point_refuses_non_numbers(bad: object) -> None:
    with pytest.raises(InputError):
        to_fixed(bad, 8)  # type: ignore[arg-type]


def test_fixed_point_refuses_int256_overflow() -> None:
    with pytest.raises(InputError, match="int256"):
        to_fixed(1e300, 36)


def test_parse_values_accepts_ints_and_floats() -> None:
    assert parse_values([1, 2.5, -3], "x") == [1.0, 2.5, -3.0]
