"""Adversarial robustness of a classifier: FGSM (Goodfellow et al. 2015) and PGD (Madry et al. 2018).

Measured on the evaluation split at the recipe's epsilon (an L-infinity bound on the input change):

* ``accuracy_under_attack``: top-1 accuracy on the perturbed inputs;
* ``attack_success_rate``: among samples the model classified correctly, the share the attack flips.

A PyTorch model is attacked white-box (gradients of its own loss). An ONNX variant (quantized) has no
gradients, so it is attacked by transfer: the examples crafted on the last floating-point PyTorch
model are fed to it, and the report says so. Only float inputs can be perturbed; token ids cannot.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.nn import functional as F


def craft(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, cfg: dict[str, Any]) -> np.ndarray:
    """Adversarial inputs within ``epsilon`` of ``x`` (clipped to [clip_min, clip_max] when given)."""
    eps = float(cfg["epsilon"])
    steps = 1 if cfg["attack"] == "fgsm" else int(cfg["steps"])
    alpha = eps if cfg["attack"] == "fgsm" else float(cfg.get("step_size") or 2.5 * eps / steps)
    lo, hi = cfg.get("clip_min"), cfg.get("clip_max")
    model.eval()
    x0 = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    target = torch.from_numpy(np.ascontiguousarray(y)).long()
    adv = x0.clone()
    for _ in range(steps):
        adv.requires_grad_(True)
        loss = F.cross_entropy(model(adv), target)
        grad, = torch.autograd.grad(loss, adv)
        with torch.no_grad():
            adv = adv + alpha * grad.sign()
            adv = torch.max(torch.min(adv, x0 + eps), x0 - eps)
            if lo is not None or hi is not None:
                adv = adv.clamp(min=lo, max=hi)
        adv = adv.detach()
    return adv.numpy()


def scores(clean_logits: np.ndarray, adv_logits: np.ndarray, y: np.ndarray, cfg: dict[str, Any],
           source: str) -> dict[str, Any]:
    clean = clean_logits.argmax(1) == y
    adv = adv_logits.argmax(1) == y
    flipped = clean & ~adv
    return {"attack": cfg["attack"], "epsilon": float(cfg["epsilon"]),
            **({"steps": int(cfg["steps"])} if cfg["attack"] == "pgd" else {}),
            "accuracy_clean": float(np.mean(clean)), "accuracy_under_attack": float(np.mean(adv)),
            "attack_success_rate": float(flipped.sum() / max(1, clean.sum())), "samples": int(y.shape[0]),
            "source": source}


def sample(x: np.ndarray, y: np.ndarray, cfg: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    n = int(cfg.get("samples") or 0)
    return (x[:n], y[:n]) if 0 < n < x.shape[0] else (x, y)
