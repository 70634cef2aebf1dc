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
  registry pull REF -o DEST --json                    from the local store, directory
  python -c "onnxruntime.InferenceSession(DIR/model.onnx)"   load baseline
  python -c "registry.load_verified(REF, file=DIR)"         verify + load
  fresh-process online verify of a small model (median of 5), and the heavy modules it imported

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
PY = sys.executable
BIN = Path(PY).parent


def measured(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Like run_measured, through a tiny launcher so the child's own peak RSS is read with wait4."""
    launcher = ("import os, subprocess, sys, time, json\n"
                "t = time.perf_counter()\n"
                "p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE)\n"
                "out, err = p.stdout.read(), p.stderr.read()\n"
                "_, status, ru = os.wait4(p.pid, 0)\n"
                "wall = time.perf_counter() - t\n"
                "code = os.waitstatus_to_exitcode(status)\n"
                "sys.stdout.write(json.dumps({'wall': wall, 'rss_kb': ru.ru_maxrss, 'code': code, "
                "'out': out.decode(errors='replace')[-20000:], 'err': err.decode(errors='replace')[-3000:]}))\n")
    res = subprocess.run([PY, "-c", launcher, *cmd], capture_output=True, text=True, env=env, cwd=ROOT)
    doc = json.loads(res.stdout)
    if doc["code"] != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} exited {doc['code']}: {doc['err']}")
    return doc["wall"], doc["rss_kb"] / 1024, doc["out"]


def build_models(folder: Path, size_mib: int) -> tuple[Path, Path]:
    """``folder/dir`` (model.onnx + model.onnx.data) and ``folder/single.onnx``, same weights."""
    import onnx
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
    results: dict[str, list[tuple[float, float]]] = {k: [] for k in cmds}
    results["pull_dir"] = []
    for round_ in range(repeat):
        for name, cmd in cmds.items():
            wall, rss, _out = measured(cmd, env)
            results[name].append((wall, rss))
        dest = work / f"pulled-{round_}"
        wall, rss, _out = measured(reg + ["pull", dir_ref, "-o", str(dest), "--json"], env)
        results["pull_dir"].append((wall, rss))
        shutil.rmtree(dest, ignore_errors=True)

    def best(name: str) -> tuple[float, float]:
        return min(w for w, _ in results[name]), max(r for _, r in results[name])

    small_line = small_verify(work, client, settings, version, env)
    mib = size_mib
    file_mb = single.stat().st_size / 1e6
    ossl, _ = best("openssl")
    ossl_f, _ = best("openssl_file")
    msv, ms_rss = best("model_signing")
    lines = []
    print(f"\nload average {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs); {repeat} interleaved rounds, best wall, "
          "max peak RSS")
    print(f"baseline  openssl dgst -sha256 (weights, {mib} MiB)   {ossl:7.2f} s")
    print(f"baseline  model_signing verify key DIR              {msv:7.2f} s   RSS {ms_rss:7.1f} MB")
    for name, label in (("verify_dir", "registry verify --file DIR"), ("cid_dir", "registry cid DIR")):
        wall, rss = best(name)
        a, b = wall / msv, wall / ossl
        print(f"{label:<46} {wall:7.2f} s   RSS {rss:7.1f} MB   {a:.2f}x model_signing (target <= 1.2), "
              f"{b:.2f}x openssl (target <= 1.5), RSS target < 150 MB")
        lines.append(f"{label}: {a:.2f}x model_signing [{_v(a <= 1.2)}], {b:.2f}x openssl [{_v(b <= 1.5)}], "
                     f"{rss:.0f} MB [{_v(rss < 150)}]")
    wall, rss = best("verify_file")
    r = wall / ossl_f
    cap = 1.1 * file_mb + 150
    print(f"{'registry verify --file FILE (single file)':<46} {wall:7.2f} s   RSS {rss:7.1f} MB   {r:.2f}x openssl "
          f"(target <= 2), RSS target <= {cap:.0f} MB (1.1x file + 150)")
    lines.append(f"single-file verify: {r:.2f}x openssl [{_v(r <= 2)}], {rss:.0f} MB [{_v(rss <= cap)}]")
    _o, ort_rss = best("ort_path")
    _l, lv_rss = best("load_verified")
    print(f"{'onnxruntime.InferenceSession(DIR/model.onnx)':<46} {_o:7.2f} s   RSS {ort_rss:7.1f} MB")
    print(f"{'registry.load_verified(REF, file=DIR)':<46} {_l:7.2f} s   RSS {lv_rss:7.1f} MB   "
          f"{lv_rss / ort_rss:.2f}x (target <= 1.25)")
    lines.append(f"load_verified dir: {lv_rss / ort_rss:.2f}x InferenceSession RSS [{_v(lv_rss / ort_rss <= 1.25)}]")
    _o2, ort_rss2 = best("ort_path_file")
    _l2, lv_rss2 = best("load_verified_file")
    print(f"{'onnxruntime.InferenceSession(FILE)':<46} {_o2:7.2f} s   RSS {ort_rss2:7.1f} MB")
    print(f"{'registry.load_verified(REF, file=FILE)':<46} {_l2:7.2f} s   RSS {lv_rss2:7.1f} MB   "
          f"{lv_rss2 / ort_rss2:.2f}x")
    lines.append(f"load_verified single file: {lv_rss2 / ort_rss2:.2f}x InferenceSession RSS (no target)")
    wall, rss = best("pull_dir")
    r = wall / ossl
    print(f"{'registry pull (local store, directory)':<46} {wall:7.2f} s   RSS {rss:7.1f} MB   {r:.2f}x openssl "
          "(target <= 2), RSS target < 150 MB")
    lines.append(f"pull: {r:.2f}x openssl [{_v(r <= 2)}], {rss:.0f} MB [{_v(rss < 150)}]")
    print(small_line[0])
    lines.append(small_line[1])
    print("\nsummary: " + "; ".join(lines))


