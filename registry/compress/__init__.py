"""Compression: PyTorch model -> pruned / distilled / quantized ONNX with provenance and a report.

Modules (one idea each): data (validated .npz splits), digits (example splits), zoo (example
models), models (factory + state dict loading), train (deterministic training), prune, distill,
export (pinned TorchScript exporter + parity), quantize (onnxruntime INT8/FP16/mixed), evaluate
(metrics and latency), recipe (TOML validation), pipeline (one run, atomic outputs), report,
reproduce. Importing this package imports nothing heavy; torch is needed only by the modules that
train or export. Nothing in verify/content/chain imports this package (devices have no torch).
"""
