// Fixtures and helpers shared by the ModelRegistry tests (behaviour through the external ABI only:
// the storage layout may change for gas, these tests must not).
const { expect } = require("chai");
const { ethers } = require("hardhat");
const { RELEASE_TYPES, domainOf, claimNamespace } = require("./_release");

const ZERO32 = ethers.ZeroHash;
const MAX_SIZE = 2n ** 40n - 1n;

const key = (name) => ethers.keccak256(ethers.toUtf8Bytes(name));
const sha = (label) => ethers.sha256(ethers.toUtf8Bytes(label));
const cid = (codec, digest) => ethers.concat(["0x01", ethers.toBeHex(codec, 1), "0x1220", digest]);
const releaseId = (name, version) =>
  ethers.keccak256(ethers.AbiCoder.defaultAbiCoder().encode(["bytes32", "bytes32"], [key(name), key(version)]));

/** A complete release without a card; `over` replaces fields. The deadline is far in the future. */
function makeRelease(over = {}) {
  const name = over.name ?? "acme/digits";
  const version = over.version ?? "1.0.0";
  return {
    name,
    version,
    artifactSha256: sha(`artifact ${name}@${version}`),
    artifactCid: cid(0x70, sha(`artifact cid ${name}@${version}`)),
    artifactSize: 1_834_567n,
    provenanceSha256: sha(`provenance ${name}@${version}`),
    provenanceCid: cid(0x55, sha(`provenance ${name}@${version}`)),
    cardSha256: ZERO32,
    cardCid: "0x",
    parent: ZERO32,
    nonce: 0n,
    deadline: 2n ** 40n,
    ...over,
  };
}

/** Card fields for `label` (a single raw block: the CID digest is the card's SHA-256). */
function card(label) {
  const digest = sha(`card ${label}`);
  return { cardSha256: digest, cardCid: cid(0x55, digest) };
}

async function sign(signer, registry, release, chainIdOverride) {
  return signer.signTypedData(await domainOf(registry, chainIdOverride), RELEASE_TYPES, release);
}

async function deployFixture() {
  const [admin, owner, publisher, relayer, stranger, attester, other, walletKey, watcher] = await ethers.getSigners();
  const Registry = await ethers.getContractFactory("ModelRegistry");
  const registry = await Registry.deploy();
  const second = await Registry.deploy();
  const Wallet = await ethers.getContractFactory("MockERC1271Wallet");
  const wallet = await Wallet.deploy(walletKey.address);
  return { registry, second, wallet, admin, owner, publisher, relayer, stranger, attester, other, walletKey, watcher };
}

/** Signs with `signer` (nonce read from chain unless given) and submits through `relayer`. */
async function publishAs(ctx, signer, over = {}, submitter = ctx.relayer) {
  const nonce = over.nonce ?? (await ctx.registry.nonces(signer.address));
  const release = makeRelease({ ...over, nonce });
  const signature = await sign(signer, ctx.registry, release);
  const tx = await ctx.registry.connect(submitter).publish(release, signer.address, signature);
  return { tx, release, id: releaseId(release.name, release.version) };
}

/** Namespace `acme` claimed by `owner`, `publisher` added to `acme/digits`, and 1.0.0 published by it. */
async function publishedFixture() {
  const ctx = await deployFixture();
  await claimNamespace(ctx.registry, ctx.owner, "acme");
  await ctx.registry.connect(ctx.owner).addPublisher("acme/digits", ctx.publisher.address);
  const first = await publishAs(ctx, ctx.publisher, { version: "1.0.0" });
  return { ...ctx, firstId: first.id, first: first.release };
}

function expectInfo(info, release, extra) {
  expect(info.id).to.equal(releaseId(release.name, release.version));
  expect(info.name).to.equal(release.name);
  expect(info.version).to.equal(release.version);
  expect(info.artifactSha256).to.equal(release.artifactSha256);
  expect(info.artifactCid).to.equal(ethers.hexlify(release.artifactCid));
  expect(info.artifactSize).to.equal(release.artifactSize);
  expect(info.provenanceSha256).to.equal(release.provenanceSha256);
  expect(info.provenanceCid).to.equal(ethers.hexlify(release.provenanceCid));
  expect(info.cardSha256).to.equal(release.cardSha256);
  expect(info.cardCid).to.equal(ethers.hexlify(release.cardCid));
  expect(info.parent).to.equal(release.parent);
  for (const [k, v] of Object.entries(extra)) expect(info[k], k).to.equal(v);
}

module.exports = {
  ZERO32,
  MAX_SIZE,
  key,
  sha,
  cid,
  card,
  releaseId,
  makeRelease,
  sign,
  deployFixture,
  publishAs,
  publishedFixture,
  expectInfo,
  claimNamespace,
};
