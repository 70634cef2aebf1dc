"""Latency of every variant, interleaved round-robin, at the user's batch and sequence sizes.

Timing one model after another on a shared machine measures the machine as much as the model: two
identical FP32 models timed back to back differed by 36%. So every variant gets its own session,
all are warmed up, and then each round times every variant once in turn (a few runs each); load
that comes and goes hits all of them alike, and the reported ratio to the baseline is what matters.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

from registry.compress.signature import TensorSpec, shaped


def interleaved(models: dict[str, bytes], feeds: dict[str, np.ndarray], inputs: tuple[TensorSpec, ...],
                batches: tuple[int, ...], sequence: int | None, threads: int = 1, warmup: int = 5, rounds: int = 10,
                runs: int = 3, progress: Callable[[int], None] | None = None) -> dict[str, dict[str, Any]]:
    """``{variant: {"batch{b}": {"p50_ms", "p95_ms", "runs"}, ...}}`` plus the settings under ``"settings"``."""
    from registry.compress.evaluate import session

    sessions = {name: session(data, threads) for name, data in models.items()}
    result: dict[str, dict[str, Any]] = {name: {} for name in models}
    for b in batches:
        feed = shaped(feeds, inputs, b, sequence)
        times: dict[str, list[float]] = {name: [] for name in models}
        for name, sess in sessions.items():
            want = [i.name for i in sess.get_inputs()]
            for _ in range(warmup):
                sess.run(None, {k: feed[k] for k in want})
        for _ in range(rounds):
            for name, sess in sessions.items():
                want = {k: feed[k] for k in (i.name for i in sess.get_inputs())}
                for _ in range(runs):
                    t0 = time.perf_counter()
                    sess.run(None, want)
                    times[name].append((time.perf_counter() - t0) * 1000.0)
            if progress is not None:
                progress(1)
        for name, values in times.items():
            result[name][f"batch{b}"] = {"p50_ms": float(np.percentile(values, 50)),
                                         "p95_ms": float(np.percentile(values, 95)), "runs": len(values)}
    settings = {"threads": threads, "batches": list(batches), "sequence": sequence, "warmup": warmup,
                "rounds": rounds, "runs_per_round": runs, "order": "round-robin over variants"}
    for name in result:
        result[name]["settings"] = settings
    return result
