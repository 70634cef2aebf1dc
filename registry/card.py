"""Model cards: Markdown with Hugging Face-style YAML front matter, parsed with limits, drafted from provenance.

A card is pinned beside the artifact and its digest is signed in the release, so once published it
is as trustworthy as the publisher; but it is read back from a store by explorers and verifiers that
must survive a hostile one. Parsing therefore bounds everything before YAML sees it (total size,
front-matter size) and uses a loader that refuses what makes YAML dangerous or surprising: anchors
and aliases (the "billion laughs" bomb), explicit tags (``!!python/object``, ``!!binary``, custom
``!tag``), nesting deeper than ``MAX_DEPTH`` and more than ``MAX_NODES`` nodes. Dates stay strings.

The fields follow the Hub's model card metadata (``license``, ``language``, ``tags``, ``datasets``,
``base_model``, ``base_model_relation``, ``pipeline_tag``, ``model-index``); unknown keys are kept.
``base_model_relation`` adds ``pruned`` and ``distilled`` to the Hub's values, since those are what
the compression pipeline does.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml
from yaml.composer import Composer
from yaml.events import AliasEvent, CollectionStartEvent, ScalarEvent

from registry.errors import InputError
from registry.release import MAX_CARD_BYTES  # one limit for publishers, verifiers and readers

MAX_FRONT_MATTER_BYTES = 64 * 1024
MAX_DEPTH = 16
MAX_NODES = 10_000
RELATIONS = ("quantized", "pruned", "distilled", "finetune", "adapter", "merge")
CARD_FILENAME = "README.md"

_FENCE = re.compile(r"^---[ \t]*$", re.MULTILINE)


class CardError(InputError):
    """A card that cannot be read: too large, not UTF-8, bad front matter or a field of the wrong type."""


@dataclass(frozen=True)
class EvalResult:
    """One metric of the ``model-index`` (flattened: model, task, dataset, metric)."""

    model: str | None
    task_type: str | None
    task_name: str | None
    dataset_type: str | None
    dataset_name: str | None
    metric_type: str
    metric_name: str | None
    value: Any

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model, "task_type": self.task_type, "task_name": self.task_name,
            "dataset_type": self.dataset_type, "dataset_name": self.dataset_name,
            "metric_type": self.metric_type, "metric_name": self.metric_name, "value": self.value,
        }


@dataclass(frozen=True)
class ModelCard:
    """A parsed card: the whole front matter (JSON-compatible) plus the fields tools look at."""

    metadata: dict[str, Any]
    body: str
    license: str | None = None
    language: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    base_model: tuple[str, ...] = ()
    base_model_relation: str | None = None
    pipeline_tag: str | None = None
    library_name: str | None = None
    results: tuple[EvalResult, ...] = ()
    plots: tuple[dict[str, str], ...] = ()
    warnings: tuple[str, ...] = field(default=())

    @property
    def title(self) -> str | None:
        """The first ``# heading`` of the body, if any."""
        match = re.search(r"^#[ \t]+(.+?)[ \t#]*$", self.body, re.MULTILINE)
        return match.group(1).strip() if match else None

    def to_json(self) -> dict[str, Any]:
        return {
            "license": self.license, "language": list(self.language), "tags": list(self.tags),
            "datasets": list(self.datasets), "base_model": list(self.base_model),
            "base_model_relation": self.base_model_relation, "pipeline_tag": self.pipeline_tag,
            "library_name": self.library_name, "results": [r.to_json() for r in self.results],
            "plots": [dict(p) for p in self.plots], "title": self.title, "warnings": list(self.warnings),
            "metadata": self.metadata, "body": self.body,
        }


