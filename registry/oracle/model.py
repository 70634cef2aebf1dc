"""A verified model as an oracle node serves it: the session plus the release it came from.

The two travel together in one immutable object, so a prediction can never be paired with the
digest of another model: a hot swap replaces the whole object with one reference assignment, and
every request takes that reference once and uses only it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from registry.errors import InputError, PolicyError

if TYPE_CHECKING:
    import onnxruntime

    from registry.chain.records import ReleaseRecord


@dataclass(frozen=True)
class ServedModel:
    """A verified ONNX forecaster taking ``[batch, window]`` float32 and giving one value per row."""

    release: "ReleaseRecord"
    session: "onnxruntime.InferenceSession" = field(repr=False)
    input_name: str
    window: int
    loaded_at: float

    @classmethod
    def wrap(cls, session: "onnxruntime.InferenceSession", release: "ReleaseRecord") -> "ServedModel":
        """Checks the model's signature fits an oracle (one float input ``[batch, N]``, one output)."""
        inputs = session.get_inputs()
        outputs = session.get_outputs()
        if len(inputs) != 1 or len(outputs) < 1:
            raise PolicyError(f"{release.ref}: an oracle model needs exactly one input, has {len(inputs)}")
        spec = inputs[0]
        if spec.type != "tensor(float)":
            raise PolicyError(f"{release.ref}: input {spec.name!r} is {spec.type}, expected tensor(float)")
        shape = list(spec.shape)
        if len(shape) != 2 or not isinstance(shape[1], int) or shape[1] < 1:
            raise PolicyError(f"{release.ref}: input {spec.name!r} has shape {shape}, expected [batch, N]")
        return cls(release=release, session=session, input_name=spec.name, window=int(shape[1]),
                   loaded_at=time.time())

    @property
    def release_id(self) -> bytes:
        return self.release.id

    @property
    def artifact_sha256(self) -> bytes:
        return self.release.artifact_sha256

    def describe(self) -> dict[str, Any]:
        return {
            "ref": f"{self.release.name}@{self.release.version}",
            "release_id": "0x" + self.release.id.hex(),
            "version": self.release.version,
            "artifact_sha256": self.release.artifact_sha256.hex(),
            "window": self.window,
            "loaded_at": self.loaded_at,
        }

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """One float per row of ``batch`` (``[n, window]``); InputError on the wrong shape or a
        non-finite output, so garbage never reaches a feed."""
        array = np.asarray(batch, dtype=np.float32)
        if array.ndim == 1:
            array = array[None, :]
        if array.ndim != 2 or array.shape[1] != self.window or array.shape[0] < 1:
            raise InputError(f"input has shape {list(array.shape)}, the model needs [n, {self.window}]")
        if not np.all(np.isfinite(array)):
            raise InputError("input contains NaN or infinity")
        out = self.session.run(None, {self.input_name: array})[0]
        values = np.asarray(out, dtype=np.float64).reshape(array.shape[0], -1)[:, 0]
        if not np.all(np.isfinite(values)):
            raise InputError("the model produced a non-finite prediction")
        return values
