"""Issue 16's verify/pull/load figures, every baseline measured in the same run on the same bytes.

Builds two real ONNX models of ``--size-mib`` (default 1024) MiB of weights: a directory (a small
``model.onnx`` whose initializer lives in ``model.onnx.data``) and a single file (the same weights
inline), publishes both on a throwaway anvil with the local block store, and times, each in its own
process (peak RSS from ``wait4``), interleaved over ``--repeat`` rounds, best round kept:

  openssl dgst -sha256 DATA                           hashing baseline (the weights file)
  model_signing verify key ... DIR                    OpenSSF model signing on the same tree
  registry verify REF --file DIR --json               all nine checks, directory
  registry cid DIR --json                             CID + file list, directory
  registry verify REF --file FILE --json              all nine checks, single file
  registry pull REF -o DEST --json                    from the local store, directory and single file
  python -c "onnxruntime.InferenceSession(DIR/model.onnx)"   load baseline
  python -c "registry.load_verified(REF, file=DIR)"         verify + load
  fresh-process online verify of a small model (median of 5), and the heavy modules it imported

Each line shows the best wall time, the CPU time (user + system) of that run and the largest peak
RSS; the load average is printed before and after, since the machine may be shared (ratios are what
to compare across machines, and CPU times say how much of a slow wall time was waiting for a core).

    .venv/bin/python bench/verify.py                  # 1 GiB (needs ~5 GiB of free disk)
    .venv/bin/python bench/verify.py --size-mib 64 --repeat 1
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from _common import measured  # noqa: E402  (bench/ is the script's own directory)
PY = sys.executable
BIN = Path(PY).parent


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (5 min {five:.2f}) on {os.cpu_count()} CPUs"


def build_models(folder: Path, size_mib: int) -> tuple[Path, Path]:
    """``folder/dir`` (model.onnx + model.onnx.data) and ``folder/single.onnx``, same weights."""
    from onnx import TensorProto, helper

    n = size_mib * 1024 * 1024 // 4
    tree = folder / "dir"
    tree.mkdir(parents=True, exist_ok=True)
    data = tree / "model.onnx.data"
    with data.open("wb") as handle:
        left = n * 4
        while left:
            chunk = os.urandom(min(left, 8 << 20))
            handle.write(chunk)
            left -= len(chunk)
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, [n])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [n])
    w = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[n], data_location=TensorProto.EXTERNAL)
    for key, value in (("location", "model.onnx.data"), ("offset", "0"), ("length", str(n * 4))):
        entry = w.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph([helper.make_node("Add", ["X", "W"], ["Y"])], "big", [x], [y], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="bench")
    model.ir_version = 8
    (tree / "model.onnx").write_bytes(model.SerializeToString())
    (tree / "config.json").write_text('{"bench": true}')
    single = folder / "single.onnx"
    write_inline(single, model, data)
    return tree, single


def write_inline(path: Path, model: object, data: Path) -> None:
    """The same model with W inline (raw_data), streamed to disk at the protobuf wire level."""
    from onnx import TensorProto

    def varint(value: int) -> bytes:
        out = bytearray()
        while True:
            byte = value & 0x7F
            value >>= 7
            out.append(byte | (0x80 if value else 0))
            if not value:
                return bytes(out)

    m = type(model)()
    m.CopyFrom(model)
    w = m.graph.initializer[0]
    raw_len = data.stat().st_size
    head = TensorProto(name="W", data_type=w.data_type, dims=list(w.dims))
    tensor_prefix = head.SerializeToString() + b"\x4a" + varint(raw_len)
    tensor_len = len(tensor_prefix) + raw_len
    del m.graph.initializer[:]
    graph_prefix = m.graph.SerializeToString() + b"\x2a" + varint(tensor_len)
    graph_len = len(graph_prefix) + tensor_len
    m.ClearField("graph")
    with path.open("wb") as out, data.open("rb") as src:
        out.write(m.SerializeToString() + b"\x3a" + varint(graph_len) + graph_prefix + tensor_prefix)
        shutil.copyfileobj(src, out, 8 << 20)


def small_onnx(path: Path) -> None:
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((64, 10)).astype(np.float32), "W")
    b = numpy_helper.from_array(np.zeros(10, np.float32), "B")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])
    graph = helper.make_graph([helper.make_node("Gemm", ["x", "W", "B"], ["y"])], "small", [x], [y], [w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="bench")
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--dir", default=None, help="Work directory (default: a temp dir on the data disk).")
    args = ap.parse_args()
    work = Path(args.dir or tempfile.mkdtemp(prefix="bench-verify-", dir=str(ROOT / "build")
                                             if (ROOT / "build").is_dir() else None))
    work.mkdir(parents=True, exist_ok=True)
    home = work / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    env["REGISTRY_HOME"] = str(home)
    os.environ.clear()
    os.environ.update(env)
    try:
        run(work, args.size_mib, args.repeat, env)
    finally:
        try:
            from registry.chain.devnet import stop
            from registry.config import load_settings

            stop(load_settings())
        finally:
            shutil.rmtree(work, ignore_errors=True)


def run(work: Path, size_mib: int, repeat: int, env: dict[str, str]) -> None:
    import warnings

    from registry.chain.client import RegistryClient
    from registry.config import load_settings
    from registry.publish import publish_model

    t = time.perf_counter()
    tree, single = build_models(work / "models", size_mib)
    print(f"built {size_mib} MiB models in {time.perf_counter() - t:.1f} s under {work}")
    settings = load_settings()
    client = RegistryClient.connect(settings)
    version = f"1.0.{int(time.time())}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        pub_dir = publish_model(tree, "bench/dir", version, settings=settings, client=client, manifest_dir=work)
        pub_file = publish_model(single, "bench/file", version, settings=settings, client=client, manifest_dir=work)
        print(f"published both in {time.perf_counter() - t:.1f} s")
    dir_ref, file_ref = pub_dir.record.ref, pub_file.record.ref
    data = tree / "model.onnx.data"

    # model_signing: its own key and signature over the same tree
    key = work / "oms.pem"
    subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(work / "k.pem")],
                   check=True)
    subprocess.run(["openssl", "pkcs8", "-topk8", "-nocrypt", "-in", str(work / "k.pem"), "-out", str(key)], check=True)
    subprocess.run(["openssl", "ec", "-in", str(key), "-pubout", "-out", str(work / "oms.pub")], check=True,
                   capture_output=True)
    sig = work / "model.sig"
    ms = str(BIN / "model_signing")
    subprocess.run([ms, "sign", "key", "--private_key", str(key), "--signature", str(sig), str(tree)], check=True,
                   capture_output=True)

    reg = [PY, "-c", "from registry.cli import main; main()"]
    cmds = {
        "openssl": ["openssl", "dgst", "-sha256", str(data)],
        "model_signing": [ms, "verify", "key", "--signature", str(sig), "--public_key", str(work / "oms.pub"),
                          str(tree)],
        "verify_dir": reg + ["verify", dir_ref, "--file", str(tree), "--manifest", str(pub_dir.manifest_path),
                             "--json"],
        "cid_dir": reg + ["cid", str(tree), "--json"],
        "openssl_file": ["openssl", "dgst", "-sha256", str(single)],
        "verify_file": reg + ["verify", file_ref, "--file", str(single), "--manifest",
                              str(pub_file.manifest_path), "--json"],
        "ort_path": [PY, "-c", "import onnxruntime as o, sys; o.InferenceSession(sys.argv[1], "
                               "providers=['CPUExecutionProvider'])", str(tree / "model.onnx")],
        "load_verified": [PY, "-c", "import registry, sys; registry.load_verified(sys.argv[1], file=sys.argv[2], "
                                    "manifest=sys.argv[3])", dir_ref, str(tree), str(pub_dir.manifest_path)],
        "ort_path_file": [PY, "-c", "import onnxruntime as o, sys; o.InferenceSession(sys.argv[1], "
                                    "providers=['CPUExecutionProvider'])", str(single)],
        "load_verified_file": [PY, "-c", "import registry, sys; registry.load_verified(sys.argv[1], file=sys.argv[2], "
                                         "manifest=sys.argv[3])", file_ref, str(single), str(pub_file.manifest_path)],
    }
    subprocess.run(["cat", str(data), str(single)], stdout=subprocess.DEVNULL, check=True)  # warm the page cache
    print(f"before the rounds: {load_average()}")
    results: dict[str, list[tuple[float, float, float]]] = {k: [] for k in cmds}
    results["pull_dir"], results["pull_file"] = [], []
    for round_ in range(repeat):
        for name, cmd in cmds.items():
            wall, rss, _out, cpu = measured(cmd, env)
            results[name].append((wall, rss, cpu))
        for name, ref in (("pull_dir", dir_ref), ("pull_file", file_ref)):
            dest = work / f"pulled-{round_}"
            wall, rss, _out, cpu = measured(reg + ["pull", ref, "-o", str(dest), "--json"], env)
            results[name].append((wall, rss, cpu))
            shutil.rmtree(dest, ignore_errors=True)

    def best(name: str) -> tuple[float, float, float]:
        """Best wall (with that run's CPU time) and the largest peak RSS over the rounds."""
        wall, _rss, cpu = min(results[name])
        return wall, max(r for _, r, _ in results[name]), cpu

    def row(label: str, name: str, extra: str = "") -> tuple[float, float]:
        wall, rss, cpu = best(name)
        print(f"{label:<50} {wall:7.2f} s  cpu {cpu:5.2f} s  RSS {rss:7.1f} MB  {extra}".rstrip())
        return wall, rss

    small_line = small_verify(work, client, settings, version, env)
    mib = size_mib
    file_mb = single.stat().st_size / 1e6
    lines = []
    print(f"\nafter the rounds: {load_average()}; {repeat} interleaved rounds, best wall (its CPU time), "
          "largest peak RSS")
    ossl, _ = row(f"baseline openssl dgst -sha256 DIR/model.onnx.data ({mib} MiB)", "openssl")
    ossl_f, _ = row("baseline openssl dgst -sha256 FILE", "openssl_file")
    msv, _ = row("baseline model_signing verify key DIR", "model_signing")
    for name, label in (("verify_dir", "registry verify --file DIR"), ("cid_dir", "registry cid DIR")):
        wall, rss, _cpu = best(name)
        a, b = wall / msv, wall / ossl
        row(label, name, f"{a:.2f}x model_signing (<= 1.2), {b:.2f}x openssl (<= 1.5), RSS < 150 MB")
        lines.append(f"{label}: {a:.2f}x model_signing [{_v(a <= 1.2)}], {b:.2f}x openssl [{_v(b <= 1.5)}], "
                     f"{rss:.0f} MB [{_v(rss < 150)}]")
    wall, rss, _cpu = best("verify_file")
    r = wall / ossl_f
    cap = 1.1 * file_mb + 150
    row("registry verify --file FILE (single file)", "verify_file",
        f"{r:.2f}x openssl (<= 2), RSS <= {cap:.0f} MB (1.1x file + 150)")
    lines.append(f"single-file verify: {r:.2f}x openssl [{_v(r <= 2)}], {rss:.0f} MB [{_v(rss <= cap)}]")
    _o, ort_rss = row("onnxruntime.InferenceSession(DIR/model.onnx)", "ort_path")
    _l, lv_rss = best("load_verified")[:2]
    row("registry.load_verified(REF, file=DIR)", "load_verified", f"RSS {lv_rss / ort_rss:.2f}x (<= 1.25)")
    lines.append(f"load_verified dir: {lv_rss / ort_rss:.2f}x InferenceSession RSS [{_v(lv_rss / ort_rss <= 1.25)}]")
    _o2, ort_rss2 = row("onnxruntime.InferenceSession(FILE)", "ort_path_file")
    _l2, lv_rss2 = best("load_verified_file")[:2]
    row("registry.load_verified(REF, file=FILE)", "load_verified_file", f"RSS {lv_rss2 / ort_rss2:.2f}x (<= 1.25)")
    lines.append(f"load_verified single file: {lv_rss2 / ort_rss2:.2f}x InferenceSession RSS "
                 f"[{_v(lv_rss2 / ort_rss2 <= 1.25)}]")
    for name, label, base in (("pull_dir", "registry pull (local store, directory)", ossl),
                              ("pull_file", "registry pull (local store, single file)", ossl_f)):
        wall, rss, _cpu = best(name)
        r = wall / base
        row(label, name, f"{r:.2f}x openssl (<= 2), RSS < 150 MB")
        lines.append(f"{label[len('registry '):]}: {r:.2f}x openssl [{_v(r <= 2)}], {rss:.0f} MB [{_v(rss < 150)}]")
    for line in small_line[0]:
        print(line)
    lines.append(small_line[1])
    print(f"\nat the end: {load_average()}")
    print("summary: " + "; ".join(lines))


def _v(ok: bool) -> str:
    return "met" if ok else "MISSED"


def small_verify(work: Path, client: object, settings: object, version: str,
                 env: dict[str, str]) -> tuple[list[str], str]:
    """Fresh-process online verify of a small model: the whole process's wall time (interpreter start
    to exit, median of 5), the heavy modules it imported, and what importing onnx alone costs."""
    import warnings

    from registry.publish import publish_model

    small = work / "small" / "model.onnx"
    small.parent.mkdir(parents=True, exist_ok=True)
    small_onnx(small)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pub = publish_model(small, "bench/small", version, settings=settings, client=client)
    probe = ("import sys, json; import registry.verify; "
             f"r = registry.verify.verify({pub.record.ref!r}, file={str(small)!r}, "
             f"manifest={str(pub.manifest_path)!r}); assert r.ok and r.mode == 'online', r.to_json(); "
             f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    times, heavy = [], []
    for _ in range(5):
        t = time.perf_counter()
        out = subprocess.run([PY, "-c", probe], capture_output=True, text=True, cwd=ROOT, env=env)
        times.append(time.perf_counter() - t)
        if out.returncode != 0:
            raise SystemExit(out.stderr[-2000:])
        heavy = json.loads(out.stdout.strip().splitlines()[-1])
    onnx_s = statistics.median(_import_seconds("import onnx.checker", env) for _ in range(5))
    base_s = statistics.median(_import_seconds("pass", env) for _ in range(5))
    med = statistics.median(times)
    lines = [f"{'small model: fresh-process online verify':<50} {med:7.3f} s (whole process, median of 5, < 0.7)  "
             f"imported: {', '.join(heavy) or 'none of them'} (of {', '.join(HEAVY)}; torch, web3, py_ecc must "
             "stay out)",
             f"{'  of which: python start-up / import onnx.checker':<50} {base_s:7.3f} s / {onnx_s:.3f} s "
             "(onnx is what check 8 runs; nothing else of it is imported)"]
    ok = med < 0.7 and not {"torch", "web3", "py_ecc"} & set(heavy)
    return lines, f"cold verify: {med:.2f} s, imported {heavy} [{_v(ok)}]"


HEAVY = ("torch", "web3", "py_ecc", "eth_account", "eth_abi", "onnxruntime", "onnx")


def _import_seconds(statement: str, env: dict[str, str]) -> float:
    t = time.perf_counter()
    subprocess.run([PY, "-c", statement], check=True, cwd=ROOT, env=env)
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
