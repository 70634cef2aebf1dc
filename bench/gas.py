"""Gas report: what anchoring a release costs, against an EAS delegated attestation of the same fields.

Deploys the committed ModelRegistry artifact (the bytes the Python package ships, not a fresh
build) on a throw-away anvil, runs every state-changing call once with realistic inputs and reads
``gasUsed`` from the receipts. The baseline, measured in the same run on the same chain, is the
Ethereum Attestation Service (npm ``@ethereum-attestation-service/eas-contracts``, its shipped
artifacts): a schema with the same fields as our Release and one ``attestByDelegation`` (an
EIP-712 signature by the attester, submitted by a relayer, like our publish) whose ``refUID`` points
at a parent attestation, the closest EAS analogue of "a signed, relayed release with a parent".

Also printed (issue 12): the gas of ``setAlias`` (a new alias, and moving one, the rollback path)
and the extra gas a model card's digest and CID add to a publish.

Run: ``.venv/bin/python bench/gas.py`` (writes ``bench/out/gas.json``). Exit status is 0 even on a
target miss: this is a report, not a test.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract

from registry.chain.devnet import free_port, spawn_anvil, wait_for_rpc
from registry.release import Release, sign_release

ROOT = Path(__file__).resolve().parent.parent
ANVIL = ROOT / "node_modules" / ".bin" / "anvil"
REGISTRY_ARTIFACT = ROOT / "registry" / "chain" / "artifacts" / "ModelRegistry.json"
EAS_ARTIFACTS = ROOT / "node_modules" / "@ethereum-attestation-service" / "eas-contracts" / "artifacts" / "contracts"
OUT = ROOT / "bench" / "out" / "gas.json"

PUBLISH_TARGET = 290_000
EAS_SCHEMA = (
    "string name,string version,bytes32 artifactSha256,bytes artifactCid,uint64 artifactSize,"
    "bytes32 provenanceSha256,bytes provenanceCid,bytes32 cardSha256,bytes cardCid"
)
EAS_ATTEST_TYPE = [
    {"name": "attester", "type": "address"},
    {"name": "schema", "type": "bytes32"},
    {"name": "recipient", "type": "address"},
    {"name": "expirationTime", "type": "uint64"},
    {"name": "revocable", "type": "bool"},
    {"name": "refUID", "type": "bytes32"},
    {"name": "data", "type": "bytes"},
    {"name": "value", "type": "uint256"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint64"},
]
@dataclass(frozen=True)
class Measurement:
    label: str
    gas: int
    note: str


@contextmanager
def anvil(*extra: str) -> Iterator[Web3]:
    """A private, stateless anvil on a free port (the library's launcher), stopped when the block ends."""
    with tempfile.TemporaryDirectory(prefix="gas-bench-") as tmp:
        port = free_port()
        log = Path(tmp) / "anvil.log"
        proc = spawn_anvil(port, None, log, binary=ANVIL, detached=False, extra_args=("--silent", *extra))
        try:
            wait_for_rpc(f"http://127.0.0.1:{port}", proc, log, timeout_s=20)
            yield Web3(Web3.HTTPProvider(f"http://127.0.0.1:{port}", request_kwargs={"timeout": 30}))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def deploy(w3: Web3, artifact: dict[str, Any], sender: str, *args: Any) -> tuple[Contract, int]:
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    receipt = w3.eth.wait_for_transaction_receipt(factory.constructor(*args).transact({"from": sender}))
    if receipt["status"] != 1:
        raise RuntimeError(f"deploy of {artifact.get('contractName')} failed")
    return w3.eth.contract(address=receipt["contractAddress"], abi=artifact["abi"]), int(receipt["gasUsed"])


def send(call: Any, sender: str) -> Any:
    receipt = call.transact({"from": sender})
    receipt = call.w3.eth.wait_for_transaction_receipt(receipt)
    if receipt["status"] != 1:
        raise RuntimeError(f"transaction {call.fn_name} reverted")
    return receipt


def cid(codec: int, digest: bytes) -> bytes:
    """Binary CIDv1 with a sha2-256 multihash, the form the contract stores."""
    return bytes([0x01, codec, 0x12, 0x20]) + digest


def digest(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def release_fields(name: str, version: str, parent: bytes, nonce: int, provenance_cid_equals_sha: bool,
                   with_card: bool = False) -> Release:
    """A realistic release: a multi-block ONNX file (dag-pb root CID, so its CID digest differs
    from its SHA-256) and a small provenance document. With ``provenance_cid_equals_sha`` the
    provenance CID is what ``kubo-v1`` gives a single-block file (raw codec, digest = SHA-256);
    otherwise it is a dag-pb CID with an unrelated digest (the ``kubo-v0`` profile). With
    ``with_card`` it carries a model card as ``kubo-v1`` pins one (a single raw block)."""
    provenance_sha = digest(f"provenance {name}@{version}")
    provenance_cid = cid(0x55, provenance_sha) if provenance_cid_equals_sha else cid(0x70, digest(f"pcid {version}"))
    card_sha = digest(f"card {name}@{version}") if with_card else b"\0" * 32
    return Release(
        name=name,
        version=version,
        artifact_sha256=digest(f"artifact {name}@{version}"),
        artifact_cid=cid(0x70, digest(f"acid {name}@{version}")),
        artifact_size=1_834_567,
        provenance_sha256=provenance_sha,
        provenance_cid=provenance_cid,
        card_sha256=card_sha,
        card_cid=cid(0x55, card_sha) if with_card else b"",
        parent=parent,
        nonce=nonce,
        deadline=2**40,
    )


def send_as(w3: Web3, account: LocalAccount, call: Any) -> Any:
    """A transaction signed locally by ``account`` (the bench's publisher key is not unlocked in anvil)."""
    # Estimated against the pending block: a namespace reveal must land after its commitment's block.
    gas = call.estimate_gas({"from": account.address}, block_identifier="pending")
    tx = call.build_transaction({"from": account.address, "nonce": w3.eth.get_transaction_count(account.address),
                                 "chainId": w3.eth.chain_id, "gas": gas})
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction))
    if receipt["status"] != 1:
        raise RuntimeError(f"transaction {call.fn_name} reverted")
    return receipt


