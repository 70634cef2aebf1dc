"""Start-up of an oracle node with the RPC down: wait and retry, then serve; wrong config fails fast.

The outage is real (a TCP proxy in front of anvil that refuses connections, then forwards), and so
are the wrong configurations (another chain id, an address without code, a URL that answers 404).
"""

from __future__ import annotations

import dataclasses
import http.server
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from registry.errors import ChainError, UnreachableError
from registry.oracle.startup import Backoff, connect_clients, retry_until_reachable
from tests._oracle_fixtures import (
    NAME,
    TcpProxy,
    deploy_feed,
    onnx_models,  # noqa: F401 - fixture
    publish,
    series,
    wait_for,
    write_series,
)

FAST = Backoff(0.05, 0.2)


def settings_for(deployed: Any, **profile: Any) -> Any:
    """The test profile with some fields replaced; retries=0 so one attempt costs one request."""
    settings = deployed.settings()
    return dataclasses.replace(settings, profile=dataclasses.replace(settings.profile, **{"retries": 0, **profile}))


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [e["event"] for e in events]


@pytest.fixture
def proxy(deployed: Any) -> Iterator[TcpProxy]:
    """A proxy to anvil that starts DOWN (connection refused)."""
    proxy = TcpProxy(deployed.rpc_url)
    proxy.down()
    try:
        yield proxy
    finally:
        proxy.down()


class Connecting:
    """``connect_clients`` in a thread, so the test can watch it wait and then bring the RPC up."""

    def __init__(self, settings: Any, feed: str, backoff: Backoff = FAST) -> None:
        self.events: list[dict[str, Any]] = []
        self.stop = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(settings, feed, backoff), daemon=True)
        self.thread.start()

    def _run(self, settings: Any, feed: str, backoff: Backoff) -> None:
        try:
            self.result = connect_clients(settings, feed, self.stop, self.events.append, backoff)
        except Exception as exc:  # handed to the test thread
            self.error = exc

    def join(self, timeout: float = 10.0) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "connect_clients did not return"


def test_backoff_doubles_from_half_a_second_and_is_capped_by_the_poll_interval() -> None:
    first = Backoff.for_poll(5.0).delays()
    assert [next(first) for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    slow_poll = Backoff.for_poll(600.0).delays()
    assert [next(slow_poll) for _ in range(8)][-2:] == [30.0, 30.0]
    fast_poll = Backoff.for_poll(0.1).delays()  # never below the first delay: no busy loop
    assert [next(fast_poll) for _ in range(3)] == [0.5, 0.5, 0.5]


def test_rpc_down_at_start_is_waited_for_then_the_node_verifies_and_submits(
    deployed: Any, onnx_models: dict[int, Path], proxy: TcpProxy, tmp_path: Path
) -> None:
    from registry.oracle.inputs import FileSource
    from registry.oracle.node import NodeConfig, OracleNode

    v1 = publish(deployed, onnx_models[1], "1.0.0")
    node_account = deployed.accounts[1]
    feed = deploy_feed(deployed, [node_account], quorum=1, approve=v1.id)
    inputs = write_series(tmp_path / "inputs.json", series())

    connecting = Connecting(settings_for(deployed, rpc_url=proxy.url), feed.address)
    wait_for(lambda: kinds(connecting.events).count("rpc-unreachable") >= 4, timeout=10, what="retries")
    assert connecting.thread.is_alive() and connecting.error is None  # waiting, not exiting
    unreachable = [e for e in connecting.events if e["event"] == "rpc-unreachable"]
    assert all(e["level"] == "warning" for e in unreachable)
    assert [e["retry_in_s"] for e in unreachable[:4]] == [0.05, 0.1, 0.2, 0.2]  # doubling, capped
    assert [e["attempt"] for e in unreachable[:4]] == [1, 2, 3, 4]
    assert proxy.url in unreachable[0]["message"]

    proxy.up()
    connecting.join()
    assert connecting.error is None, connecting.error
    registry, feed_client = connecting.result
    assert registry.rpc_url == proxy.url and feed_client.address == feed.address
    assert kinds(connecting.events)[-1] == "rpc-reachable"

    events: list[dict[str, Any]] = []
    node = OracleNode(NodeConfig(model=NAME, interval_s=0.2, poll_s=0.1, max_backoff_s=0.5, state_dir=tmp_path / "st"),
                      registry, feed_client, node_account, FileSource(inputs), settings=deployed.settings(),
                      on_event=events.append)
    stop = threading.Event()
    runner = threading.Thread(target=node.run, args=(stop,), kwargs={"rounds": 1}, daemon=True)
    runner.start()
    runner.join(20)
    stop.set()
    assert not runner.is_alive(), f"no round submitted: {kinds(events)}"
    assert "swapped" in kinds(events) and "submitted" in kinds(events)
    latest = feed.latest()
    assert latest is not None and latest.round_id == 1 and latest.release_id == v1.id


def test_stop_while_waiting_ends_with_one_clear_unreachable_error(deployed: Any, proxy: TcpProxy) -> None:
    connecting = Connecting(settings_for(deployed, rpc_url=proxy.url), deployed.address, Backoff(5.0, 5.0))
    wait_for(lambda: "rpc-unreachable" in kinds(connecting.events), timeout=10, what="first retry")
    started = time.monotonic()
    connecting.stop.set()  # mid-delay: the wait ends at once, not after 5 s
    connecting.join(timeout=3)
    assert time.monotonic() - started < 2.0
    assert isinstance(connecting.error, UnreachableError)
    assert "stopped before" in str(connecting.error) and "\n" not in str(connecting.error)


@pytest.mark.parametrize("case", ["wrong-chain", "no-registry", "no-feed"])
def test_wrong_configuration_fails_fast_without_retrying(deployed: Any, case: str) -> None:
    feed = deploy_feed(deployed, [deployed.accounts[1]])
    nowhere = "0x" + "11" * 20
    settings = {
        "wrong-chain": settings_for(deployed, chain_id=1),
        "no-registry": settings_for(deployed, contract=nowhere),
        "no-feed": settings_for(deployed),
    }[case]
    events: list[dict[str, Any]] = []
    started = time.monotonic()
    with pytest.raises(ChainError) as caught:
        connect_clients(settings, nowhere if case == "no-feed" else feed.address, threading.Event(), events.append,
                        FAST)
    assert time.monotonic() - started < 5.0
    assert events == []  # not reported as an outage, not retried
    expected = "wrong chain" if case == "wrong-chain" else "no contract"
    assert expected in str(caught.value)


class _NotFound(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_an_rpc_url_that_answers_404_fails_fast(deployed: Any) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotFound)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/wrong/path"
        events: list[dict[str, Any]] = []
        stop = threading.Event()

        def on_event(event: dict[str, Any]) -> None:
            events.append(event)
            stop.set()  # a retry would be the bug: end it instead of waiting forever

        with pytest.raises(UnreachableError, match="refused the request"):
            connect_clients(settings_for(deployed, rpc_url=url), deployed.address, stop, on_event, FAST)
        assert events == []
    finally:
        server.shutdown()
        server.server_close()


def test_errors_other_than_outages_propagate_from_the_first_attempt() -> None:
    calls: list[int] = []

    def attempt() -> None:
        calls.append(1)
        raise ChainError("no contract at 0x11")

    with pytest.raises(ChainError):
        retry_until_reachable(attempt, threading.Event(), None, FAST)
    assert calls == [1]
