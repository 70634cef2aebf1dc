"""registry.keys: keystores, signer order, secrets never shown, dev key only on the local chain."""

from __future__ import annotations

import json
import stat
import warnings

import pytest
from eth_account import Account

from registry.config import Profile, load_settings, write_profile
from registry.errors import InputError, KeyAccessError
from registry.keys import (
    DEV_KEY_0,
    WELL_KNOWN_DEV_ADDRESSES,
    DevKeyWarning,
    import_key,
    list_keys,
    load_signer,
    new_key,
    resolve_signer,
)

FAST = 16  # scrypt n for tests only; real keystores use eth-account's default
KEY_1 = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"


def remote_settings(home, monkeypatch, name: str = "testnet"):
    write_profile(home, Profile(name=name, rpc_url="http://127.0.0.1:1", chain_id=5, contract="0x" + "11" * 20))
    return load_settings(name)


def test_new_key_is_encrypted_private_and_listed(registry_home) -> None:
    settings = load_settings()
    info = new_key(settings, "correct horse", iterations=FAST)
    assert info.path.parent == settings.keystore_dir
    assert stat.S_IMODE(info.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(settings.keystore_dir.stat().st_mode) == 0o700
    keyfile = json.loads(info.path.read_text())
    assert keyfile["crypto"]["kdf"] == "scrypt"
    assert list_keys(settings) == [info]
    assert not list(settings.keystore_dir.glob("*.tmp"))
    account = load_signer(settings, password="correct horse")
    assert account.address == info.address


def test_default_work_factor_is_not_lowered(registry_home) -> None:
    info = import_key(load_settings(), KEY_1, "pw")
    assert json.loads(info.path.read_text())["crypto"]["kdfparams"]["n"] >= 2**17


def test_import_round_trip_and_duplicates(registry_home) -> None:
    settings = load_settings()
    info = import_key(settings, KEY_1, "pw", iterations=FAST)
    assert info.address == Account.from_key(KEY_1).address
    assert KEY_1[2:] not in info.path.read_text()
    with pytest.raises(InputError, match="already in the keystore"):
        import_key(settings, KEY_1, "pw", iterations=FAST)
    with pytest.raises(InputError, match="empty password"):
        new_key(settings, "", iterations=FAST)


def test_import_garbage_does_not_echo_it(registry_home) -> None:
    secret_garbage = "0xdeadbeefnotakey" + "7" * 30
    with pytest.raises(KeyAccessError) as info:
        import_key(load_settings(), secret_garbage, "pw", iterations=FAST)
    assert "deadbeef" not in str(info.value) and "7777" not in str(info.value)


def test_wrong_password(registry_home) -> None:
    settings = load_settings()
    info = new_key(settings, "right", iterations=FAST)
    with pytest.raises(KeyAccessError, match=f"wrong password for keystore {info.address}"):
        load_signer(settings, password="wrong")


def test_password_from_env_and_locked_without_one(registry_home, monkeypatch) -> None:
    settings = load_settings()
    info = new_key(settings, "envpw", iterations=FAST)
    with pytest.raises(KeyAccessError, match="is locked"):
        resolve_signer(settings)
    assert resolve_signer(settings, prompt=lambda _label: "envpw").address == info.address
    monkeypatch.setenv("REGISTRY_KEYSTORE_PASSWORD", "envpw")
    assert load_signer(settings).address == info.address


def test_several_keys_need_an_account(registry_home, monkeypatch) -> None:
    settings = load_settings()
    a = new_key(settings, "pw", iterations=FAST)
    b = new_key(settings, "pw", iterations=FAST)
    with pytest.raises(KeyAccessError, match="choose one with --account"):
        load_signer(settings, password="pw")
    assert load_signer(settings, account=b.address.lower(), password="pw").address == b.address
    assert load_signer(settings, account=a.address, password="pw").address == a.address
    with pytest.raises(KeyAccessError, match="no keystore for"):
        load_signer(settings, account=Account.create().address, password="pw")
    with pytest.raises(InputError):
        load_signer(settings, account="not-an-address", password="pw")


def test_corrupt_keystore_file(registry_home) -> None:
    settings = load_settings()
    info = new_key(settings, "pw", iterations=FAST)
    data = json.loads(info.path.read_text())
    data["crypto"]["ciphertext"] = "00" * 32
    info.path.write_text(json.dumps(data))
    with pytest.raises(KeyAccessError, match="wrong password"):  # MAC mismatch: tampered or wrong password
        load_signer(settings, password="pw")


def test_env_key_first_and_never_shown(registry_home, monkeypatch) -> None:
    secret = Account.create()
    hex_key = "0x" + bytes(secret.key).hex()
    monkeypatch.setenv("REGISTRY_PRIVATE_KEY", hex_key)
    settings = load_settings()
    new_key(settings, "pw", iterations=FAST)  # a keystore exists, the env key still wins
    signer = resolve_signer(settings)
    assert signer.source == "env" and signer.address == secret.address
    for shown in (repr(settings), str(settings), repr(signer), str(signer)):
        assert hex_key[2:] not in shown and hex_key[2:].upper() not in shown


def test_bad_env_key_not_echoed(registry_home, monkeypatch) -> None:
    monkeypatch.setenv("REGISTRY_PRIVATE_KEY", "0x1234secretish")
    with pytest.raises(KeyAccessError, match="REGISTRY_PRIVATE_KEY is not a valid private key") as info:
        load_signer(load_settings())
    assert "secretish" not in str(info.value)


def test_dev_key_on_local_with_warning(registry_home) -> None:
    signer = resolve_signer(load_settings())
    assert signer.source == "dev" and signer.address == Account.from_key(DEV_KEY_0).address
    assert signer.warning and "well-known" in signer.warning
    with pytest.warns(DevKeyWarning):
        load_signer(load_settings())


def test_dev_key_refused_off_local(registry_home, monkeypatch) -> None:
    settings = remote_settings(registry_home, monkeypatch)
    with pytest.raises(KeyAccessError, match="no signing key for profile 'testnet'"):
        load_signer(settings)
    monkeypatch.setenv("REGISTRY_PRIVATE_KEY", DEV_KEY_0)
    with pytest.raises(KeyAccessError, match="refusing anvil's well-known dev account"):
        load_signer(load_settings("testnet"))
    monkeypatch.setenv("REGISTRY_PRIVATE_KEY", KEY_1)  # dev account #1: also public
    with pytest.raises(KeyAccessError, match="well-known"):
        load_signer(load_settings("testnet"))
    monkeypatch.delenv("REGISTRY_PRIVATE_KEY")
    import_key(settings, DEV_KEY_0, "pw", iterations=FAST)  # smuggled in via a keystore
    with pytest.raises(KeyAccessError, match="well-known"):
        load_signer(load_settings("testnet"), password="pw")


def test_own_key_works_off_local(registry_home, monkeypatch) -> None:
    settings = remote_settings(registry_home, monkeypatch)
    info = new_key(settings, "pw", iterations=FAST)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_signer(settings, password="pw").address == info.address
    assert info.address not in WELL_KNOWN_DEV_ADDRESSES


def test_well_known_addresses_match_the_mnemonic(dev_accounts) -> None:
    assert {a.address for a in dev_accounts} == WELL_KNOWN_DEV_ADDRESSES
    assert dev_accounts[0].key == Account.from_key(DEV_KEY_0).key


def test_oracle_key_env_refuses_well_known_keys_off_local(registry_home, monkeypatch, tmp_path) -> None:
    """`oracle run --key-env` once submitted a round on a remote profile with anvil key #1."""
    import os
    import subprocess
    import sys

    remote_settings(registry_home, monkeypatch)
    series = tmp_path / "series.csv"
    series.write_text("1\n2\n3\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    env.update(REGISTRY_HOME=str(registry_home), NODE_KEY=KEY_1)
    cmd = [sys.executable, "-c", "from registry.cli import main; main()", "oracle", "run", "--model", "acme/m",
           "--feed", "0x" + "22" * 20, "--input", str(series), "--key-env", "NODE_KEY", "--profile", "testnet",
           "--rounds", "1"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == KeyAccessError.exit_code, out.stderr
    assert "well-known" in out.stderr and KEY_1[2:] not in out.stderr + out.stdout


def test_signer_from_env_var(registry_home, monkeypatch) -> None:
    from registry.keys import signer_from_env_var

    settings = remote_settings(registry_home, monkeypatch)
    monkeypatch.setenv("NODE_KEY", DEV_KEY_0)
    with pytest.raises(KeyAccessError, match="well-known"):
        signer_from_env_var(settings, "NODE_KEY")
    own = Account.create()
    monkeypatch.setenv("NODE_KEY", own.key.hex())
    assert signer_from_env_var(settings, "NODE_KEY").address == own.address
    monkeypatch.setenv("NODE_KEY", "zz-not-a-key")
    with pytest.raises(KeyAccessError) as info:
        signer_from_env_var(settings, "NODE_KEY")
    assert "zz-not-a-key" not in str(info.value)
    monkeypatch.setenv("NODE_KEY", DEV_KEY_0)
    assert signer_from_env_var(load_settings("local"), "NODE_KEY").warning  # allowed locally, loudly


def test_fifo_in_the_keystore_is_skipped_not_waited_on(registry_home) -> None:
    import os

    settings = load_settings()
    settings.keystore_dir.mkdir(parents=True, exist_ok=True)
    os.mkfifo(settings.keystore_dir / "0xtrap.json")
    assert list_keys(settings) == []