def _v(ok: bool) -> str:
    return "met" if ok else "MISSED"


def small_verify(work: Path, client: object, settings: object, version: str, env: dict[str, str]) -> tuple[str, str]:
    """Fresh-process online verify of a small model: median of 5, and which heavy modules were imported."""
    import warnings

    from registry.publish import publish_model

    small = work / "small" / "model.onnx"
    small.parent.mkdir(parents=True, exist_ok=True)
    small_onnx(small)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pub = publish_model(small, "bench/small", version, settings=settings, client=client)
    probe = ("import sys, time, json; t = time.perf_counter(); import registry.verify; "
             f"r = registry.verify.verify({pub.record.ref!r}, file={str(small)!r}, "
             f"manifest={str(pub.manifest_path)!r}); assert r.ok, r.to_json(); "
             "heavy = [m for m in ('torch', 'web3', 'py_ecc', 'eth_account', 'onnxruntime', 'onnx') if m in sys.modules]; "
             "print(json.dumps({'s': time.perf_counter() - t, 'heavy': heavy}))")
    times, heavy = [], []
    for _ in range(5):
        out = subprocess.run([PY, "-c", probe], capture_output=True, text=True, cwd=ROOT, env=env)
        if out.returncode != 0:
            raise SystemExit(out.stderr[-2000:])
        doc = json.loads(out.stdout.strip().splitlines()[-1])
        times.append(doc["s"])
        heavy = doc["heavy"]
    med = statistics.median(times)
    line = (f"{'small model: fresh-process online verify':<46} {med:7.3f} s (median of 5, target < 0.7)   "
            f"heavy modules imported: {', '.join(heavy) or 'none'} (torch, web3, py_ecc must stay out)")
    ok = med < 0.7 and not {"torch", "web3", "py_ecc"} & set(heavy)
    return line, f"cold verify: {med:.2f} s, imported {heavy} [{_v(ok)}]"


if __name__ == "__main__":
    main()
