"""SHA-256 of a stream on a worker thread, so fetching and verifying blocks overlaps with hashing.

``hashlib`` releases the GIL while it hashes a large buffer, so a second thread that hashes what the
first one already fetched (and verified) uses the second core. Pieces are handed over in order
through a bounded queue (a few MiB at most in flight); they must not change after ``update``
(blocks are immutable ``bytes``).
"""

from __future__ import annotations

import hashlib
import queue
import threading
from typing import Any

_IN_FLIGHT = 32  # pieces queued at most (blocks are at most a few MiB)


class BackgroundSha256:
    def __init__(self) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=_IN_FLIGHT)
        self._thread = threading.Thread(target=self._run, name="sha256", daemon=True)
        self._sha = hashlib.sha256()
        self._error: BaseException | None = None
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if isinstance(item, threading.Event):
                item.set()
                continue
            try:
                self._sha.update(item)
            except BaseException as exc:  # pragma: no cover - hashlib does not fail on bytes
                self._error = exc

    def update(self, piece: Any) -> None:
        self._queue.put(piece)

    def _drain(self) -> None:
        done = threading.Event()
        self._queue.put(done)
        done.wait()
        if self._error is not None:
            raise self._error

    def digest(self) -> bytes:
        self._drain()
        return self._sha.digest()

    def reset(self) -> None:
        self._drain()
        self._sha = hashlib.sha256()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def __enter__(self) -> "BackgroundSha256":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
