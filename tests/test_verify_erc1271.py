"""Contract-wallet publishers (ERC-1271): the manifest's signature is checked by asking the wallet."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from eth_account import Account

from registry.verify import verify

from tests._verify_fixtures import offline_release

ARTIFACT = (Path(__file__).resolve().parents[1] / "build" / "artifacts" / "contracts" / "test" / "mocks"
            / "MockERC1271Wallet.sol" / "MockERC1271Wallet.json")


@pytest.mark.skipif(not ARTIFACT.exists(), reason="needs `npx hardhat compile` (make test runs it)")
def test_erc1271_wallet_publisher(deployed, tmp_path):
    from registry.chain.tx import send_call
    from registry.manifest import Manifest
    from registry.release import sign_release

    w3 = deployed.client.w3
    owner = Account.create()
    funder = deployed.accounts[2]
    spec = json.loads(ARTIFACT.read_text())
    factory = w3.eth.contract(abi=spec["abi"], bytecode=spec["bytecode"])
    receipt = send_call(w3, funder, lambda params: factory.constructor(owner.address).build_transaction(params), 0)
    wallet_address = receipt["contractAddress"]
    wallet = w3.eth.contract(address=wallet_address, abi=spec["abi"])

    deployed.client.claim_namespace("acme", funder)
    deployed.client.add_publisher("acme/wallet", wallet_address, funder)
    base = offline_release(tmp_path, name="acme/wallet")
    release = dataclasses.replace(base.manifest.release, nonce=deployed.client.next_nonce(wallet_address),
                                  deadline=2**40)
    signature = sign_release(release, owner, deployed.chain_id, deployed.address)
    deployed.client.publish(release, signature, wallet_address, funder)
    manifest = Manifest(release=release, signature=signature, publisher=wallet_address, chain_id=deployed.chain_id,
                        contract=deployed.client.address, cid_profile="kubo-v1")

    def run(client):
        return verify(manifest.ref, data=base.data, manifest=manifest, provenance=base.provenance,
                      settings=deployed.settings(), client=client)

    for client in (deployed.client, None):  # web3's client, and the lean reader a device connects itself
        report = run(client)
        assert report.ok, report.to_json()
        assert report.check("signature").evidence.get("erc1271") is True

    send_call(w3, funder, lambda params: wallet.functions.setAccepting(False).build_transaction(params), 0)
    for client in (deployed.client, None):
        report = run(client)
        assert report.check("signature").status == "fail" and report.exit_code == 11
