"""Loading what a run works on: the model (factory + weights, any ONNX file, or a Transformers
directory), its tokenizer, and the data splits bound to the model's inputs by name.

Everything is read and cross-checked before any work, so bad input fails fast and in one line:
a data array named differently from the model's inputs, token ids saved as floats, text without a
tokenizer, an ONNX file that is not a model.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from registry.compress.data import Dataset, check_targets, file_sha256, is_classification, load_data
from registry.compress.recipe import Recipe
from registry.compress.signature import Signature, bind, onnx_signature
from registry.errors import InputError

MAX_ONNX_BYTES = 2 << 30  # protobuf's own limit for one serialised model


@dataclass
class Inputs:
    evaluation: Dataset
    finetune: Dataset | None
    calibration: Dataset | None
    base: dict[str, Any]                       # what provenance records about the base model
    torch_model: Any = None
    onnx_model: bytes | None = None
    signature: Signature | None = None         # of the ONNX input (torch models: known after export)
    outputs: int = 0
    pooling: str | None = None                 # how a per-token ONNX output is pooled (embedding task)
    output: str | None = None                  # which graph output is the model's answer
    tokenizer: dict[str, Any] | None = None    # provenance record of the tokenizer used on text data
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def sets(self) -> dict[str, Dataset]:
        return {k: v for k, v in (("finetune", self.finetune), ("calibration", self.calibration),
                                  ("evaluation", self.evaluation)) if v is not None}


def needs(recipe: Recipe) -> tuple[bool, bool]:
    """(fine-tuning data, calibration data) the recipe's steps read."""
    finetune = any(s.type in ("prune", "structured_prune", "finetune", "distill") and s.params.get("epochs", 0) > 0
                   for s in recipe.steps)
    calibration = any(s.type == "quantize" and (s.params["mode"] in ("static", "mixed") or
                                                s.params.get("method") == "gptq")
                      for s in recipe.steps)
    return finetune, calibration


def load_inputs(recipe: Recipe) -> Inputs:
    """Reads and cross-checks model and data before any work, so bad input fails fast."""
    if "evaluation" not in recipe.data:
        raise InputError("no evaluation data given (--eval-data or [data] evaluation)")
    need_ft, need_cal = needs(recipe)
    for key, needed in (("finetune", need_ft), ("calibration", need_cal)):
        if needed and key not in recipe.data:
            raise InputError(f"the recipe needs {key} data (--{'finetune' if key == 'finetune' else 'calib'}-data "
                             f"or [data] {key})")
    model = recipe.model
    if not any(k in model for k in ("factory", "onnx", "hf")):
        raise InputError("no model given (--model + --weights, --onnx FILE or --hf DIR)")
    max_length = int(recipe.data.get("max_length", 128))
    hf_model = None
    tokenizer = None
    tokenizer_record = None
    if "hf" in model:
        from registry.compress.hf import load_hf

        hf_model = load_hf(model["hf"], recipe.task, model.get("pooling"))
        tokenizer = hf_model.tokenizer
    if model.get("tokenizer") and (hf_model is None or model["tokenizer"] != model.get("hf")):
        from registry.compress.hf import files_digest, load_tokenizer, model_files

        tokenizer = load_tokenizer(model["tokenizer"])
        rows = model_files(Path(model["tokenizer"]))
        tokenizer_record = {"sha256": files_digest(rows), "files": rows}
    roles = [k for k in ("finetune", "calibration", "evaluation") if k in recipe.data]
    sets = {k: load_data(recipe.data[k], k, tokenizer, max_length) for k in roles}
    texts = {k for k, ds in sets.items() if ds.texts is not None}
    if "onnx" in model:
        inputs = _onnx_inputs(recipe, sets, texts)
    elif hf_model is not None:
        inputs = _hf_inputs(recipe, hf_model, sets, texts)
    else:
        inputs = _factory_inputs(recipe, sets)
    inputs.tokenizer = tokenizer_record
    for role, ds in inputs.sets.items():
        if role == "calibration" or (role == "finetune" and not need_ft):
            continue  # calibration needs inputs only; unused fine-tuning targets are never read
        check_targets(ds, recipe.task, inputs.outputs, role)
    mixed_cls = any(s.type == "quantize" and s.params["mode"] == "mixed" for s in recipe.steps)
    if mixed_cls and is_classification(recipe.task) and inputs.calibration is not None:
        check_targets(inputs.calibration, recipe.task, inputs.outputs, "calibration")
    return inputs


