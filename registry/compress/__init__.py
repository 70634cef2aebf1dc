"""Compression: a PyTorch model, a Hugging Face directory or any ONNX file -> a smaller ONNX model
with provenance and a report.

Modules (one idea each): data (validated .npz / JSON Lines splits), signature (inputs and outputs by
name, dtype and shape; binding data to them), hf (Transformers directories and tokenizers, offline),
inputs (loading and cross-checking everything a run reads), models (factory + state dict), train
(deterministic training, noise augmentation), prune (unstructured masks; structured pruning with
torch-pruning), distill, robust (FGSM/PGD), export (pinned TorchScript exporter + multi-shape parity),
quantize (onnxruntime INT8/FP16/INT4), mixed (sensitivity-ranked mixed precision), evaluate (metrics),
latency (interleaved timing), targets (metric names, units, targets), recipe (TOML validation),
runner (the steps), pipeline (one run, atomic outputs, provenance), report, reproduce, and example
data (digits, sentences, zoo, examples). Importing this package imports nothing heavy; torch is
needed only by the modules that train or export. Nothing in verify/content/chain imports this
package (devices have no torch).
"""
