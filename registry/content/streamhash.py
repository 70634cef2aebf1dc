"""SHA-256 of a stream on a worker thread, so fetching and verifying blocks overlaps with hashing.

``hashlib`` releases the GIL while it hashes a large buffer, so a second thread that hashes what the
first one already fetched (and verified) uses the second core. Pieces are handed over in order
through a bounded queue (a few MiB at most in flight); they must not change after ``update``
(blocks are immutable ``bytes``).

A ``keep`` callable (e.g. a write into a staging file) also runs on the worker, after each piece is
hashed, so the copy to disk does not stall the thread that fetches and verifies. Its first failure
(a full disk) is raised by the next ``update``, ``digest`` or ``reset``; later pieces are dropped.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from typing import Any, Callable

_IN_FLIGHT = 32  # pieces queued at most (blocks are at most a few MiB)

Keep = Callable[[memoryview], None]


class BackgroundSha256:
    def __init__(self, keep: Keep | None = None) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=_IN_FLIGHT)
        self._thread = threading.Thread(target=self._run, name="sha256", daemon=True)
        self._sha = hashlib.sha256()
        self._keep = keep
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
            if self._error is not None:
                continue
            try:
                self._sha.update(item)
                if self._keep is not None:
                    self._keep(memoryview(item))
            except BaseException as exc:  # the keeper's OSError/InputError, reported to the caller
                self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def update(self, piece: Any) -> None:
        self._raise()
        self._queue.put(piece)

    def _drain(self) -> None:
        done = threading.Event()
        self._queue.put(done)
        done.wait()
        self._raise()

    def digest(self) -> bytes:
        self._drain()
        return self._sha.digest()

    def reset(self, keep: Keep | None = None) -> None:
        """Starts a new digest (after the pending pieces are done), with a new ``keep``."""
        self._drain()
        self._sha = hashlib.sha256()
        self._keep = keep

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def __enter__(self) -> "BackgroundSha256":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
