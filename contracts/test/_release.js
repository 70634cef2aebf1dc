// The EIP-712 Release type and domain shared by the contract tests (the Python side has its own in
// registry/release.py, checked against the contract's hashRelease in tests/test_release.py).
const { ethers } = require("hardhat");

const RELEASE_TYPES = {
  Release: [
    { name: "name", type: "string" },
    { name: "version", type: "string" },
    { name: "artifactSha256", type: "bytes32" },
    { name: "artifactCid", type: "bytes" },
    { name: "artifactSize", type: "uint64" },
    { name: "provenanceSha256", type: "bytes32" },
    { name: "provenanceCid", type: "bytes" },
    { name: "cardSha256", type: "bytes32" },
    { name: "cardCid", type: "bytes" },
    { name: "parent", type: "bytes32" },
    { name: "nonce", type: "uint256" },
    { name: "deadline", type: "uint256" },
  ],
};

/** The registry's EIP-712 domain on the current chain (or a forged chain id, to test replay). */
async function domainOf(registry, chainIdOverride) {
  const { chainId } = await ethers.provider.getNetwork();
  return {
    name: "ModelRegistry",
    version: "1",
    chainId: chainIdOverride ?? chainId,
    verifyingContract: await registry.getAddress(),
  };
}

/** A random 32-byte salt for a namespace commitment. */
function randomSalt() {
  return ethers.hexlify(ethers.randomBytes(32));
}

/**
 * Claims `namespace` for `signer` by commit-reveal: commit, then reveal in the next block (Hardhat
 * mines one block per transaction, so the reveal always lands later than the commitment).
 */
async function claimNamespace(registry, signer, namespace, salt = randomSalt()) {
  const commitment = await registry.makeCommitment(namespace, signer.address, salt);
  await (await registry.connect(signer).commitNamespace(commitment)).wait();
  return registry.connect(signer).claimNamespace(namespace, salt);
}

module.exports = { RELEASE_TYPES, domainOf, claimNamespace, randomSalt };