def read_onnx(path: str | Path) -> bytes:
    """An ONNX model file as one serialised ModelProto; external data beside it is folded in."""
    import onnx

    p = Path(path)
    if not p.is_file():
        raise InputError(f"ONNX model {p} does not exist")
    size = p.stat().st_size
    if size > MAX_ONNX_BYTES:
        raise InputError(f"ONNX model {p} is {size} bytes; models over 2 GiB are not supported")
    try:
        proto = onnx.load(str(p), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError and friends
        raise InputError(f"{p} is not an ONNX model: {_line(exc)}") from exc
    if not proto.HasField("graph") or not proto.graph.node or proto.ir_version <= 0:
        raise InputError(f"{p} is not an ONNX model (no graph or no IR version)")
    external = [t for t in proto.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    if external:
        for t in external:
            location = next((e.value for e in t.external_data if e.key == "location"), "")
            parts = location.replace("\\", "/").split("/")
            if not location or location.startswith(("/", "\\")) or ".." in parts:
                raise InputError(f"{p}: tensor {t.name!r} points at external data {location[:120]!r} outside the "
                                 "model's directory")
        try:
            from onnx.external_data_helper import load_external_data_for_model

            load_external_data_for_model(proto, str(p.parent))
        except Exception as exc:
            raise InputError(f"{p}: cannot read its external data: {_line(exc)}") from exc
    from registry.compress.export import normalise

    return normalise(proto.SerializeToString())


def _onnx_inputs(recipe: Recipe, sets: dict[str, Dataset], texts: set[str]) -> Inputs:
    import onnx

    from registry.compress.evaluate import onnx_outputs, session

    data = read_onnx(recipe.model["onnx"])
    sig = onnx_signature(onnx.load_from_string(data))
    if not sig.inputs:
        raise InputError(f"ONNX model {recipe.model['onnx']} has no graph inputs to feed")
    output = recipe.model.get("output")
    if output is not None and output not in [o.name for o in sig.outputs]:
        raise InputError(f"ONNX model has no output {output!r} (outputs: {', '.join(o.name for o in sig.outputs)})")
    bound = {role: ds.with_inputs(bind(ds, sig.inputs, role, drop_extra=role in texts)) for role, ds in sets.items()}
    pooling = recipe.model.get("pooling", "mean") if recipe.task == "embedding" else None
    try:
        sess = session(data, 1)
        probe = {k: v[:2] for k, v in bound["evaluation"].inputs.items()}
        out = onnx_outputs(None, probe, sess=sess, pooling=pooling, output=output)
    except Exception as exc:  # onnxruntime raises its own types for bad graphs and shapes
        raise InputError(f"ONNX model cannot run on the evaluation data: {_line(exc)}") from exc
    if out.ndim != 2:
        raise InputError(f"ONNX model must return (batch, outputs) (or per-token outputs for task embedding), "
                         f"got shape {out.shape}")
    base = {"format": "onnx", "sha256": file_sha256(Path(recipe.model["onnx"])),
            "graph_sha256": hashlib.sha256(data).hexdigest(), "signature": sig.to_dict()}
    return Inputs(bound["evaluation"], bound.get("finetune"), bound.get("calibration"), base, onnx_model=data,
                  signature=sig, outputs=int(out.shape[1]), pooling=pooling, output=output)


def _torch_feeds(ds: Dataset, names: list[str], role: str, drop_extra: bool) -> dict[str, np.ndarray]:
    """Arrays for a PyTorch model: floats become float32 and integers int64 (what layers expect)."""
    arrays = ds.inputs
    if len(arrays) == 1 and len(names) == 1:
        picked = {names[0]: next(iter(arrays.values()))}
    else:
        missing = [n for n in names if n not in arrays]
        if missing:
            raise InputError(f"{role} data {ds.path} lacks input(s) {', '.join(missing)} the model needs "
                             f"(the data has: {', '.join(arrays)})")
        extra = [n for n in arrays if n not in names]
        if extra and not drop_extra:
            raise InputError(f"{role} data {ds.path} has array(s) {', '.join(extra)} the model does not take "
                             f"(model inputs: {', '.join(names)})")
        picked = {n: arrays[n] for n in names}
    out = {}
    for name, arr in picked.items():
        if np.issubdtype(arr.dtype, np.floating):
            arr = arr.astype(np.float32)
        elif np.issubdtype(arr.dtype, np.integer) and arr.dtype != np.int64:
            arr = arr.astype(np.int64)
        out[name] = np.ascontiguousarray(arr)
    return out


def _factory_inputs(recipe: Recipe, sets: dict[str, Dataset]) -> Inputs:
    from registry.compress.models import build_model, code_digest, forward_names, load_state, probe
    from registry.compress.train import deterministic

    model = recipe.model
    if "weights" not in model:
        raise InputError("a PyTorch model needs a factory ('module:factory') and a state-dict file (--weights)")
    with deterministic(recipe.seed):
        net = build_model(model["factory"], model.get("kwargs"))
    load_state(net, model["weights"], model["factory"])
    names = forward_names(net, list(sets["evaluation"].inputs))
    if len(names) > 1:
        net.input_names = names
    bound = {role: ds.with_inputs(_torch_feeds(ds, names, role, False)) for role, ds in sets.items()}
    outputs = 0
    for role, ds in bound.items():
        outputs = probe(net, ds.inputs, role)
    base = {"format": "pytorch-state-dict", "sha256": file_sha256(Path(model["weights"])),
            "code": code_digest(model["factory"])}
    return Inputs(bound["evaluation"], bound.get("finetune"), bound.get("calibration"), base, torch_model=net,
                  outputs=outputs)


def _hf_inputs(recipe: Recipe, hf: Any, sets: dict[str, Dataset], texts: set[str]) -> Inputs:
    from registry.compress.hf import files_digest
    from registry.compress.models import probe

    names = hf.input_names
    bound = {role: ds.with_inputs(_torch_feeds(ds, names, role, role in texts)) for role, ds in sets.items()}
    outputs = 0
    for role, ds in bound.items():
        outputs = probe(hf.module, ds.inputs, role)
    info = dict(hf.info)
    base = {"format": "transformers", "sha256": files_digest(info["files"]), **info}
    return Inputs(bound["evaluation"], bound.get("finetune"), bound.get("calibration"), base, torch_model=hf.module,
                  outputs=outputs, extra={"hf": hf})


def _line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]
