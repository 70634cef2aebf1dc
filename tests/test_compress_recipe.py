"""Recipe validation: everything wrong is an InputError before any work starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry.compress.recipe import STEP_TYPES, load_recipe, parse_recipe
from registry.errors import InputError


def test_defaults_are_filled_and_export_is_implicit() -> None:
    r = parse_recipe({"steps": [{"type": "prune", "amount": 0.5}, {"type": "quantize"}]})
    assert [s.type for s in r.steps] == ["prune", "export", "quantize"]
    assert r.steps[0].params["scope"] == "global" and r.steps[0].params["iterations"] == 1
    assert r.steps[2].params == {"mode": "static", "calibration": "minmax", "per_channel": True}
    # to_dict round-trips to the same recipe (reproduce relies on this)
    assert parse_recipe(r.to_dict()).to_dict() == r.to_dict()


@pytest.mark.parametrize(("raw", "needle"), [
    ({"steps": [{"type": "shrink"}]}, "unknown step 'shrink'"),
    ({"steps": [{"type": "prune"}]}, "missing required parameter 'amount'"),
    ({"steps": [{"type": "prune", "amount": 1.5}]}, "out of range"),
    ({"steps": [{"type": "prune", "amount": -0.1}]}, "out of range"),
    ({"steps": [{"type": "prune", "method": "percentile", "amount": 120}]}, "out of range"),
    ({"steps": [{"type": "prune", "amount": 0.5, "colour": "red"}]}, "unknown parameter(s) colour"),
    ({"steps": [{"type": "structured_prune", "ratio": 1.0}]}, "out of range"),
    ({"steps": [{"type": "distill", "student": "nocolon"}]}, "out of range"),
    ({"steps": [{"type": "distill", "student": "a:b", "temperature": 0}]}, "temperature"),
    ({"steps": [{"type": "quantize", "mode": "int3"}]}, "mode"),
    ({"steps": [{"type": "quantize", "mode": "dynamic", "block_size": 32}]}, "do not apply to mode 'dynamic'"),
    ({"steps": [{"type": "quantize", "mode": "int4", "block_size": 48}]}, "block_size"),
    ({"steps": [{"type": "quantize", "mode": "int4", "method": "gptq"}]}, "needs symmetric = true"),
    ({"steps": [{"type": "quantize", "mode": "mixed", "base": "fp16"}]}, "base"),
    ({"steps": [{"type": "distill", "student": "a:b", "layers": 2}]}, "not both or neither"),
    ({"steps": [{"type": "distill"}]}, "not both or neither"),
    ({"steps": [{"type": "distill", "layers": 2}]}, "needs a Transformers model"),
    ({"steps": [{"type": "finetune", "noise": "label"}]}, "noise"),
    ({"steps": [], "task": "embedding", "target": {"max_drop": 1}}, "judged by cosine"),
    ({"steps": [], "target": {"min_cosine": 0.99}}, "apply to task embedding"),
    ({"steps": [], "task": "regression", "model": {"hf": "d"}}, "supports tasks embedding and sequence"),
    ({"steps": [], "model": {"hf": "d", "onnx": "m.onnx"}}, "not onnx and hf"),
    ({"steps": [], "model": {"onnx": "m.onnx", "pooling": "max"}}, "pooling"),
    ({"steps": [], "evaluation": {"batch_sizes": [0]}}, "batch_sizes"),
    ({"steps": [], "evaluation": {"batch_sizes": "1,32"}}, "batch_sizes"),
    ({"steps": [], "robustness": {"attack": "cw"}}, "attack"),
    ({"steps": [], "robustness": {"epsilon": 0}}, "epsilon"),
    ({"steps": [], "data": {"evaluation": 3}}, "must be a path"),
    ({"steps": [], "data": {"validation": "v.npz"}}, "unknown key(s) validation"),
    ({"steps": [{"type": "quantize", "calibration": "kl"}]}, "calibration"),
    ({"steps": [{"type": "prune", "amount": 0.5, "epochs": 2.5}]}, "epochs"),
    ({"steps": [{"type": "prune", "amount": True}]}, "amount"),
    ({"steps": [{"type": "quantize"}, {"type": "prune", "amount": 0.5}]}, "step order"),
    ({"steps": [{"type": "quantize"}, {"type": "quantize", "mode": "fp16"}]}, "more than one quantize"),
    ({"steps": [{"type": "export"}, {"type": "export"}]}, "step order"),
    ({"model": {"onnx": "m.onnx"}, "steps": [{"type": "prune", "amount": 0.5}]}, "ONNX input only allows"),
    ({"steps": [], "colour": 1}, "unknown key(s) colour"),
    ({"steps": [], "task": "ranking"}, "task"),
    ({"steps": [], "target": {"max_drop": -1}}, "max_drop"),
    ({"steps": [], "evaluation": {"threads": 0}}, "threads"),
    ({"steps": "prune"}, "array of tables"),
])
def test_bad_recipes_are_rejected(raw: dict, needle: str) -> None:
    with pytest.raises(InputError) as info:
        parse_recipe(raw)
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_sparsity_amount_range(amount: float) -> None:
    raw = {"steps": [{"type": "prune", "amount": amount}]}
    if 0 <= amount < 1:
        assert parse_recipe(raw).steps[0].params["amount"] == amount
    else:
        with pytest.raises(InputError):
            parse_recipe(raw)


@given(st.sampled_from(STEP_TYPES), st.text(min_size=1, max_size=12).filter(lambda k: k != "type"))
def test_unknown_keys_never_pass_silently(step: str, key: str) -> None:
    from registry.compress.recipe import SCHEMAS

    if key in SCHEMAS[step]:
        return
    with pytest.raises(InputError):
        parse_recipe({"steps": [{"type": step, key: 1}]})


def test_toml_paths_resolve_against_the_recipe_file(tmp_path: Path) -> None:
    (tmp_path / "r.toml").write_text(
        'seed = 3\n[model]\nfactory = "m:f"\nweights = "w.pt"\n[data]\nevaluation = "d/e.npz"\n'
        '[[steps]]\ntype = "prune"\namount = 0.25\n', encoding="utf-8")
    r = load_recipe(tmp_path / "r.toml")
    assert r.seed == 3 and r.model["weights"] == str((tmp_path / "w.pt").resolve())
    assert r.data["evaluation"] == str((tmp_path / "d" / "e.npz").resolve())


def test_bad_toml_is_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "r.toml").write_text("[[steps]\ntype=", encoding="utf-8")
    with pytest.raises(InputError, match="not valid TOML"):
        load_recipe(tmp_path / "r.toml")
    with pytest.raises(InputError, match="cannot read recipe"):
        load_recipe(tmp_path / "missing.toml")


def test_shipped_example_recipe_is_valid() -> None:
    import registry.compress

    r = load_recipe(Path(registry.compress.__file__).parent / "recipes" / "digits.toml")
    assert [s.type for s in r.steps] == ["structured_prune", "export", "quantize"]
    assert r.target["max_drop"] == 1.0 and not r.model and not r.data


def test_shipped_transformer_recipe_is_valid() -> None:
    import registry.compress

    r = load_recipe(Path(registry.compress.__file__).parent / "recipes" / "sentence-embedding.toml")
    assert r.task == "embedding" and [s.type for s in r.steps] == ["export", "quantize"]
    assert r.steps[1].params["base"] == "dynamic" and r.target["min_cosine"] == 0.995
    assert r.evaluation["batch_sizes"] == [1, 32] and r.evaluation["sequence_length"] == 32