# --------------------------------------------------------------------------------------------
# A YAML loader that refuses anchors, aliases, explicit tags and deep or huge documents
# --------------------------------------------------------------------------------------------


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader minus anchors/aliases/explicit tags/timestamps, with depth and node-count limits."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent: Any, index: Any) -> Any:  # noqa: D401 - PyYAML hook
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            raise CardError("card front matter uses a YAML alias (*name); aliases are not allowed")
        if isinstance(event, (ScalarEvent, CollectionStartEvent)):
            if event.anchor is not None:
                raise CardError("card front matter uses a YAML anchor (&name); anchors are not allowed")
            if event.tag is not None and event.tag != "!":
                raise CardError(f"card front matter uses an explicit YAML tag ({str(event.tag)[:40]}); tags are not allowed")
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise CardError(f"card front matter has more than {MAX_NODES} YAML nodes")
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise CardError(f"card front matter is nested deeper than {MAX_DEPTH} levels")
            return Composer.compose_node(self, parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        """Duplicate keys are refused: two readers must never see two different licenses."""
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError as exc:  # an unhashable key (a list or a mapping)
                raise CardError("card front matter has a key that is not a string") from exc
            if duplicate:
                raise CardError(f"card front matter repeats the key {str(key)[:60]!r}")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _load_yaml(text: str) -> Any:
    loader: _BoundedLoader | None = None
    try:
        loader = _BoundedLoader(text)  # the reader already refuses control characters here
        return loader.get_single_data()
    except CardError:
        raise
    except yaml.YAMLError as exc:
        raise CardError(f"card front matter is not valid YAML: {str(exc).splitlines()[0][:200]}") from exc
    except RecursionError as exc:  # pragma: no cover - MAX_DEPTH stops this first
        raise CardError("card front matter is nested too deeply") from exc
    finally:
        if loader is not None:
            loader.dispose()


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------


def split_front_matter(text: str) -> tuple[str | None, str]:
    """(front matter, body): the front matter is between a first line ``---`` and the next ``---``."""
    if not text.startswith("---"):
        return None, text
    first = _FENCE.match(text)
    if first is None:
        return None, text
    closing = _FENCE.search(text, first.end())
    if closing is None:
        raise CardError("card front matter starts with --- but never ends (no closing --- line)")
    front = text[first.end():closing.start()]
    body = text[closing.end():]
    return front, body.removeprefix("\n")


def parse_card(data: bytes | str) -> ModelCard:
    """Parses a card from bytes (or text); ``CardError`` on anything a careful reader refuses."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    if len(data) > MAX_CARD_BYTES:
        raise CardError(f"card is larger than {MAX_CARD_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CardError(f"card is not UTF-8: {exc.reason} at byte {exc.start}") from exc
    text = text.removeprefix("\ufeff").replace("\r\n", "\n")
    if "\x00" in text:
        raise CardError("card contains a NUL byte")
    front, body = split_front_matter(text)
    metadata: dict[str, Any] = {}
    if front is not None:
        if len(front.encode("utf-8")) > MAX_FRONT_MATTER_BYTES:
            raise CardError(f"card front matter is larger than {MAX_FRONT_MATTER_BYTES} bytes")
        loaded = _load_yaml(front) if front.strip() else {}
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise CardError("card front matter must be a YAML mapping (key: value lines)")
        metadata = _jsonable(loaded, "front matter")
    return _interpret(metadata, body)


def load_card(path: str | Path) -> ModelCard:
    """Reads and parses a card file (bounded read; a directory or a missing file is a CardError)."""
    return read_card(path)[1]


def read_card(path: str | Path) -> tuple[bytes, ModelCard]:
    """The exact bytes of a card file (what gets pinned and whose SHA-256 is signed) and their parse;
    ``publish --card`` calls this so a card that readers would refuse is never anchored."""
    target = Path(path)
    if not target.is_file():
        raise CardError(f"cannot read card {target}: not a regular file")
    try:
        with target.open("rb") as handle:
            data = handle.read(MAX_CARD_BYTES + 1)
    except OSError as exc:
        raise CardError(f"cannot read card {target}: {exc.strerror or exc}") from exc
    return data, parse_card(data)


def _jsonable(value: Any, where: str) -> Any:
    """YAML values as JSON values: string keys, finite numbers, no bytes or sets."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if isinstance(key, bool) or not isinstance(key, (str, int, float)):
                raise CardError(f"card {where} has a key that is not a string ({type(key).__name__})")
            out[str(key)] = _jsonable(item, f"{where}.{key}")
        return out
    if isinstance(value, list):
        return [_jsonable(item, where) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise CardError(f"card {where} has a non-finite number")
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise CardError(f"card {where} has an unsupported value ({type(value).__name__})")


def _string(meta: dict[str, Any], key: str) -> str | None:
    value = meta.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise CardError(f"card field {key!r} must be a string, not {type(value).__name__}")
    return value


def _strings(meta: dict[str, Any], key: str) -> tuple[str, ...]:
    """A string or a list of strings (the Hub accepts both for language, datasets, base_model...)."""
    value = meta.get(key)
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise CardError(f"card field {key!r} must be a string or a list of strings")


def _interpret(meta: dict[str, Any], body: str) -> ModelCard:
    warnings: list[str] = []
    relation = _string(meta, "base_model_relation")
    base_model = _strings(meta, "base_model")
    if relation is not None:
        if relation not in RELATIONS:
            raise CardError(f"card base_model_relation {relation!r} is not one of {', '.join(RELATIONS)}")
        if not base_model:
            raise CardError("card base_model_relation is set but base_model is not")
    return ModelCard(
        metadata=meta,
        body=body,
        license=_string(meta, "license"),
        language=_strings(meta, "language"),
        tags=_strings(meta, "tags"),
        datasets=_strings(meta, "datasets"),
        base_model=base_model,
        base_model_relation=relation,
        pipeline_tag=_string(meta, "pipeline_tag"),
        library_name=_string(meta, "library_name"),
        results=tuple(_results(meta.get("model-index"), warnings)),
        plots=tuple(_plots(meta.get("compression_report"))),
        warnings=tuple(warnings),
    )


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _results(index: Any, warnings: list[str]) -> Iterable[EvalResult]:
    """Flattens ``model-index: [{name, results: [{task, dataset, metrics: [...]}]}]``."""
    if index is None:
        return
    if not isinstance(index, list):
        raise CardError("card model-index must be a list")
    for model in index:
        if not isinstance(model, dict):
            raise CardError("card model-index entries must be mappings")
        results = model.get("results") or []
        if not isinstance(results, list):
            raise CardError("card model-index results must be a list")
        for result in results:
            if not isinstance(result, dict):
                raise CardError("card model-index results must be mappings")
            task = result.get("task") if isinstance(result.get("task"), dict) else {}
            dataset = result.get("dataset") if isinstance(result.get("dataset"), dict) else {}
            metrics = result.get("metrics") or []
            if not isinstance(metrics, list):
                raise CardError("card model-index metrics must be a list")
            for metric in metrics:
                if not isinstance(metric, dict) or not isinstance(metric.get("type"), str):
                    warnings.append("a model-index metric without a string type was skipped")
                    continue
                yield EvalResult(
                    model=_opt_str(model.get("name")), task_type=_opt_str(task.get("type")),
                    task_name=_opt_str(task.get("name")), dataset_type=_opt_str(dataset.get("type")),
                    dataset_name=_opt_str(dataset.get("name")), metric_type=metric["type"],
                    metric_name=_opt_str(metric.get("name")), value=metric.get("value"),
                )


def _plots(report: Any) -> Iterable[dict[str, str]]:
    """``compression_report: {plots: [{title, cid}]}``: report plots pinned with the card."""
    if report is None:
        return
    if not isinstance(report, dict) or not isinstance(report.get("plots", []), list):
        raise CardError("card compression_report must be a mapping with a list of plots")
    for plot in report.get("plots", []):
        if not isinstance(plot, dict) or not isinstance(plot.get("cid"), str):
            raise CardError("card compression_report plots need a cid string each")
        yield {"title": str(plot.get("title") or plot["cid"]), "cid": plot["cid"]}


# --------------------------------------------------------------------------------------------
# Drafting from provenance
# --------------------------------------------------------------------------------------------

_STEP_RELATION = (("quantize", "quantized"), ("distill", "distilled"), ("prune", "pruned"),
                  ("structured_prune", "pruned"), ("finetune", "finetune"))
_TASK_PIPELINE = {"embedding": "feature-extraction", "regression": "tabular-regression"}


def relation_from_steps(steps: Iterable[dict[str, Any]]) -> str | None:
    """The Hub relation a compression run amounts to: the strongest transformation wins
    (quantized > distilled > pruned > finetune), since a card has one relation."""
    kinds = [str(s.get("name", "")) for s in steps if isinstance(s, dict)]
    for kind, relation in _STEP_RELATION:
        if kind in kinds:
            return relation
    return None


def draft_card(doc: dict[str, Any], *, name: str | None = None, version: str | None = None,
               base_model: str | None = None, license: str | None = None,
               plots: Iterable[dict[str, str]] = ()) -> str:
    """A card for the publisher to edit, from a provenance statement: front matter (base model and
    relation, tags, model-index from the final metrics) and a body with every step's parameters and
    metrics before/after, the data digests, tools and seeds. The result parses with ``parse_card``."""
    from registry.provenance import subject_sha256, validate

    validate(doc)
    pred = doc["predicate"]
    steps = [s for s in pred.get("steps") or [] if isinstance(s, dict)]
    base = pred.get("base_model") if isinstance(pred.get("base_model"), dict) else {}
    base_ref = base_model or (base.get("ref") if isinstance(base.get("ref"), str) else None)
    recipe = pred.get("recipe") if isinstance(pred.get("recipe"), dict) else {}
    task = recipe.get("task") if isinstance(recipe.get("task"), str) else None
    metrics = pred.get("metrics") if isinstance(pred.get("metrics"), dict) else {}
    title = name or str(doc["subject"][0].get("name") or "model")

    meta: dict[str, Any] = {"license": license or "other", "library_name": "onnx"}
    tags = ["onnx", "compressed"] + sorted({str(s.get("name")) for s in steps if s.get("name")})
    if task:
        tags.append(task)
    meta["tags"] = list(dict.fromkeys(tags))
    if task in _TASK_PIPELINE:
        meta["pipeline_tag"] = _TASK_PIPELINE[task]
    if base_ref:
        meta["base_model"] = base_ref
        relation = relation_from_steps(steps)
        if relation:
            meta["base_model_relation"] = relation
    numeric = {k: v for k, v in metrics.items() if _is_number(v)}
    if numeric:
        meta["model-index"] = [{
            "name": title,
            "results": [{
                "task": {"type": task or "other"},
                "dataset": {"type": "custom", "name": "evaluation set (see provenance data digests)"},
                "metrics": [{"type": key, "value": value} for key, value in sorted(numeric.items())],
            }],
        }]
    plot_list = [{"title": p["title"], "cid": p["cid"]} for p in plots]
    if plot_list:
        meta["compression_report"] = {"plots": plot_list}

    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, default_flow_style=False)
    lines = [f"# {title}" + (f" {version}" if version else ""), ""]
    lines += ["<!-- A draft written from the provenance record: edit the prose, keep the numbers. -->", ""]
    lines += [f"Artifact `sha256:{subject_sha256(doc)}`."]
    if base_ref:
        lines += ["", f"Derived from `{base_ref}`" + (f" ({meta.get('base_model_relation')})."
                                                     if meta.get("base_model_relation") else ".")]
    elif base.get("sha256"):
        lines += ["", f"Base model `sha256:{base.get('sha256')}` ({base.get('format', 'unknown format')})."]
    lines += ["", "## Intended use", "", "Describe what the model is for and what it must not be used for.", ""]
    if steps:
        lines += ["## Compression steps", "", "| # | step | parameters | before | after |",
                  "| ---: | --- | --- | --- | --- |"]
        for index, step in enumerate(steps, 1):
            lines.append(f"| {index} | {_cell(step.get('name'))} | {_cell(_kv(step.get('params')))} | "
                         f"{_cell(_kv(step.get('metrics_before')))} | {_cell(_kv(step.get('metrics_after')))} |")
        lines.append("")
    if numeric:
        lines += ["## Evaluation", "", "| metric | value |", "| --- | ---: |"]
        lines += [f"| {_cell(k)} | {_fmt(v)} |" for k, v in sorted(numeric.items())]
        lines.append("")
    for key, heading in (("data", "Data digests"), ("tools", "Tools"), ("seeds", "Seeds")):
        section = pred.get(key)
        if isinstance(section, dict) and section:
            lines += [f"## {heading}", ""] + [f"- {_cell(k)}: `{_cell(v)}`" for k, v in section.items()] + [""]
    for plot in plot_list:
        lines += [f"![{_cell(plot['title'])}](ipfs://{plot['cid']})", ""]
    lines += ["## Limitations", "", "Describe known failure modes, biases and the evaluation's limits.", ""]
    return f"---\n{front}---\n\n" + "\n".join(lines)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _fmt(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _kv(value: Any) -> str:
    if not isinstance(value, dict) or not value:
        return "-"
    parts = []
    for key, item in value.items():
        if isinstance(item, (dict, list)):
            continue  # nested details (latency tables, per-layer lists) stay in the provenance
        parts.append(f"{key}={_fmt(item)}")
    return ", ".join(parts) or "-"


def _cell(value: Any) -> str:
    """Text safe inside a Markdown table cell and on one line."""
    return str(value).replace("\n", " ").replace("|", "\\|").replace("`", "'")


def write_draft(out: str | Path, text: str, force: bool = False) -> ModelCard:
    """Writes a drafted card atomically, after parsing it with the limits every reader applies (a
    draft must be publishable as written). An existing file is an edited card: refused unless ``force``."""
    from registry.fsutil import atomic_write

    target = Path(out)
    if target.exists() and not force:
        raise InputError(f"{target} exists (use --force to overwrite it)")
    parsed = parse_card(text)
    atomic_write(target, text.encode("utf-8"))
    return parsed


def draft_for_release(out: str | Path, artifact: str | Path, name: str, version: str,
                      provenance: str | Path | None = None) -> ModelCard:
    """``registry publish --card PATH`` when PATH does not exist yet: a draft of the card for
    ``name@version`` from the provenance that publish would anchor (the given statement, or the minimal
    one publish generates without it), written to PATH for the publisher to edit before publishing."""
    import hashlib

    from registry.provenance import load_provenance, statement

    if provenance is not None:
        doc = load_provenance(provenance)
    else:
        model = Path(artifact)
        if not model.is_file():
            raise InputError(f"cannot read {model}: not a file")
        digest = hashlib.sha256()
        with model.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        doc = statement(digest.hexdigest(), model.name, {"note": "published without a compression record"})
    return write_draft(out, draft_card(doc, name=name, version=version))

