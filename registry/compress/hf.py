"""Hugging Face Transformers models and tokenizers from a local directory, never from the hub.

``--hf DIR`` names a directory with ``config.json``, weights (``model.safetensors`` or
``pytorch_model.bin``) and tokenizer files, as ``save_pretrained`` or a sentence-transformers
package writes them. The model is wrapped into a plain ``nn.Module`` taking the tokenizer's tensors
by name and returning one tensor (a pooled sentence embedding, or classification logits), which is
what the rest of the pipeline trains, prunes and exports. Offline is enforced before transformers is
imported (``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE``) and on every load (``local_files_only``).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from torch import nn

from registry.errors import InputError

POOLING = ("mean", "cls")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer.model", "spiece.model", "vocab.json")
# Files of a model directory that decide what the model computes (digested into the provenance).
MODEL_FILES = ("config.json", "model.safetensors", "pytorch_model.bin", "tokenizer.json", "tokenizer_config.json",
               "special_tokens_map.json", "vocab.txt", "vocab.json", "merges.txt", "tokenizer.model",
               "spiece.model", "1_Pooling/config.json", "modules.json", "sentence_bert_config.json")
MAX_CONFIG_BYTES = 1 << 20


def offline() -> None:
    """Never reach the hub: set before transformers/huggingface_hub read their environment."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """transformers prints progress bars and advice; the library must stay silent (stdout may be --json)."""
    offline()
    import transformers

    transformers.utils.logging.disable_progress_bar()
    level = transformers.utils.logging.get_verbosity()
    transformers.utils.logging.set_verbosity_error()
    root = logging.getLogger()
    old_root = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        transformers.utils.logging.set_verbosity(level)
        root.setLevel(old_root)


def _dir(path: str | Path, what: str) -> Path:
    p = Path(path)
    if not p.is_dir():
        raise InputError(f"{what} {p} is not a directory")
    return p


def load_tokenizer(path: str | Path) -> Any:
    """The fast tokenizer saved in ``path``; InputError when the directory holds none."""
    p = _dir(path, "tokenizer directory")
    if not any((p / f).is_file() for f in TOKENIZER_FILES):
        raise InputError(f"no tokenizer in {p} (expected one of {', '.join(TOKENIZER_FILES)})")
    with quiet():
        from transformers import AutoTokenizer

        try:
            return AutoTokenizer.from_pretrained(str(p), local_files_only=True)
        except Exception as exc:  # transformers raises OSError/ValueError/KeyError for broken directories
            raise InputError(f"cannot load the tokenizer in {p}: {_first_line(exc)}") from exc


def read_config(p: Path) -> dict[str, Any]:
    cfg = p / "config.json"
    if not cfg.is_file():
        raise InputError(f"{p} has no config.json: not a Transformers model directory")
    if cfg.stat().st_size > MAX_CONFIG_BYTES:
        raise InputError(f"{cfg} is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        doc = json.loads(cfg.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{cfg} is not valid JSON: {str(exc)[:120]}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("model_type"), str):
        raise InputError(f"{cfg} names no model_type")
    return doc


def default_pooling(p: Path) -> str:
    """sentence-transformers directories say how they pool (1_Pooling/config.json); else mean."""
    cfg = p / "1_Pooling" / "config.json"
    with contextlib.suppress(OSError, ValueError, AttributeError):
        doc = json.loads(cfg.read_text(encoding="utf-8"))
        if doc.get("pooling_mode_cls_token") and not doc.get("pooling_mode_mean_tokens"):
            return "cls"
    return "mean"


@dataclass
class HFModel:
    """A loaded directory: the wrapped module, its tokenizer and what provenance records about it."""

    module: Any
    tokenizer: Any
    input_names: list[str]
    output_name: str
    info: dict[str, Any] = field(default_factory=dict)


def load_hf(path: str | Path, task: str, pooling: str | None = None) -> HFModel:
    """Loads ``path`` for ``task`` (embedding or sequence-classification); InputError on any defect."""
    p = _dir(path, "Hugging Face model directory")
    config = read_config(p)
    if not any((p / f).is_file() for f in WEIGHT_FILES):
        raise InputError(f"{p} has no weights ({' or '.join(WEIGHT_FILES)})")
    tokenizer = load_tokenizer(p)
    if task == "embedding":
        pool = pooling or default_pooling(p)
        if pool not in POOLING:
            raise InputError(f"pooling {pool!r} is not one of {', '.join(POOLING)}")
    elif task in ("sequence-classification", "classification"):
        pool = None
    else:
        raise InputError(f"--hf supports tasks embedding and sequence-classification, not {task!r}")
    with quiet():
        import torch  # noqa: F401 - transformers needs it loaded first for a clear error if missing
        from transformers import AutoModel, AutoModelForSequenceClassification

        loader = AutoModel if task == "embedding" else AutoModelForSequenceClassification
        try:
            # eager attention traces to plain ONNX ops (sdpa paths may not export with the TorchScript exporter)
            backbone = loader.from_pretrained(str(p), local_files_only=True, attn_implementation="eager")
        except Exception as exc:
            raise InputError(f"cannot load the model in {p}: {_first_line(exc)}") from exc
    backbone.eval()
    names = _input_names(backbone, tokenizer)
    if task == "embedding":
        module = EmbeddingModel(backbone, names, pool)
        output = "sentence_embedding"
    else:
        labels = getattr(backbone.config, "num_labels", None)
        if not labels or labels < 2:
            raise InputError(f"{p}: a sequence-classification model needs num_labels >= 2 in config.json")
        module = ClassifierModel(backbone, names)
        output = "logits"
    module.output_name = output
    info = {"model_type": config["model_type"], "class": type(backbone).__name__,
            "architectures": config.get("architectures"), "pooling": pool, "files": model_files(p)}
    return HFModel(module.eval(), tokenizer, names, output, info)


def _input_names(backbone: Any, tokenizer: Any) -> list[str]:
    import inspect

    accepted = set(inspect.signature(backbone.forward).parameters)
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids")
             if n in accepted and n in getattr(tokenizer, "model_input_names", [])]
    if names[:2] != ["input_ids", "attention_mask"]:
        raise InputError(f"the tokenizer and {type(backbone).__name__} must share input_ids and attention_mask "
                         f"inputs (shared: {', '.join(names) or 'none'})")
    return names


def model_files(p: Path) -> list[dict[str, Any]]:
    """(path, size, sha256) of the files that define the model, in path order: the weights and code digest."""
    rows = []
    for rel in MODEL_FILES:
        f = p / rel
        if f.is_file() and not f.is_symlink():
            rows.append({"path": rel, "size": f.stat().st_size, "sha256": _sha(f)})
    return sorted(rows, key=lambda r: r["path"])


def files_digest(rows: list[dict[str, Any]]) -> str:
    """One SHA-256 over the canonical file list (like a directory artifact's digest)."""
    text = "".join(f"{r['path']}\0{r['size']}\0{r['sha256']}\n" for r in rows)
    return hashlib.sha256(text.encode()).hexdigest()


def _sha(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


def _present(input_ids: Any, attention_mask: Any, token_type_ids: Any) -> dict[str, Any]:
    """The backbone's keyword inputs, leaving out those the export did not feed (a model without
    ``token_type_ids`` must not receive ``None`` for it)."""
    optional = {"attention_mask": attention_mask, "token_type_ids": token_type_ids}
    return {"input_ids": input_ids, **{k: v for k, v in optional.items() if v is not None}}


class EmbeddingModel(nn.Module):
    """Backbone + pooling -> (batch, hidden). Mean pooling averages the non-padding tokens."""

    def __init__(self, backbone: Any, input_names: list[str], pooling: str) -> None:
        super().__init__()
        self.backbone = backbone
        self.input_names = list(input_names)
        self.pooling = pooling

    def forward(self, input_ids: Any, attention_mask: Any = None, token_type_ids: Any = None) -> Any:
        hidden = self.backbone(**_present(input_ids, attention_mask, token_type_ids)).last_hidden_state
        if self.pooling == "cls":
            return hidden[:, 0]
        if attention_mask is None:
            return hidden.mean(1)
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


class ClassifierModel(nn.Module):
    """Backbone with a classification head -> logits (batch, labels)."""

    def __init__(self, backbone: Any, input_names: list[str]) -> None:
        super().__init__()
        self.backbone = backbone
        self.input_names = list(input_names)

    def forward(self, input_ids: Any, attention_mask: Any = None, token_type_ids: Any = None) -> Any:
        return self.backbone(**_present(input_ids, attention_mask, token_type_ids)).logits


def tiny_bert(out: str | Path, task: str = "embedding", seed: int = 0, labels: int = 2) -> Path:
    """Writes a randomly initialised 2-layer BERT with a word-level tokenizer to ``out`` (tests, examples):
    the same layout as a real checkpoint, small enough to export and quantize in a second."""
    offline()
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertForSequenceClassification, BertModel, PreTrainedTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [
        w for w in ("the a an of to in and is are was for on with as by at from that this it be or not "
                    "data model set sample samples features value values class classes number dataset "
                    "test train image images text one two three each per can used has have were which").split()]
    vocab = {w: i for i, w in enumerate(words)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]",
                                   model_input_names=["input_ids", "token_type_ids", "attention_mask"])
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=len(words), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=128, num_labels=labels)
    with quiet():
        model = BertModel(cfg, add_pooling_layer=False) if task == "embedding" else BertForSequenceClassification(cfg)
        target = Path(out)
        target.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(str(target))
        fast.save_pretrained(str(target))
    return target
