"""CID + SHA-256 of a large file in one pass, against ``sha256sum`` on the same file, in the same run.

Prints, for each UnixFS profile:
  (a) our wall time / ``sha256sum`` wall time          (target <= 1.25)
  (b) peak RSS of the process that computed our CID    (target < 150 MB)
  (c) npm ``ipfs-unixfs-importer`` wall time / ``sha256sum`` (for comparison), and that its CID equals ours
plus a single-threaded ``hashlib.sha256`` pass as a second baseline. Every tool runs in its own
child process (so the bench's own memory does not count), the file is read once beforehand so
every run sees a warm page cache, and each figure is the best of ``--repeat`` runs.

    .venv/bin/python bench/cid.py                    # 1 GiB random file in /tmp, deleted afterwards
    .venv/bin/python bench/cid.py --size-mib 256 --profiles kubo-v0,kubo-v1,unixfs-v1-2025
    .venv/bin/python bench/cid.py --file model.onnx
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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


def timed(cmd: list[str]) -> tuple[float, str]:
    t = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=REPO).stdout
    return time.perf_counter() - t, out


def best(cmd: list[str], repeat: int) -> tuple[float, list[float], str]:
    runs = []
    out = ""
    for _ in range(repeat):
        elapsed, out = timed(cmd)
        runs.append(elapsed)
    return min(runs), runs, out


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


def main() -> None:
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
        print(f"file {path} ({size} bytes = {size / 2**30:.3f} GiB); cpus {os.cpu_count()}; "
              f"load average {os.getloadavg()[0]:.2f}; best of {args.repeat}")
        base, base_runs, base_out = best(["sha256sum", str(path)], args.repeat)
        expected_sha = base_out.split()[0]
        print(f"sha256sum                 {base:7.3f} s   runs {['%.3f' % r for r in base_runs]}")
        hl, hl_runs, hl_out = best([PY, "-c", HASHLIB_CHILD, str(path)], args.repeat)
        assert json.loads(hl_out)["sha256"] == expected_sha
        print(f"python hashlib (1 thread) {hl:7.3f} s   ratio {hl / base:5.2f}")
        summary = []
        npm = not args.no_npm and shutil.which("node") and (REPO / "node_modules" / "ipfs-unixfs-importer").is_dir()
        for profile in args.profiles.split(","):
            runs = []
            result = {}
            for _ in range(args.repeat):
                elapsed, out = timed([PY, "-c", OUR_CHILD, str(path), profile])
                result = json.loads(out)
                runs.append((elapsed, result["inner_s"], result["maxrss_kb"]))
            ours = min(r[0] for r in runs)
            inner = min(r[1] for r in runs)
            rss_mb = max(r[2] for r in runs) / 1024
            if result["sha256"] != expected_sha or result["size"] != size:
                raise SystemExit(f"MISMATCH: our SHA-256/size disagree with sha256sum for {profile}")
            ratio = ours / base
            print(f"[{profile}] ours (CID+SHA-256)  {ours:7.3f} s   (in-process {inner:.3f} s)   "
                  f"(a) ratio {ratio:5.2f} (target <= 1.25)   (b) peak RSS {rss_mb:6.1f} MB (target < 150)   "
                  f"vs hashlib-alone {ours / hl:4.2f}")
            print(f"[{profile}]   cid {result['cid']}")
            line = f"{profile}: (a) {ratio:.2f}x sha256sum, (b) {rss_mb:.0f} MB"
            if npm:
                js, js_runs, js_out = best(["node", "scripts/js/unixfs-cid.mjs", "--file", str(path), "--profile", profile],
                                           args.repeat)
                same = js_out.strip() == result["cid"]
                print(f"[{profile}] npm ipfs-unixfs-importer {js:7.3f} s   (c) ratio {js / base:5.2f}   "
                      f"same CID: {same}")
                if not same:
                    raise SystemExit(f"MISMATCH: npm importer gives {js_out.strip()} for {profile}")
                line += f", (c) npm {js / base:.2f}x"
            summary.append(line)
        print("summary: " + "; ".join(summary))
    finally:
        if created is not None:
            created.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
