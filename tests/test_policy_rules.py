"""Policy files key by key: what each accepts at its limits, what it refuses, and SemVer precedence
as the rollback rule uses it. A policy is the operator's word: a rule that silently reads as
something else (a boolean as a number, an empty op name, a pre-release as newer) is a hole."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.errors import InputError
from registry.policy import Policy, load_policy, parse_policy, version_key

ADDR = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
OTHER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def test_every_key_reaches_the_policy() -> None:
    policy = parse_policy({
        "trusted_publishers": [ADDR.lower()], "min_confirmations": 3, "max_artifact_size": 0, "chain_id": 1,
        "max_alloc_elements": 7, "allowed_ops": ["Gemm"], "allowed_domains": [], "allow_unbounded_ops": ["Tile"],
        "opset": [11, 11], "min_accuracy": 0, "refuse_rollback": False, "offline": True,
        "contract": OTHER.lower(), "attestations": {"required": 2, "attesters": [ADDR, OTHER]},
    })
    assert policy == Policy(
        trusted_publishers=(ADDR,), min_confirmations=3, max_artifact_size=0, chain_id=1, max_alloc_elements=7,
        allowed_ops=frozenset({"Gemm"}), allowed_domains=frozenset(), allow_unbounded_ops=frozenset({"Tile"}),
        opset_min=11, opset_max=11, min_accuracy=0.0, refuse_rollback=False, offline=True, contract=OTHER,
        required_attestations=2, attesters=(ADDR, OTHER),
    )
    assert isinstance(policy.min_accuracy, float)


def test_an_empty_policy_is_the_defaults() -> None:
    assert parse_policy({}) == Policy()
    assert not Policy().has_rules


@pytest.mark.parametrize("rule", [
    {"required_attestations": 1, "attesters": (ADDR,)},
    {"min_accuracy": 0.0},
    {"refuse_rollback": True},
    {"min_confirmations": 1},
])
def test_each_chain_or_provenance_rule_alone_switches_the_policy_check_on(rule: dict) -> None:
    assert Policy(**rule).has_rules


@pytest.mark.parametrize("key", ["min_confirmations", "max_artifact_size", "chain_id", "max_alloc_elements"])
@pytest.mark.parametrize("value", [True, False, -1, 1.5, "3"])
def test_integer_keys_refuse_what_is_not_a_non_negative_integer(key: str, value: object) -> None:
    with pytest.raises(InputError, match=f"{key} must be a non-negative integer"):
        parse_policy({key: value})


@pytest.mark.parametrize("key", ["min_confirmations", "max_artifact_size", "chain_id", "max_alloc_elements"])
def test_integer_keys_accept_zero(key: str) -> None:
    assert getattr(parse_policy({key: 0}), key) == 0


@pytest.mark.parametrize("ops", ["Gemm", ["Gemm", ""], ["Gemm", 3], [None]])
def test_allowed_ops_must_be_op_names(ops: object) -> None:
    with pytest.raises(InputError, match="allowed_ops must be a list of op type names"):
        parse_policy({"allowed_ops": ops})


@pytest.mark.parametrize("key", ["allowed_domains", "allow_unbounded_ops"])
@pytest.mark.parametrize("items", ["com.acme", ["com.acme", 1], [["x"]]])
def test_string_list_keys_refuse_anything_else(key: str, items: object) -> None:
    with pytest.raises(InputError, match=f"{key} must be a list of strings"):
        parse_policy({key: items})


@pytest.mark.parametrize("rng", [[7], [7, 8, 9], "7-18", {"min": 7}])
def test_opset_must_be_a_pair(rng: object) -> None:
    with pytest.raises(InputError, match=r"opset must be \[min, max\]"):
        parse_policy({"opset": rng})


@pytest.mark.parametrize("rng", [[-1, 5], [7, True]])
def test_opset_bounds_are_non_negative_integers(rng: list) -> None:
    with pytest.raises(InputError, match="opset must be a non-negative integer"):
        parse_policy({"opset": rng})


@pytest.mark.parametrize("acc", [0, 1, 0.5])
def test_min_accuracy_accepts_the_closed_unit_interval(acc: float) -> None:
    assert parse_policy({"min_accuracy": acc}).min_accuracy == acc


@pytest.mark.parametrize("acc", [-0.01, 1.01, True, "0.9", None])
def test_min_accuracy_refuses_the_rest(acc: object) -> None:
    with pytest.raises(InputError, match=r"min_accuracy must be a number in \[0, 1\]"):
        parse_policy({"min_accuracy": acc})


@pytest.mark.parametrize("key", ["refuse_rollback", "offline"])
@pytest.mark.parametrize("value", [1, 0, "true", None])
def test_switches_must_be_booleans(key: str, value: object) -> None:
    with pytest.raises(InputError, match=f"{key} must be true or false"):
        parse_policy({key: value})


def test_contract_is_one_checksummed_address() -> None:
    assert parse_policy({"contract": ADDR.lower()}).contract == ADDR
    for bad in ("0x12", [ADDR], 5):
        with pytest.raises(InputError, match="contract must be a list of 0x-prefixed 20-byte addresses"):
            parse_policy({"contract": bad})


@pytest.mark.parametrize("table", [["required"], {"required": 1, "attesters": [ADDR], "quorum": 1}])
def test_attestations_table_takes_only_its_two_keys(table: object) -> None:
    with pytest.raises(InputError, match=r"\[attestations\] takes only 'required' and 'attesters'"):
        parse_policy({"attestations": table})


def test_attestations_default_to_none_required_and_may_require_all_listed() -> None:
    assert parse_policy({"attestations": {}}) == Policy()
    full = parse_policy({"attestations": {"required": 2, "attesters": [ADDR, OTHER]}})
    assert (full.required_attestations, full.attesters) == (2, (ADDR, OTHER))
    listed = parse_policy({"attestations": {"attesters": [ADDR]}})
    assert (listed.required_attestations, listed.attesters) == (0, (ADDR,))
    with pytest.raises(InputError, match="attestations.required=3 but only 2 attesters are listed"):
        parse_policy({"attestations": {"required": 3, "attesters": [ADDR, OTHER]}})


def test_errors_name_the_policy_file(tmp_path: Path) -> None:
    path = tmp_path / "device.toml"
    path.write_text("min_confirmations = -2\n")
    with pytest.raises(InputError, match="^policy device.toml: min_confirmations"):
        load_policy(path)
    path.write_text("x = " + "9" * 5000 + "\n")  # Python refuses to build such an int: still one clean line
    with pytest.raises(InputError, match="is not valid TOML"):
        load_policy(path)
    path.write_bytes(b"\xff\xfe = 1\n")
    with pytest.raises(InputError, match="is not valid TOML"):
        load_policy(path)


# ------------------------------------------------------------------------------------------
# SemVer precedence (semver.org section 11), as the rollback rule compares versions
# ------------------------------------------------------------------------------------------


def test_precedence_follows_semver() -> None:
    ordered = ["0.9.9", "1.0.0-0", "1.0.0-2", "1.0.0-10", "1.0.0-a", "1.0.0-alpha", "1.0.0-alpha.1",
               "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0",
               "1.0.1-alpha", "1.0.1", "1.2.0", "1.10.0", "2.0.0-rc.1", "2.0.0", "10.0.0"]
    for older, newer in zip(ordered, ordered[1:]):
        assert version_key(older) < version_key(newer), (older, newer)


def test_build_metadata_does_not_change_precedence() -> None:
    assert version_key("1.2.3+build.7") == version_key("1.2.3") == version_key("1.2.3+other")
    assert version_key("1.2.3-rc.1+b") == version_key("1.2.3-rc.1")
    # A '-' inside build metadata is not a pre-release marker.
    assert version_key("1.2.3+build-5") == version_key("1.2.3")


def test_numeric_identifiers_compare_as_numbers_and_before_letters() -> None:
    assert version_key("1.0.0-rc.9") < version_key("1.0.0-rc.10")
    assert version_key("1.0.0-99") < version_key("1.0.0-rc")
    assert version_key("1.0.0-alpha.99") < version_key("1.0.0-alpha.a")


def test_a_policy_path_that_is_no_file_is_refused_as_a_policy(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    with pytest.raises(InputError, match=r"^policy .*x"):
        load_policy(tmp_path / "x")


@pytest.mark.parametrize("raw,named", [
    ({"trusted_publishers": ["0x12"]}, "trusted_publishers must be a list"),
    ({"attestations": {"required": -1, "attesters": []}}, "attestations.required must be a non-negative integer"),
    ({"attestations": {"required": 1, "attesters": "0xabc"}}, "attestations.attesters must be a list"),
])
def test_each_bad_key_is_named_in_the_policy_error(raw, named) -> None:
    with pytest.raises(InputError) as info:
        parse_policy(raw)
    assert str(info.value).startswith("policy: ") and named in str(info.value)