def measure_registry(w3: Web3) -> tuple[list[Measurement], dict[str, int], Any]:
    artifact = json.loads(REGISTRY_ARTIFACT.read_text())
    relayer, attester = w3.eth.accounts[1:3]
    registry, deploy_gas = deploy(w3, artifact, w3.eth.accounts[0])
    chain_id = w3.eth.chain_id
    publisher: LocalAccount = Account.from_key(digest("bench publisher"))
    w3.eth.wait_for_transaction_receipt(
        w3.eth.send_transaction({"from": w3.eth.accounts[0], "to": publisher.address, "value": 10**18}))
    out: list[Measurement] = [Measurement("deploy ModelRegistry", deploy_gas, "one-off")]
    receipts: dict[str, Any] = {}

    # The publisher claims its namespace by commit-reveal (two transactions, once per namespace).
    salt = digest("bench salt")
    commitment = registry.functions.makeCommitment("acme", publisher.address, salt).call()
    gas_commit = int(send_as(w3, publisher, registry.functions.commitNamespace(commitment))["gasUsed"])
    gas_claim = int(send_as(w3, publisher, registry.functions.claimNamespace("acme", salt))["gasUsed"])
    out.append(Measurement("commitNamespace", gas_commit, "step 1 of a namespace claim"))
    out.append(Measurement("claimNamespace (reveal)", gas_claim, "step 2, one block later"))
    nonce = 0

    def publish(name: str, version: str, parent: bytes, equal: bool, with_card: bool = False) -> tuple[bytes, int]:
        nonlocal nonce
        fields = release_fields(name, version, parent, nonce, equal, with_card)
        signature = sign_release(fields, publisher, chain_id, registry.address)
        receipt = send(registry.functions.publish(fields.as_tuple(), publisher.address, signature), relayer)
        nonce += 1
        receipts[version] = receipt
        return registry.functions.computeReleaseId(name, version).call(), int(receipt["gasUsed"])

    name = "acme/digits-int8"
    first_id, gas_first = publish(name, "1.0.0", b"\0" * 32, True)
    out.append(Measurement("publish (first of name)", gas_first, "relayer submits, parent=0, registers the name"))
    second_id, gas_full = publish(name, "1.1.0", first_id, True)
    out.append(Measurement("publish (full record)", gas_full, "parent set, 36-byte CIDs, raw provenance CID"))
    third_id, gas_full_v0 = publish(name, "1.2.0", second_id, False)
    out.append(Measurement("publish (full, dag-pb provenance CID)", gas_full_v0, "provenance CID digest != SHA-256"))
    _, gas_card = publish(name, "1.3.0", third_id, True, with_card=True)
    out.append(Measurement("publish (full record + model card)", gas_card, "card digest + raw card CID"))

    # A per-name publisher added by the namespace owner (the publisher key owns "acme").
    gas_add = int(send_as(w3, publisher, registry.functions.addPublisher(name, attester))["gasUsed"])
    out.append(Measurement("addPublisher", gas_add, ""))
    gas_alias = int(send_as(w3, publisher, registry.functions.setAlias(name, "production", second_id))["gasUsed"])
    out.append(Measurement("setAlias (new alias)", gas_alias, "owner points name@production"))
    gas_alias_move = int(send_as(w3, publisher, registry.functions.setAlias(name, "production", first_id))["gasUsed"])
    out.append(Measurement("setAlias (move alias)", gas_alias_move, "rollback: re-point, no new release"))
    gas_attest = int(send(registry.functions.attest(second_id, True, digest("report")), attester)["gasUsed"])
    out.append(Measurement("attest (first verdict)", gas_attest, ""))
    gas_reattest = int(send(registry.functions.attest(second_id, False, digest("report 2")), attester)["gasUsed"])
    out.append(Measurement("attest (replace verdict)", gas_reattest, ""))
    gas_revoke = int(send_as(w3, publisher, registry.functions.revoke(third_id, "accuracy regression on eval set"))["gasUsed"])
    out.append(Measurement("revoke", gas_revoke, "31-char reason"))
    figures = {"publish_full": gas_full, "publish_first": gas_first, "publish_full_dagpb_provenance": gas_full_v0,
               "publish_full_with_card": gas_card, "card_extra": gas_card - gas_full, "set_alias_new": gas_alias,
               "set_alias_move": gas_alias_move, "namespace_claim": gas_commit + gas_claim}
    return out, figures, receipts["1.1.0"]


