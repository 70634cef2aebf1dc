"""Real English sentences that ship inside installed packages (nothing is downloaded).

scikit-learn's dataset descriptions (``sklearn/datasets/descr/*.rst``) and statsmodels' dataset
notes are prose written by people: a few hundred sentences about data sets, sources and methods.
They are what the transformer tests and bench/compress_transformer.py embed, split into disjoint
calibration and evaluation sets.
"""

from __future__ import annotations

import importlib
import pkgutil
import random
import re
from pathlib import Path

from registry.errors import InputError

_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_MARKUP = ("..", ":", "=", "-", "*", "+", "|", ">>>")


def _keep(sentence: str) -> bool:
    words = sentence.split()
    return (6 <= len(words) <= 60 and sentence[0].isupper() and re.search(r"[a-z]{3}", sentence) is not None
            and "::" not in sentence and "http" not in sentence and "`" not in sentence)


def _sklearn() -> list[str]:
    import sklearn

    out: list[str] = []
    for path in sorted((Path(sklearn.__file__).parent / "datasets" / "descr").glob("*.rst")):
        lines = []
        for line in path.read_text(encoding="utf-8").splitlines():
            s = line.strip()
            if not s or s.startswith(_MARKUP) or set(s) <= set("=-~^*+#|: "):
                lines.append("\n")
            else:
                lines.append(s)
        for para in " ".join(lines).split("\n"):
            out += [re.sub(r"\s+", " ", s).strip() for s in _SPLIT.split(para)]
    return out


def _statsmodels() -> list[str]:
    try:
        import statsmodels.datasets as datasets
    except ImportError:
        return []
    out: list[str] = []
    for info in pkgutil.iter_modules(datasets.__path__):
        if not info.ispkg or info.name == "tests":
            continue
        try:
            mod = importlib.import_module(f"statsmodels.datasets.{info.name}.data")
        except Exception:  # noqa: BLE001 - a broken optional dataset module just contributes nothing
            continue
        for attr in ("DESCRSHORT", "DESCRLONG", "NOTE"):
            text = re.sub(r"\s+", " ", str(getattr(mod, attr, "") or ""))
            out += [s.strip() for s in _SPLIT.split(text)]
    return out


def english_sentences() -> list[str]:
    """Unique sentences, in a fixed (sorted) order, so splits are the same on every machine."""
    found = sorted({s for s in _sklearn() + _statsmodels() if _keep(s)})
    if len(found) < 50:
        raise InputError(f"only {len(found)} sentences found in scikit-learn/statsmodels; is scikit-learn installed?")
    return found


def splits(calibration: int = 96, seed: int = 0) -> tuple[list[str], list[str]]:
    """(calibration, evaluation): disjoint, shuffled by ``seed``; evaluation gets every other sentence."""
    sentences = english_sentences()
    random.Random(seed).shuffle(sentences)
    if not 0 < calibration < len(sentences):
        raise InputError(f"calibration size {calibration} must be below the {len(sentences)} sentences available")
    return sentences[:calibration], sentences[calibration:]
