"""The chain CLI: the done-when scenario in real subprocesses, and every user error as one line + exit code."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from eth_account import Account

from registry.chain import devnet
from registry.chain.client import RegistryClient
from registry.config import load_settings
from registry.release import Release

ENTRY = "from registry.cli import main; main()"


def run(args: list[str], env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", ENTRY, *args], env=env, input=stdin, capture_output=True,
                          text=True, timeout=120)


def run_inproc(args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
               stdin: str | None = None) -> tuple[int, str, str]:
    """Runs registry.cli.main() in this process (fast); returns (exit code, stdout, stderr)."""
    import io

    from registry.cli import main

    monkeypatch.setattr(sys, "argv", ["registry", *args])
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    capsys.readouterr()
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    """The error is exactly one line (a dev-key WARNING line may precede it)."""
    lines = [line for line in err.strip().splitlines() if line.strip() and not line.startswith("WARNING: ")]
    assert len(lines) == 1, f"expected one line on stderr, got: {err!r}"
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


@pytest.fixture
def local(registry_home: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("REGISTRY_DEVNET_PORT", str(devnet.free_port()))
    settings = load_settings()
    yield settings
    devnet.stop(settings)


def cid(digest: bytes, codec: int = 0x55) -> bytes:
    return bytes([0x01, codec, 0x12, 0x20]) + digest


def publish(client: RegistryClient, signer, version: str, parent: bytes = b"\x00" * 32, name: str = "acme/demo"):
    release = Release(name=name, version=version, artifact_sha256=secrets.token_bytes(32),
                      artifact_cid=cid(secrets.token_bytes(32)), artifact_size=100,
                      provenance_sha256=secrets.token_bytes(32), provenance_cid=cid(secrets.token_bytes(32), 0x70),
                      parent=parent, deadline=2**40)
    return client.sign_and_publish(release, signer)


# ------------------------------------------------------------------------------------------
# Done-when scenario (subprocesses, like a user at a shell)
# ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_done_when_scenario_survives_restart(local) -> None:
    env = dict(os.environ)
    up = run(["chain", "up", "--json"], env)
    assert up.returncode == 0, up.stderr
    first = json.loads(up.stdout)
    assert first["started"] and first["deployed"] and first["chain_id"] == 31337

    again = run(["chain", "up", "--json"], env)  # idempotent
    assert again.returncode == 0, again.stderr
    second = json.loads(again.stdout)
    assert not second["started"] and not second["deployed"] and second["contract"] == first["contract"]

    claim = run(["namespace", "claim", "acme"], env)  # one command: commit, next block, reveal
    assert claim.returncode == 0, claim.stderr
    assert "WARNING" in claim.stderr and "well-known dev key" in claim.stderr
    assert "claimed namespace acme" in claim.stderr
    before = run(["history", "acme/demo", "--json"], env)
    assert before.returncode == 0, before.stderr
    history = json.loads(before.stdout)
    assert history["owner"] == Account.from_key(devnet.DEV_KEY_0).address and history["releases"] == []

    down = run(["chain", "down"], env)
    assert down.returncode == 0 and "stopped" in down.stderr
    assert not devnet.status(local).running
    restarted = run(["chain", "up", "--json"], env)
    assert restarted.returncode == 0, restarted.stderr
    third = json.loads(restarted.stdout)
    assert third["started"] and not third["deployed"] and third["contract"] == first["contract"]

    after = run(["history", "acme/demo", "--json"], env)
    assert after.returncode == 0, after.stderr
    assert json.loads(after.stdout) == history
    status = devnet.status(local)
    assert status.running and status.contract_deployed and status.contract == first["contract"]


# ------------------------------------------------------------------------------------------
# show / history / revoke / attest / names (in-process main() for speed)
# ------------------------------------------------------------------------------------------


def test_show_history_revoke_attest(local, dev_accounts, capsys, monkeypatch, tmp_path) -> None:
    client = RegistryClient.connect(local)
    owner = Account.from_key(devnet.DEV_KEY_0)
    client.claim_namespace("acme", owner)
    one = publish(client, owner, "1.0.0")
    two = publish(client, owner, "1.1.0", parent=one.id)

    code, out, err = run_inproc(["show", "acme/demo@1.1.0", "--json"], capsys, monkeypatch)
    assert code == 0, err
    shown = json.loads(out)
    assert shown["ref"] == "acme/demo@1.1.0" and shown["parent_ref"] == "acme/demo@1.0.0"
    assert shown["artifact_sha256"] == two.artifact_sha256.hex() and shown["attestations"] == []
    assert shown["artifact_cid"]["hex"] == "0x" + two.artifact_cid.hex()
    assert shown["revoked"] is False

    code, out, _ = run_inproc(["show", "sha256:" + one.artifact_sha256.hex(), "--json"], capsys, monkeypatch)
    assert code == 0 and [r["version"] for r in json.loads(out)] == ["1.0.0"]

    report = tmp_path / "report.txt"
    report.write_bytes(b"all checks passed\n")
    code, out, err = run_inproc(["attest", "acme/demo@1.0.0", "--pass", "--report", str(report), "--json"], capsys,
                                monkeypatch)
    assert code == 0, err
    assert json.loads(out)["report_sha256"] == hashlib.sha256(b"all checks passed\n").hexdigest()

    code, out, err = run_inproc(["revoke", "acme/demo@1.1.0", "--reason", "accuracy regression", "--json"], capsys,
                                monkeypatch)
    assert code == 0, err
    assert json.loads(out)["ref"] == "acme/demo@1.1.0"

    code, out, _ = run_inproc(["history", "acme/demo", "--json"], capsys, monkeypatch)
    releases = json.loads(out)["releases"]
    assert [(r["version"], r["revoked"], r["parent_ref"], r["latest"]) for r in releases] == [
        ("1.0.0", False, None, True),
        ("1.1.0", True, "acme/demo@1.0.0", False),
    ]
    assert releases[1]["revocation_reason"] == "accuracy regression"
    assert json.loads(out)["latest"] == "1.0.0"

    code, out, _ = run_inproc(["show", "acme/demo@latest", "--json"], capsys, monkeypatch)
    latest = json.loads(out)
    assert latest["version"] == "1.0.0"
    assert [(a["attester"], a["passed"]) for a in latest["attestations"]] == [(owner.address, True)]

    # human rendering works too and marks the revocation
    code, _, err = run_inproc(["show", "acme/demo@1.1.0"], capsys, monkeypatch)
    assert code == 0 and "REVOKED" in err and "accuracy regression" in err
    code, _, err = run_inproc(["history", "acme/demo"], capsys, monkeypatch)
    assert code == 0 and "REVOKED" in err and "1.0.0" in err

    # user text is never taken as rich markup
    three = publish(client, owner, "1.2.0")
    code, _, err = run_inproc(["revoke", "acme/demo@1.2.0", "--reason", "broken [/] [bold]x"], capsys, monkeypatch)
    assert code == 0 and "broken [/] [bold]x" in err
    code, _, err = run_inproc(["history", "acme/demo"], capsys, monkeypatch)
    assert code == 0 and "[/]" in err
    assert client.get_by_id(three.id).revocation_reason == "broken [/] [bold]x"

    # revoking again is a named revert, one line, exit 6
    code, _, err = run_inproc(["revoke", "acme/demo@1.1.0", "--reason", "again"], capsys, monkeypatch)
    assert code == 6 and "ReleaseIsRevoked(0x" in one_error_line(err)
    code, _, err = run_inproc(["attest", "acme/demo@1.0.0", "--report", str(report)], capsys, monkeypatch)
    assert code == 3 and "--pass or --fail" in one_error_line(err)
    code, _, err = run_inproc(["attest", "acme/demo@1.0.0", "--fail", "--report", str(tmp_path / "missing")], capsys,
                              monkeypatch)
    assert code == 3 and "cannot read report" in one_error_line(err)


def test_namespace_name_and_alias_commands(local, dev_accounts, capsys, monkeypatch) -> None:
    bob = dev_accounts[1]
    dev = Account.from_key(devnet.DEV_KEY_0).address
    code, out, err = run_inproc(["namespace", "claim", "acme", "--json"], capsys, monkeypatch)
    assert code == 0, err
    assert json.loads(out)["tx"]["tx_hash"].startswith("0x")
    code, _, err = run_inproc(["namespace", "claim", "acme"], capsys, monkeypatch)
    assert code == 6 and f"namespace 'acme' is already claimed by {dev}" in one_error_line(err)
    code, out, _ = run_inproc(["namespace", "show", "acme", "--json"], capsys, monkeypatch)
    assert json.loads(out) == {"namespace": "acme", "claimed": True, "owner": dev, "pending_owner": None}

    code, _, err = run_inproc(["name", "add-publisher", "acme/names", bob.address], capsys, monkeypatch)
    assert code == 0, err
    client = RegistryClient.connect(local)
    assert client.is_publisher("acme/names", bob.address)
    code, out, _ = run_inproc(["name", "show", "acme/names", "--json"], capsys, monkeypatch)
    info = json.loads(out)
    assert info["owner"] == dev and info["namespace"] == "acme" and info["publishers"] == [dev, bob.address]
    code, _, err = run_inproc(["name", "remove-publisher", "acme/names", bob.address], capsys, monkeypatch)
    assert code == 0 and not client.is_publisher("acme/names", bob.address)
    assert "no longer count" in err

    # Aliases: set by version, move (rollback), list, resolve, remove.
    owner = Account.from_key(devnet.DEV_KEY_0)
    one = publish(client, owner, "1.0.0", name="acme/names")
    two = publish(client, owner, "1.1.0", name="acme/names")
    code, out, err = run_inproc(["alias", "set", "acme/names", "production", "1.1.0", "--json"], capsys, monkeypatch)
    assert code == 0, err
    assert json.loads(out)["release"] == "acme/names@1.1.0"
    code, out, _ = run_inproc(["show", "acme/names@production", "--json"], capsys, monkeypatch)
    assert json.loads(out)["id"] == "0x" + two.id.hex()
    code, _, err = run_inproc(["alias", "set", "acme/names", "production", "acme/names@1.0.0"], capsys, monkeypatch)
    assert code == 0 and "acme/names@production -> acme/names@1.0.0" in err
    code, _, err = run_inproc(["alias", "set", "acme/names", "staging", "0x" + two.id.hex()], capsys, monkeypatch)
    assert code == 0, err
    code, out, _ = run_inproc(["alias", "list", "acme/names", "--json"], capsys, monkeypatch)
    listed = {a["alias"]: (a["version"], a["resolves"]) for a in json.loads(out)}
    assert listed == {"production": ("1.0.0", True), "staging": ("1.1.0", True)}
    code, out, _ = run_inproc(["history", "acme/names", "--json"], capsys, monkeypatch)
    assert [r["aliases"] for r in json.loads(out)["releases"]] == [["production"], ["staging"]]
    # A later revocation makes the alias an error (exit 12), never the revoked bytes.
    client.revoke(one.id, "bad", owner)
    code, _, err = run_inproc(["show", "acme/names@production"], capsys, monkeypatch)
    assert code == 12 and "points at acme/names@1.0.0, which was revoked" in one_error_line(err)
    code, out, _ = run_inproc(["alias", "list", "acme/names", "--json"], capsys, monkeypatch)
    assert {a["alias"]: a["resolves"] for a in json.loads(out)} == {"production": False, "staging": True}
    code, _, err = run_inproc(["alias", "set", "acme/names", "canary", "1.0.0"], capsys, monkeypatch)
    assert code == 6 and "ReleaseIsRevoked" in one_error_line(err)
    code, _, err = run_inproc(["alias", "set", "acme/names", "canary", "latest"], capsys, monkeypatch)
    assert code == 3 and "fixed release" in one_error_line(err)
    code, _, err = run_inproc(["alias", "rm", "acme/names", "production"], capsys, monkeypatch)
    assert code == 0, err
    code, _, err = run_inproc(["show", "acme/names@production"], capsys, monkeypatch)
    assert code == 6 and "has no alias 'production'" in one_error_line(err)

    # Namespace transfer in two steps.
    code, _, err = run_inproc(["namespace", "transfer", "acme", bob.address], capsys, monkeypatch)
    assert code == 0, err
    monkeypatch.setenv("REGISTRY_PRIVATE_KEY", "0x" + bytes(bob.key).hex())
    code, out, err = run_inproc(["namespace", "accept", "acme", "--json"], capsys, monkeypatch)
    assert code == 0, err
    assert client.name_owner("acme/names") == (bob.address, None)
    code, _, err = run_inproc(["name", "add-publisher", "acme/names", "0x1234"], capsys, monkeypatch)
    assert code == 3 and "invalid address" in one_error_line(err)

    code, out, _ = run_inproc(["name", "show", "other/unclaimed", "--json"], capsys, monkeypatch)
    assert json.loads(out)["claimed"] is False


# ------------------------------------------------------------------------------------------
# One-line errors and exit codes
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["namespace", "claim", "Acme"], "invalid namespace 'Acme'"),
        (["namespace", "claim", "acme/demo"], "invalid namespace 'acme/demo'"),
        (["alias", "set", "acme/demo", "latest", "1.0.0"], "invalid alias 'latest'"),
        (["alias", "set", "acme/demo", "Prod", "1.0.0"], "invalid alias 'Prod'"),
        (["show", "acme/demo@1.0"], "invalid version '1.0'"),
        (["show", "acme/demo@Prod"], "neither a SemVer version"),
        (["show", "acme/demo"], "expected NAME@VERSION, NAME@latest, NAME@ALIAS or sha256:HEX"),
        (["history", "no-slash"], "invalid model name"),
        (["show", "sha256:abcd"], "64 hex characters"),
    ],
)
def test_bad_syntax_fails_fast_without_a_chain(registry_home, capsys, monkeypatch, args, fragment) -> None:
    code, out, err = run_inproc(args, capsys, monkeypatch)
    assert code == 3 and fragment in one_error_line(err)
    assert not (registry_home / "chain").exists()  # nothing was started for a typo


def test_profile_errors_wrong_chain_no_contract_rpc_down(local, capsys, monkeypatch) -> None:
    info = devnet.ensure_running(local)
    code, out, err = run_inproc(["profile", "add", "wrongchain", "--rpc-url", info.rpc_url, "--chain-id", "1",
                                 "--contract", info.contract, "--json"], capsys, monkeypatch)
    assert code == 0, err
    assert json.loads(out)["chain_id"] == 1
    monkeypatch.setenv("REGISTRY_PRIVATE_KEY", "0x" + secrets.token_hex(32))
    code, _, err = run_inproc(["name", "show", "acme/x", "--profile", "wrongchain"], capsys, monkeypatch)
    assert code == 6
    assert one_error_line(err) == (
        f"error: wrong chain: profile expects chain id 1, node at {info.rpc_url} says 31337"
    )

    empty = Account.create().address
    run_inproc(["profile", "add", "nocode", "--rpc-url", info.rpc_url, "--chain-id", "31337", "--contract", empty],
               capsys, monkeypatch)
    code, _, err = run_inproc(["history", "acme/x", "--profile", "nocode"], capsys, monkeypatch)
    assert code == 6 and f"no contract at {empty}" in one_error_line(err)

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
    closed = sock.getsockname()[1]
    run_inproc(["profile", "add", "down", "--rpc-url", f"http://127.0.0.1:{closed}", "--chain-id", "31337",
                "--contract", info.contract, "--timeout", "0.5", "--retries", "1"], capsys, monkeypatch)
    code, _, err = run_inproc(["show", "acme/x@latest", "--profile", "down"], capsys, monkeypatch)
    sock.close()
    assert code == 15
    assert "did not answer after 2 attempts" in one_error_line(err)

    code, out, _ = run_inproc(["profile", "list", "--json"], capsys, monkeypatch)
    assert {p["name"] for p in json.loads(out)} == {"local", "wrongchain", "nocode", "down"}
    code, out, _ = run_inproc(["profile", "show", "down", "--json"], capsys, monkeypatch)
    assert json.loads(out)["retries"] == 1 and json.loads(out)["is_local"] is False

    # the dev key is refused on a non-local profile
    monkeypatch.delenv("REGISTRY_PRIVATE_KEY")
    monkeypatch.setenv("REGISTRY_PRIVATE_KEY", devnet.DEV_KEY_0)
    run_inproc(["profile", "add", "fake", "--rpc-url", info.rpc_url, "--chain-id", "31337", "--contract",
                info.contract], capsys, monkeypatch)
    code, _, err = run_inproc(["namespace", "claim", "acme", "--profile", "fake"], capsys, monkeypatch)
    assert code == 4 and "well-known dev account" in one_error_line(err)
    assert devnet.DEV_KEY_0[2:] not in err

    code, _, err = run_inproc(["chain", "up", "--profile", "fake"], capsys, monkeypatch)
    assert code == 3 and "only the embedded local chain" in one_error_line(err)
    for bad in (["profile", "add", "local", "--rpc-url", "http://x", "--chain-id", "1"],
                ["profile", "add", "p", "--rpc-url", "ftp://x", "--chain-id", "1"],
                ["profile", "add", "p", "--rpc-url", "http://x", "--chain-id", "1", "--contract", "0xzz"]):
        code, _, err = run_inproc(bad, capsys, monkeypatch)
        assert code == 3, bad
        one_error_line(err)


def test_keys_cli_and_wrong_password(local, capsys, monkeypatch) -> None:
    secret = Account.create()
    hex_key = "0x" + bytes(secret.key).hex()
    monkeypatch.setenv("REGISTRY_KEYSTORE_PASSWORD", "pw-one")
    code, out, err = run_inproc(["key", "import", "--json"], capsys, monkeypatch, stdin=hex_key + "\n")
    assert code == 0, err
    assert json.loads(out)["address"] == secret.address
    assert hex_key[2:] not in out + err
    code, out, _ = run_inproc(["key", "list", "--json"], capsys, monkeypatch)
    assert [k["address"] for k in json.loads(out)] == [secret.address]

    monkeypatch.setenv("REGISTRY_KEYSTORE_PASSWORD", "WRONG")
    code, _, err = run_inproc(["namespace", "claim", "locked"], capsys, monkeypatch)
    assert code == 4
    assert one_error_line(err) == f"error: wrong password for keystore {secret.address}"
    code, out, err = run_inproc(["namespace", "claim", "locked", "--json"], capsys, monkeypatch)
    assert code == 4 and json.loads(out)["kind"] == "KeyAccessError"

    monkeypatch.setenv("REGISTRY_KEYSTORE_PASSWORD", "pw-one")
    devnet.ensure_running(local)
    RegistryClient.connect(local).w3.provider.make_request("anvil_setBalance", [secret.address, hex(10**20)])
    code, out, err = run_inproc(["namespace", "claim", "locked", "--json"], capsys, monkeypatch)
    assert code == 0, err
    assert json.loads(out)["sender"] == secret.address and "WARNING" not in err

    monkeypatch.delenv("REGISTRY_KEYSTORE_PASSWORD")
    code, _, err = run_inproc(["key", "new"], capsys, monkeypatch, stdin="")
    assert code == 3 and "REGISTRY_KEYSTORE_PASSWORD" in one_error_line(err)


def test_private_key_env_never_printed(local, dev_accounts, capsys, monkeypatch) -> None:
    """With REGISTRY_PRIVATE_KEY set, neither output, errors nor reprs contain it."""
    key = "0x" + bytes(dev_accounts[3].key).hex()
    monkeypatch.setenv("REGISTRY_PRIVATE_KEY", key)
    outputs = []
    # one real subprocess: catches anything printed outside capsys' reach (logging, warnings)
    result = run(["namespace", "claim", "acme"], dict(os.environ))
    assert result.returncode == 0, result.stderr
    outputs.append(result.stdout + result.stderr)
    for args in (["namespace", "claim", "acme", "--json"], ["profile", "show", "--json"],
                 ["name", "show", "acme/secret", "--json"]):
        code, out, err = run_inproc(args, capsys, monkeypatch)
        outputs.append(out + err)
    assert "already claimed" in outputs[1]
    assert json.loads(outputs[3])["owner"] == dev_accounts[3].address
    monkeypatch.setenv("REGISTRY_PRIVATE_KEY", key[:-4] + "zzzz")
    code, out, err = run_inproc(["namespace", "claim", "other"], capsys, monkeypatch)
    assert code == 4 and "REGISTRY_PRIVATE_KEY is not a valid private key" in one_error_line(err)
    outputs.append(out + err)
    outputs.append(repr(load_settings()))
    for text in outputs:
        assert key[2:].lower() not in text.lower()
        assert key[2:20].lower() not in text.lower()


def test_help_does_not_import_web3() -> None:
    code = ("import sys; from registry.cli import app; "
            "import typer.main; typer.main.get_command(app); "
            "print('web3' in sys.modules, 'eth_account' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == "False"