def breakdown(w3: Web3, receipt: Any) -> dict[str, int]:
    """Where a transaction's gas goes, from anvil's opcode trace (needs ``--steps-tracing``).

    Intrinsic is 21,000 plus calldata; ``sstore_new_words`` counts writes to a fresh word
    (20,000 or 22,100 each), the dominant cost of anchoring anything in storage."""
    tx = w3.eth.get_transaction(receipt["transactionHash"])
    data = bytes(tx["input"])
    intrinsic = 21_000 + sum(16 if b else 4 for b in data)
    trace = w3.provider.make_request("debug_traceTransaction", [receipt["transactionHash"].to_0x_hex(), {}])
    steps = trace["result"]["structLogs"]
    top = [s for s in steps if s["depth"] == 1]
    sstore = [s["gasCost"] for s in top if s["op"] == "SSTORE"]
    parts = {
        "intrinsic (21000 + calldata)": intrinsic,
        "SSTORE": sum(sstore),
        "SLOAD": sum(s["gasCost"] for s in top if s["op"] == "SLOAD"),
        "LOG (events)": sum(s["gasCost"] for s in top if s["op"].startswith("LOG")),
    }
    parts["compute (ecrecover, hashing, memory, checks)"] = int(receipt["gasUsed"]) - sum(parts.values())
    parts["sstore_new_words"] = sum(1 for c in sstore if c >= 20_000)
    return parts


