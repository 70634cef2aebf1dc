"""The lean read path (device cold start) against web3.py and eth-account on a real chain: same answers, same
digest, same signer, and none of the heavy imports."""

from __future__ import annotations

import subprocess
import sys

import pytest

from registry.chain.lean import LeanRegistry, functions
from registry.chain.lean_sig import SECP256K1_N, recover, signing_digest
from registry.errors import ChainError, SignatureError

from tests._verify_fixtures import publish_tiny


def test_views_decode_like_web3(deployed, tmp_path):
    pub = publish_tiny(deployed, tmp_path)
    rec = pub.result.record
    lean = LeanRegistry(deployed.rpc_url, deployed.address)
    contract = deployed.client.contract
    assert lean.chain_id() == deployed.chain_id
    assert lean.code_size() > 0
    assert lean.call("getRelease", rec.id) == tuple(contract.functions.getRelease(rec.id).call())
    assert lean.call("latest", rec.name) == tuple(contract.functions.latest(rec.name).call())
    assert lean.call("mayPublish", rec.name, rec.publisher) is True  # the namespace owner (D2)
    assert lean.call("mayPublish", rec.name, deployed.accounts[5].address) is False
    web3_page = contract.functions.releasesByDigest(rec.artifact_sha256, 0, 10).call()
    lean_page = lean.call("releasesByDigest", rec.artifact_sha256, 0, 10)
    assert [list(x) if isinstance(x, (list, tuple)) else x for x in lean_page] == \
           [list(x) if isinstance(x, (list, tuple)) else x for x in web3_page]
    domain = lean.call("eip712Domain")
    assert (domain[1], domain[3], domain[4]) == ("ModelRegistry", deployed.chain_id, deployed.address)
    with pytest.raises(ChainError) as info:
        lean.call("getRelease", b"\x01" * 32)
    assert lean.error_name(info.value) in (None, "UnknownRelease")


def test_digest_and_signer_match_eth_account_and_the_contract(deployed, tmp_path):
    from registry.release import recover_publisher, signing_digest as reference_digest

    pub = publish_tiny(deployed, tmp_path)
    man = pub.result.manifest
    lean = LeanRegistry(deployed.rpc_url, deployed.address)
    _fields, name, version, chain_id, contract, _salt, _ext = lean.call("eip712Domain")
    digest = signing_digest(man.release.message(), name, version, chain_id, contract)
    assert digest == reference_digest(man.release, man.chain_id, man.contract)
    assert digest == deployed.client.hash_release(man.release)
    signer = recover(digest, man.signature)
    assert signer == recover_publisher(man.release, man.signature, man.chain_id, man.contract) == man.publisher
    # high-s twin of the same signature: valid for plain ECDSA, refused here as by the contract
    sig = bytearray(man.signature)
    s = int.from_bytes(sig[32:64], "big")
    sig[32:64] = (SECP256K1_N - s).to_bytes(32, "big")
    sig[64] = 55 - sig[64] if sig[64] in (27, 28) else 1 - sig[64]
    with pytest.raises(SignatureError, match="low-s"):
        recover(digest, bytes(sig))
    for bad in (b"", b"\x00" * 65, man.signature[:64] + b"\x05"):
        with pytest.raises(SignatureError):
            recover(digest, bad)


def test_abi_functions_come_from_the_committed_artifact():
    fns = functions()
    assert fns["getRelease"].signature == "getRelease(bytes32)"
    assert fns["isPublisher"].selector.hex() == __import__("eth_utils").keccak(text="isPublisher(string,address)")[:4].hex()


def test_lean_modules_import_nothing_heavy():
    code = ("import sys, registry.chain.lean, registry.chain.lean_sig; "
            "print([m for m in ('web3', 'eth_account', 'py_ecc', 'eth_abi', 'torch') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
