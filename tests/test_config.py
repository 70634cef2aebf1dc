"""Profiles and settings: env overrides, bad files, atomic writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.config import LOCAL, Profile, data_dir, load_settings, read_profiles, write_profile
from registry.errors import InputError


def test_data_dir_prefers_registry_home_then_xdg(tmp_path: Path) -> None:
    assert data_dir({"REGISTRY_HOME": str(tmp_path / "h"), "XDG_DATA_HOME": "/x"}) == tmp_path / "h"
    assert data_dir({"XDG_DATA_HOME": str(tmp_path)}) == tmp_path / "registry"
    assert data_dir({}) == Path.home() / ".local" / "share" / "registry"


def test_default_profile_is_the_embedded_local_one(tmp_path: Path) -> None:
    settings = load_settings(env={"REGISTRY_HOME": str(tmp_path)})
    assert settings.profile == Profile()
    assert settings.profile.is_local
    assert settings.blocks_dir == tmp_path / "blocks"
    assert settings.private_key_env is None


def test_written_profile_round_trips_and_is_selected_by_env(tmp_path: Path) -> None:
    prof = Profile(name="sepolia", rpc_url="https://rpc.example", chain_id=11155111,
                   contract="0x" + "11" * 20, confirmations=2)
    write_profile(tmp_path, prof)
    assert read_profiles(tmp_path)["sepolia"] == prof
    settings = load_settings(env={"REGISTRY_HOME": str(tmp_path), "REGISTRY_PROFILE": "sepolia"})
    assert settings.profile == prof
    assert not settings.profile.is_local
    assert not list(tmp_path.glob("*.tmp")), "atomic write leaves no temp file"


def test_env_overrides_profile_fields(tmp_path: Path) -> None:
    env = {
        "REGISTRY_HOME": str(tmp_path),
        "REGISTRY_RPC_URL": "http://127.0.0.1:9",
        "REGISTRY_CHAIN_ID": "5",
        "REGISTRY_CONFIRMATIONS": "3",
        "REGISTRY_IPFS_API": "http://127.0.0.1:5001",
        "REGISTRY_PRIVATE_KEY": "0x" + "ab" * 32,
    }
    settings = load_settings(env=env)
    assert settings.profile.rpc_url == "http://127.0.0.1:9"
    assert settings.profile.chain_id == 5
    assert settings.profile.confirmations == 3
    assert settings.profile.store == "kubo:http://127.0.0.1:5001"
    assert "ab" * 32 not in repr(settings), "the private key never appears in a repr"


def test_unknown_profile_and_bad_numbers_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown profile 'nope'"):
        load_settings("nope", env={"REGISTRY_HOME": str(tmp_path)})
    with pytest.raises(InputError, match="REGISTRY_"):
        load_settings(env={"REGISTRY_HOME": str(tmp_path), "REGISTRY_CHAIN_ID": "abc"})


@pytest.mark.parametrize(
    "text, message",
    [
        ("profiles = [", "cannot read"),
        ("[profiles]\nx = 3\n", "is not a table"),
        ("[profiles.x]\nrpc = 'http://a'\n", "unknown keys"),
    ],
)
def test_malformed_profiles_file_is_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "profiles.toml").write_text(text)
    with pytest.raises(InputError, match=message):
        read_profiles(tmp_path)


def test_local_profile_is_always_available(tmp_path: Path) -> None:
    write_profile(tmp_path, Profile(name="other", rpc_url="http://x", chain_id=1, contract="0x" + "00" * 20))
    assert LOCAL in read_profiles(tmp_path)