def measure_eas(w3: Web3) -> list[Measurement]:
    load: Callable[[str], dict[str, Any]] = lambda n: json.loads((EAS_ARTIFACTS / f"{n}.sol" / f"{n}.json").read_text())
    sender = w3.eth.accounts[5]
    schemas, _ = deploy(w3, load("SchemaRegistry"), sender)
    eas, _ = deploy(w3, load("EAS"), sender, schemas.address)
    receipt = send(schemas.functions.register(EAS_SCHEMA, "0x" + "00" * 20, True), sender)
    schema_uid = schemas.events.Registered().process_receipt(receipt)[0]["args"]["uid"]
    out = [Measurement("EAS register schema", int(receipt["gasUsed"]), "one-off")]
    attester: LocalAccount = Account.from_key(digest("bench eas attester"))
    domain = {"name": "EAS", "version": "1.4.0", "chainId": w3.eth.chain_id, "verifyingContract": eas.address}

    def attest(version: str, ref: bytes, delegated: bool) -> tuple[bytes, int]:
        fields = release_fields("acme/digits-int8", version, b"\0" * 32, 0, True)
        data = w3.codec.encode(
            ["string", "string", "bytes32", "bytes", "uint64", "bytes32", "bytes", "bytes32", "bytes"],
            list(fields.as_tuple()[:9]),  # the Release fields an attestation carries (no parent/nonce/deadline)
        )
        request_data = ("0x" + "00" * 20, 0, True, ref, data, 0)
        if not delegated:
            rec = send(eas.functions.attest((schema_uid, request_data)), sender)
        else:
            nonce = eas.functions.getNonce(attester.address).call()
            message = {"attester": attester.address, "schema": schema_uid, "recipient": "0x" + "00" * 20,
                       "expirationTime": 0, "revocable": True, "refUID": ref, "data": data, "value": 0,
                       "nonce": nonce, "deadline": 0}
            signed = attester.sign_typed_data(full_message={
                "types": {"EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                                           {"name": "chainId", "type": "uint256"},
                                           {"name": "verifyingContract", "type": "address"}],
                          "Attest": EAS_ATTEST_TYPE},
                "primaryType": "Attest", "domain": domain, "message": message})
            signature = (signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big"))
            request = (schema_uid, request_data, signature, attester.address, 0)
            rec = send(eas.functions.attestByDelegation(request), sender)
        uid = eas.events.Attested().process_receipt(rec)[0]["args"]["uid"]
        return uid, int(rec["gasUsed"])

    parent_uid, gas_first = attest("1.0.0", b"\0" * 32, True)
    out.append(Measurement("EAS attestByDelegation (no refUID)", gas_first, ""))
    _, gas_ref = attest("1.1.0", parent_uid, True)
    out.append(Measurement("EAS attestByDelegation (refUID = parent)", gas_ref, "baseline for publish"))
    _, gas_plain = attest("1.2.0", parent_uid, False)
    out.append(Measurement("EAS attest (refUID = parent, not delegated)", gas_plain, "for reference"))
    return out


def main() -> int:
    with anvil("--steps-tracing") as w3:
        ours, key, full_receipt = measure_registry(w3)
        parts = breakdown(w3, full_receipt)
        eas = measure_eas(w3)
    eas_attest = next(m.gas for m in eas if m.label == "EAS attestByDelegation (refUID = parent)")
    width = max(len(m.label) for m in ours + eas)
    print(f"{'operation':<{width}}  {'gasUsed':>9}  note")
    for m in ours + eas:
        print(f"{m.label:<{width}}  {m.gas:>9,}  {m.note}")
    print("\nwhere the full publish's gas goes:")
    for label, value in parts.items():
        print(f"  {label:<46} {value:>9,}")
    full = key["publish_full"]
    ratio = full / eas_attest
    verdict = "PASS" if full <= PUBLISH_TARGET else "MISS"
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        json.dumps(
            {
                "measurements": [m.__dict__ for m in ours + eas],
                **key,
                "eas_attest_by_delegation_with_ref": eas_attest,
                "publish_full_breakdown": parts,
                "target": PUBLISH_TARGET,
                "verdict": verdict,
                "ratio_publish_to_eas_attest_by_delegation": round(ratio, 4),
            },
            indent=1,
        )
        + "\n"
    )
    print(
        f"publish={full / 1000:.1f}k gas (target <={PUBLISH_TARGET // 1000}k: {verdict}), "
        f"first publish={key['publish_first'] / 1000:.1f}k, "
        f"kubo-v0 provenance CID={key['publish_full_dagpb_provenance'] / 1000:.1f}k, "
        f"ratio to EAS attestByDelegation={ratio:.2f}; "
        f"card adds {key['card_extra'] / 1000:.1f}k; setAlias new={key['set_alias_new'] / 1000:.1f}k, "
        f"move={key['set_alias_move'] / 1000:.1f}k; namespace claim={key['namespace_claim'] / 1000:.1f}k"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
