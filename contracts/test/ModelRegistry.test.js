// Behaviour of ModelRegistry through its external ABI only (the storage layout may change for gas,
// these tests must not). Signatures are real EIP-712 signatures made with ethers' signTypedData.
const { expect } = require("chai");
const { ethers } = require("hardhat");
const { loadFixture, time } = require("@nomicfoundation/hardhat-network-helpers");
const { anyValue } = require("@nomicfoundation/hardhat-chai-matchers/withArgs");
const { RELEASE_TYPES, domainOf } = require("./_release");

const ZERO32 = ethers.ZeroHash;
const TYPE_STRING =
  "Release(string name,string version,bytes32 artifactSha256,bytes artifactCid,uint64 artifactSize," +
  "bytes32 provenanceSha256,bytes provenanceCid,bytes32 parent,uint256 nonce,uint256 deadline)";
const MAX_SIZE = 2n ** 40n - 1n;

const key = (name) => ethers.keccak256(ethers.toUtf8Bytes(name));
const sha = (label) => ethers.sha256(ethers.toUtf8Bytes(label));
const cid = (codec, digest) => ethers.concat(["0x01", ethers.toBeHex(codec, 1), "0x1220", digest]);
const releaseId = (name, version) =>
  ethers.keccak256(ethers.AbiCoder.defaultAbiCoder().encode(["bytes32", "bytes32"], [key(name), key(version)]));

/** A complete release; `over` replaces fields. The deadline is far in the future by default. */
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
    parent: ZERO32,
    nonce: 0n,
    deadline: 2n ** 40n,
    ...over,
  };
}

async function sign(signer, registry, release, chainIdOverride) {
  return signer.signTypedData(await domainOf(registry, chainIdOverride), RELEASE_TYPES, release);
}

async function deployFixture() {
  const [admin, owner, publisher, relayer, stranger, attester, other, walletKey] = await ethers.getSigners();
  const Registry = await ethers.getContractFactory("ModelRegistry");
  const registry = await Registry.deploy();
  const second = await Registry.deploy();
  const Wallet = await ethers.getContractFactory("MockERC1271Wallet");
  const wallet = await Wallet.deploy(walletKey.address);
  return { registry, second, wallet, admin, owner, publisher, relayer, stranger, attester, other, walletKey };
}

/** Signs with `signer` (nonce read from chain unless given) and submits through `relayer`. */
async function publishAs(ctx, signer, over = {}, submitter = ctx.relayer) {
  const nonce = over.nonce ?? (await ctx.registry.nonces(signer.address));
  const release = makeRelease({ ...over, nonce });
  const signature = await sign(signer, ctx.registry, release);
  const tx = await ctx.registry.connect(submitter).publish(release, signer.address, signature);
  return { tx, release, id: releaseId(release.name, release.version) };
}

/** `acme/digits` claimed by `owner`, with `publisher` added, and 1.0.0 published by `publisher`. */
async function publishedFixture() {
  const ctx = await deployFixture();
  await ctx.registry.connect(ctx.owner).claimName("acme/digits");
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
  expect(info.parent).to.equal(release.parent);
  for (const [k, v] of Object.entries(extra)) expect(info[k], k).to.equal(v);
}

describe("ModelRegistry", function () {
  describe("claimName", function () {
    it("gives the caller the name and publisher rights, and returns the name key", async function () {
      const { registry, owner } = await loadFixture(deployFixture);
      expect(await registry.connect(owner).claimName.staticCall("acme/digits")).to.equal(key("acme/digits"));
      await expect(registry.connect(owner).claimName("acme/digits"))
        .to.emit(registry, "NameClaimed")
        .withArgs(key("acme/digits"), "acme/digits", owner.address)
        .and.to.emit(registry, "PublisherAdded")
        .withArgs(key("acme/digits"), "acme/digits", owner.address);
      const [nameOwner, pending] = await registry.nameOwner("acme/digits");
      expect(nameOwner).to.equal(owner.address);
      expect(pending).to.equal(ethers.ZeroAddress);
      expect(await registry.isPublisher("acme/digits", owner.address)).to.equal(true);
    });

    it("refuses a name that is already claimed", async function () {
      const { registry, owner, stranger } = await loadFixture(deployFixture);
      await registry.connect(owner).claimName("acme/digits");
      await expect(registry.connect(stranger).claimName("acme/digits"))
        .to.be.revertedWithCustomError(registry, "NameAlreadyClaimed")
        .withArgs("acme/digits");
      await expect(registry.connect(owner).claimName("acme/digits")).to.be.revertedWithCustomError(
        registry,
        "NameAlreadyClaimed"
      );
    });

    const invalid = {
      uppercase: "Acme/digits",
      "uppercase model": "acme/Digits",
      "no slash": "acmedigits",
      "two slashes": "acme/digits/v2",
      "empty owner": "/digits",
      "empty model": "acme/",
      empty: "",
      "only a slash": "/",
      "owner > 64": "a".repeat(65) + "/m",
      "model > 64": "acme/" + "m".repeat(65),
      space: "acme/dig its",
      "non-ascii": "acme/mödel",
      "at sign": "acme/digits@1",
      colon: "acme:digits/x",
      "owner is .": "./digits",
      "owner is ..": "../digits",
      "model is .": "acme/.",
      "model is ..": "acme/..",
      "both dots": "../..",
    };
    for (const [why, name] of Object.entries(invalid)) {
      it(`refuses an invalid name (${why})`, async function () {
        const { registry, owner } = await loadFixture(deployFixture);
        await expect(registry.connect(owner).claimName(name))
          .to.be.revertedWithCustomError(registry, "InvalidName")
          .withArgs(name);
      });
    }

    it("accepts names at the limits of the rule", async function () {
      const { registry, owner } = await loadFixture(deployFixture);
      for (const name of ["a".repeat(64) + "/" + "b".repeat(64), "a/b", "0.9_x-y/z.z-9_", ".../.x", "acme/..."]) {
        await expect(registry.connect(owner).claimName(name)).to.emit(registry, "NameClaimed");
        expect((await registry.nameOwner(name))[0]).to.equal(owner.address);
      }
    });
  });

  describe("publishers", function () {
    it("lets the owner add a publisher", async function () {
      const { registry, owner, publisher } = await loadFixture(deployFixture);
      await registry.connect(owner).claimName("acme/digits");
      await expect(registry.connect(owner).addPublisher("acme/digits", publisher.address))
        .to.emit(registry, "PublisherAdded")
        .withArgs(key("acme/digits"), "acme/digits", publisher.address);
      expect(await registry.isPublisher("acme/digits", publisher.address)).to.equal(true);
    });

    it("refuses add/remove by anyone but the owner, and on unknown names", async function () {
      const { registry, owner, publisher, stranger } = await loadFixture(deployFixture);
      await registry.connect(owner).claimName("acme/digits");
      await registry.connect(owner).addPublisher("acme/digits", publisher.address);
      await expect(registry.connect(stranger).addPublisher("acme/digits", stranger.address))
        .to.be.revertedWithCustomError(registry, "NotNameOwner")
        .withArgs(key("acme/digits"), stranger.address);
      // A publisher is not an owner either.
      await expect(registry.connect(publisher).addPublisher("acme/digits", stranger.address))
        .to.be.revertedWithCustomError(registry, "NotNameOwner")
        .withArgs(key("acme/digits"), publisher.address);
      await expect(registry.connect(stranger).removePublisher("acme/digits", publisher.address))
        .to.be.revertedWithCustomError(registry, "NotNameOwner")
        .withArgs(key("acme/digits"), stranger.address);
      await expect(registry.connect(owner).addPublisher("acme/unknown", publisher.address))
        .to.be.revertedWithCustomError(registry, "UnknownName")
        .withArgs(key("acme/unknown"));
      await expect(registry.connect(owner).removePublisher("acme/unknown", publisher.address))
        .to.be.revertedWithCustomError(registry, "UnknownName")
        .withArgs(key("acme/unknown"));
    });

    it("refuses the zero address and a second add", async function () {
      const { registry, owner, publisher } = await loadFixture(deployFixture);
      await registry.connect(owner).claimName("acme/digits");
      await expect(
        registry.connect(owner).addPublisher("acme/digits", ethers.ZeroAddress)
      ).to.be.revertedWithCustomError(registry, "ZeroAddress");
      await registry.connect(owner).addPublisher("acme/digits", publisher.address);
      await expect(registry.connect(owner).addPublisher("acme/digits", publisher.address))
        .to.be.revertedWithCustomError(registry, "AlreadyPublisher")
        .withArgs(key("acme/digits"), publisher.address);
      await expect(registry.connect(owner).addPublisher("acme/digits", owner.address))
        .to.be.revertedWithCustomError(registry, "AlreadyPublisher")
        .withArgs(key("acme/digits"), owner.address);
    });

    it("removes a publisher: no new releases, old ones stay active", async function () {
      const ctx = await loadFixture(publishedFixture);
      const { registry, owner, publisher } = ctx;
      await expect(registry.connect(owner).removePublisher("acme/digits", publisher.address))
        .to.emit(registry, "PublisherRemoved")
        .withArgs(key("acme/digits"), "acme/digits", publisher.address);
      expect(await registry.isPublisher("acme/digits", publisher.address)).to.equal(false);
      expect(await registry.isActive(ctx.firstId)).to.equal(true);
      const release = makeRelease({ version: "1.1.0", nonce: 1n });
      const signature = await sign(publisher, registry, release);
      await expect(registry.publish(release, publisher.address, signature))
        .to.be.revertedWithCustomError(registry, "NotPublisher")
        .withArgs(key("acme/digits"), publisher.address);
      await expect(registry.connect(owner).removePublisher("acme/digits", publisher.address))
        .to.be.revertedWithCustomError(registry, "NotPublisher")
        .withArgs(key("acme/digits"), publisher.address);
    });
  });

  describe("two-step name transfer", function () {
    it("proposes, refuses the wrong account, hands over to the right one", async function () {
      const { registry, owner, other, stranger } = await loadFixture(deployFixture);
      const k = key("acme/digits");
      await registry.connect(owner).claimName("acme/digits");
      await expect(registry.connect(stranger).proposeNameOwner("acme/digits", stranger.address))
        .to.be.revertedWithCustomError(registry, "NotNameOwner")
        .withArgs(k, stranger.address);
      await expect(registry.connect(owner).proposeNameOwner("acme/unknown", other.address))
        .to.be.revertedWithCustomError(registry, "UnknownName")
        .withArgs(key("acme/unknown"));
      await expect(registry.connect(owner).proposeNameOwner("acme/digits", other.address))
        .to.emit(registry, "NameTransferProposed")
        .withArgs(k, "acme/digits", owner.address, other.address);
      expect(await registry.nameOwner("acme/digits")).to.deep.equal([owner.address, other.address]);

      await expect(registry.connect(stranger).acceptNameOwner("acme/digits"))
        .to.be.revertedWithCustomError(registry, "NotPendingOwner")
        .withArgs(k, stranger.address);
      await expect(registry.connect(owner).acceptNameOwner("acme/digits"))
        .to.be.revertedWithCustomError(registry, "NotPendingOwner")
        .withArgs(k, owner.address);
      await expect(registry.connect(other).acceptNameOwner("acme/unknown"))
        .to.be.revertedWithCustomError(registry, "UnknownName")
        .withArgs(key("acme/unknown"));

      await expect(registry.connect(other).acceptNameOwner("acme/digits"))
        .to.emit(registry, "NameTransferred")
        .withArgs(k, "acme/digits", owner.address, other.address)
        .and.to.emit(registry, "PublisherAdded")
        .withArgs(k, "acme/digits", other.address);
      expect(await registry.nameOwner("acme/digits")).to.deep.equal([other.address, ethers.ZeroAddress]);
      expect(await registry.isPublisher("acme/digits", other.address)).to.equal(true);
      // The previous owner keeps publishing rights but lost ownership.
      expect(await registry.isPublisher("acme/digits", owner.address)).to.equal(true);
      await expect(registry.connect(owner).addPublisher("acme/digits", stranger.address))
        .to.be.revertedWithCustomError(registry, "NotNameOwner")
        .withArgs(k, owner.address);
      await registry.connect(other).removePublisher("acme/digits", owner.address);
      expect(await registry.isPublisher("acme/digits", owner.address)).to.equal(false);
      // The proposal is spent.
      await expect(registry.connect(other).acceptNameOwner("acme/digits")).to.be.revertedWithCustomError(
        registry,
        "NotPendingOwner"
      );
    });

    it("cancels a proposal with the zero address", async function () {
      const { registry, owner, other } = await loadFixture(deployFixture);
      await registry.connect(owner).claimName("acme/digits");
      await registry.connect(owner).proposeNameOwner("acme/digits", other.address);
      await expect(registry.connect(owner).proposeNameOwner("acme/digits", ethers.ZeroAddress))
        .to.emit(registry, "NameTransferProposed")
        .withArgs(key("acme/digits"), "acme/digits", owner.address, ethers.ZeroAddress);
      expect(await registry.nameOwner("acme/digits")).to.deep.equal([owner.address, ethers.ZeroAddress]);
      await expect(registry.connect(other).acceptNameOwner("acme/digits"))
        .to.be.revertedWithCustomError(registry, "NotPendingOwner")
        .withArgs(key("acme/digits"), other.address);
    });

    it("does not re-add an incoming owner who already publishes", async function () {
      const { registry, owner, publisher } = await loadFixture(deployFixture);
      await registry.connect(owner).claimName("acme/digits");
      await registry.connect(owner).addPublisher("acme/digits", publisher.address);
      await registry.connect(owner).proposeNameOwner("acme/digits", publisher.address);
      await expect(registry.connect(publisher).acceptNameOwner("acme/digits"))
        .to.emit(registry, "NameTransferred")
        .and.not.to.emit(registry, "PublisherAdded");
      expect(await registry.isPublisher("acme/digits", publisher.address)).to.equal(true);
    });
  });

  describe("publish", function () {
    it("anchors a release submitted by a relayer, with every field readable", async function () {
      const ctx = await loadFixture(deployFixture);
      const { registry, owner, publisher, relayer } = ctx;
      await registry.connect(owner).claimName("acme/digits");
      await registry.connect(owner).addPublisher("acme/digits", publisher.address);
      const parentTx = await publishAs(ctx, publisher, { version: "1.0.0" });
      const release = makeRelease({ version: "1.1.0-rc.1+build.7", parent: parentTx.id, nonce: 1n });
      const signature = await sign(publisher, registry, release);
      const id = releaseId(release.name, release.version);
      expect(await registry.connect(relayer).publish.staticCall(release, publisher.address, signature)).to.equal(id);
      const when = (await time.latest()) + 100;
      await time.setNextBlockTimestamp(when);
      await expect(registry.connect(relayer).publish(release, publisher.address, signature))
        .to.emit(registry, "ReleasePublished")
        .withArgs(
          id,
          key("acme/digits"),
          release.artifactSha256,
          release.name,
          release.version,
          ethers.hexlify(release.artifactCid),
          release.artifactSize,
          release.provenanceSha256,
          ethers.hexlify(release.provenanceCid),
          parentTx.id,
          publisher.address,
          relayer.address
        )
        .and.not.to.emit(registry, "NameClaimed");
      expect(await registry.nonces(publisher.address)).to.equal(2n);
      const info = await registry.getRelease(id);
      expectInfo(info, release, { publisher: publisher.address, publishedAt: BigInt(when), revokedAt: 0n, revocationReason: "" });
      expectInfo(await registry.getReleaseByVersion(release.name, release.version), release, {});
      expect(await registry.isActive(id)).to.equal(true);
      expect(await registry.isRevoked(id)).to.equal(false);
      expect(await registry.releaseCount("acme/digits")).to.equal(2n);
      expect(await registry.releasesOf("acme/digits", 0, 10)).to.deep.equal([parentTx.id, id]);
      expect(await registry.releasesByDigest(release.artifactSha256, 0, 10)).to.deep.equal([id]);
    });

    it("round-trips CIDs of every supported codec, and CIDs whose digest is the content SHA-256", async function () {
      const ctx = await loadFixture(deployFixture);
      let n = 0;
      for (const [codecA, codecP] of [[0x55, 0x70], [0x70, 0x71], [0x71, 0x55], [0x00, 0x7f]]) {
        const version = `1.0.${n++}`;
        const artifactSha256 = sha(`a${version}`);
        const provenanceSha256 = sha(`p${version}`);
        // The first artifact CID carries the artifact's own SHA-256 (a single raw block), the
        // second provenance CID too: storage may deduplicate, reads must not notice.
        const over = {
          version,
          artifactSha256,
          provenanceSha256,
          artifactCid: cid(codecA, n === 1 ? artifactSha256 : sha(`acid${version}`)),
          provenanceCid: cid(codecP, n === 2 ? provenanceSha256 : sha(`pcid${version}`)),
        };
        const { release, id } = await publishAs(ctx, ctx.publisher, over);
        expectInfo(await ctx.registry.getRelease(id), release, {});
      }
    });

    it("claims an unclaimed name for the publisher on its first release", async function () {
      const ctx = await loadFixture(deployFixture);
      const { registry, publisher, relayer } = ctx;
      const release = makeRelease({ name: "newco/model", nonce: 0n });
      const signature = await sign(publisher, registry, release);
      const k = key("newco/model");
      await expect(registry.connect(relayer).publish(release, publisher.address, signature))
        .to.emit(registry, "NameClaimed")
        .withArgs(k, "newco/model", publisher.address)
        .and.to.emit(registry, "PublisherAdded")
        .withArgs(k, "newco/model", publisher.address)
        .and.to.emit(registry, "ReleasePublished");
      expect(await registry.nameOwner("newco/model")).to.deep.equal([publisher.address, ethers.ZeroAddress]);
      expect((await registry.latest("newco/model")).version).to.equal("1.0.0");
      // The relayer gained nothing.
      expect(await registry.isPublisher("newco/model", relayer.address)).to.equal(false);
    });

    it("validates the name when the first release claims it", async function () {
      const ctx = await loadFixture(deployFixture);
      for (const name of ["NewCo/model", "newco", "a/b/c", "newco/"]) {
        const release = makeRelease({ name, nonce: 0n });
        const signature = await sign(ctx.publisher, ctx.registry, release);
        await expect(ctx.registry.publish(release, ctx.publisher.address, signature))
          .to.be.revertedWithCustomError(ctx.registry, "InvalidName")
          .withArgs(name);
      }
    });

    it("refuses a signer that is not a publisher of the name", async function () {
      const ctx = await loadFixture(publishedFixture);
      const { registry, stranger } = ctx;
      const release = makeRelease({ version: "9.9.9", nonce: 0n });
      const signature = await sign(stranger, registry, release);
      await expect(registry.publish(release, stranger.address, signature))
        .to.be.revertedWithCustomError(registry, "NotPublisher")
        .withArgs(key("acme/digits"), stranger.address);
    });

    it("refuses a reused or skipped nonce", async function () {
      const ctx = await loadFixture(publishedFixture);
      const { registry, publisher } = ctx;
      for (const nonce of [0n, 5n]) {
        const release = makeRelease({ version: "1.1.0", nonce });
        const signature = await sign(publisher, registry, release);
        await expect(registry.publish(release, publisher.address, signature))
          .to.be.revertedWithCustomError(registry, "InvalidAccountNonce")
          .withArgs(publisher.address, 1n);
      }
      // Replaying the exact first transaction fails too (it is a duplicate and a reused nonce).
      const replay = makeRelease({ version: "1.0.0", nonce: 0n });
      await expect(registry.publish(replay, publisher.address, await sign(publisher, registry, replay))).to.be.reverted;
    });

    it("refuses an expired deadline, accepts one equal to the block time", async function () {
      const ctx = await loadFixture(publishedFixture);
      const { registry, publisher } = ctx;
      const now = await time.latest();
      const expired = makeRelease({ version: "1.1.0", nonce: 1n, deadline: BigInt(now) });
      await time.setNextBlockTimestamp(now + 1);
      await expect(registry.publish(expired, publisher.address, await sign(publisher, registry, expired)))
        .to.be.revertedWithCustomError(registry, "ExpiredDeadline")
        .withArgs(BigInt(now), BigInt(now + 1));
      const exact = makeRelease({ version: "1.1.0", nonce: 1n, deadline: BigInt(now + 10) });
      await time.setNextBlockTimestamp(now + 10);
      await expect(registry.publish(exact, publisher.address, await sign(publisher, registry, exact))).to.emit(
        registry,
        "ReleasePublished"
      );
    });

    it("refuses a signature made for another chain id", async function () {
      const ctx = await loadFixture(publishedFixture);
      const { registry, publisher } = ctx;
      const release = makeRelease({ version: "1.1.0", nonce: 1n });
      const { chainId } = await ethers.provider.getNetwork();
      const signature = await sign(publisher, registry, release, chainId + 1n);
      await expect(registry.publish(release, publisher.address, signature))
        .to.be.revertedWithCustomError(registry, "InvalidSignature")
        .withArgs(publisher.address);
    });

    it("refuses a signature made for another registry contract", async function () {
      const ctx = await loadFixture(deployFixture);
      const { registry, second, publisher } = ctx;
      const release = makeRelease({ nonce: 0n });
      const forSecond = await sign(publisher, second, release);
      await expect(registry.publish(release, publisher.address, forSecond))
        .to.be.revertedWithCustomError(registry, "InvalidSignature")
        .withArgs(publisher.address);
      // The same signature is good where it was meant to go.
      await expect(second.publish(release, publisher.address, forSecond)).to.emit(second, "ReleasePublished");
    });

    it("refuses a signature by another key, a tampered field, or garbage", async function () {
      const ctx = await loadFixture(publishedFixture);
      const { registry, publisher, stranger } = ctx;
      const release = makeRelease({ version: "1.1.0", nonce: 1n });
      const byStranger = await sign(stranger, registry, release);
      await expect(registry.publish(release, publisher.address, byStranger))
        .to.be.revertedWithCustomError(registry, "InvalidSignature")
        .withArgs(publisher.address);
      const good = await sign(publisher, registry, release);
      for (const field of ["artifactSha256", "provenanceSha256"]) {
        const tampered = { ...release, [field]: sha("evil") };
        await expect(registry.publish(tampered, publisher.address, good))
          .to.be.revertedWithCustomError(registry, "InvalidSignature")
          .withArgs(publisher.address);
      }
      await expect(registry.publish({ ...release, artifactSize: 1n }, publisher.address, good))
        .to.be.revertedWithCustomError(registry, "InvalidSignature");
      await expect(registry.publish({ ...release, artifactCid: cid(0x55, sha("evil")) }, publisher.address, good))
        .to.be.revertedWithCustomError(registry, "InvalidSignature");
      await expect(registry.publish(release, publisher.address, "0x1234"))
        .to.be.revertedWithCustomError(registry, "InvalidSignature");
      await expect(registry.publish(release, publisher.address, "0x"))
        .to.be.revertedWithCustomError(registry, "InvalidSignature");
    });

    it("refuses the zero address as publisher, even for an unclaimed name", async function () {
      const ctx = await loadFixture(deployFixture);
      const release = makeRelease({ name: "newco/model", nonce: 0n });
      const signature = await sign(ctx.publisher, ctx.registry, release);
      await expect(ctx.registry.publish(release, ethers.ZeroAddress, signature))
        .to.be.revertedWithCustomError(ctx.registry, "InvalidSignature")
        .withArgs(ethers.ZeroAddress);
      await expect(ctx.registry.publish(release, ethers.ZeroAddress, "0x" + "00".repeat(65)))
        .to.be.revertedWithCustomError(ctx.registry, "InvalidSignature")
        .withArgs(ethers.ZeroAddress);
      expect((await ctx.registry.nameOwner("newco/model"))[0]).to.equal(ethers.ZeroAddress);
    });

    it("keeps nonces per publisher", async function () {
      const ctx = await loadFixture(publishedFixture);
      await ctx.registry.connect(ctx.owner).addPublisher("acme/digits", ctx.other.address);
      expect(await ctx.registry.nonces(ctx.other.address)).to.equal(0n);
      await publishAs(ctx, ctx.other, { version: "1.1.0", nonce: 0n });
      expect(await ctx.registry.nonces(ctx.other.address)).to.equal(1n);
      expect(await ctx.registry.nonces(ctx.publisher.address)).to.equal(1n);
    });

    it("refuses a version label that is already taken", async function () {
      const ctx = await loadFixture(publishedFixture);
      const { registry, publisher } = ctx;
      const again = makeRelease({ version: "1.0.0", nonce: 1n, artifactSha256: sha("different bytes") });
      await expect(registry.publish(again, publisher.address, await sign(publisher, registry, again)))
        .to.be.revertedWithCustomError(registry, "DuplicateVersion")
        .withArgs(ctx.firstId);
    });

    it("refuses a revoked or unknown parent", async function () {
      const ctx = await loadFixture(publishedFixture);
      const { registry, publisher, owner } = ctx;
      await registry.connect(owner).revoke(ctx.firstId, "bad");
      const child = makeRelease({ version: "1.1.0", nonce: 1n, parent: ctx.firstId });
      await expect(registry.publish(child, publisher.address, await sign(publisher, registry, child)))
        .to.be.revertedWithCustomError(registry, "ReleaseIsRevoked")
        .withArgs(ctx.firstId);
      const unknown = releaseId("acme/digits", "0.0.1");
      const orphan = makeRelease({ version: "1.1.0", nonce: 1n, parent: unknown });
      await expect(registry.publish(orphan, publisher.address, await sign(publisher, registry, orphan)))
        .to.be.revertedWithCustomError(registry, "UnknownRelease")
        .withArgs(unknown);
    });

    it("accepts a parent of another name (a fine-tune of someone else's base model)", async function () {
      const ctx = await loadFixture(publishedFixture);
      const { release, id } = await publishAs(ctx, ctx.other, { name: "other/tuned", parent: ctx.firstId });
      expect((await ctx.registry.getRelease(id)).parent).to.equal(ctx.firstId);
      expect(release.parent).to.equal(ctx.firstId);
    });

    it("accepts an ERC-1271 wallet publisher that approves, refuses one that does not", async function () {
      const ctx = await loadFixture(deployFixture);
      const { registry, wallet, walletKey, relayer } = ctx;
      const walletAddress = await wallet.getAddress();
      const release = makeRelease({ name: "dao/model", nonce: 0n });
      const signature = await sign(walletKey, registry, release);
      // Signed by the wallet's key but the wallet says no.
      await wallet.setAccepting(false);
      await expect(registry.connect(relayer).publish(release, walletAddress, signature))
        .to.be.revertedWithCustomError(registry, "InvalidSignature")
        .withArgs(walletAddress);
      await wallet.setAccepting(true);
      // The wallet accepts only its own key's signatures.
      const wrongKey = await sign(relayer, registry, release);
      await expect(registry.connect(relayer).publish(release, walletAddress, wrongKey))
        .to.be.revertedWithCustomError(registry, "InvalidSignature")
        .withArgs(walletAddress);
      await expect(registry.connect(relayer).publish(release, walletAddress, signature))
        .to.emit(registry, "ReleasePublished")
        .withArgs(
          releaseId("dao/model", "1.0.0"),
          key("dao/model"),
          release.artifactSha256,
          "dao/model",
          "1.0.0",
          anyValue,
          release.artifactSize,
          release.provenanceSha256,
          anyValue,
          ZERO32,
          walletAddress,
          relayer.address
        );
      expect((await registry.nameOwner("dao/model"))[0]).to.equal(walletAddress);
      expect(await registry.nonces(walletAddress)).to.equal(1n);
      // The key alone is not the publisher.
      expect(await registry.isPublisher("dao/model", walletKey.address)).to.equal(false);
    });

    const badCids = {
      "35 bytes": (d) => ethers.dataSlice(cid(0x70, d), 0, 35),
      "37 bytes": (d) => ethers.concat([cid(0x70, d), "0x00"]),
      empty: () => "0x",
      "CIDv0 multihash without prefix": (d) => ethers.concat(["0x1220", d, "0x0000"]),
      "CID version 0": (d) => ethers.concat(["0x00701220", d]),
      "CID version 2": (d) => ethers.concat(["0x02701220", d]),
      "two-byte codec varint": (d) => ethers.concat(["0x0180", "0x12", d, "0x00"]),
      "sha2-512 multihash code": (d) => ethers.concat(["0x01701320", d]),
      "blake2b multihash code": (d) => ethers.concat(["0x0170b220", d]),
      "digest length 31": (d) => ethers.concat(["0x0170121f", d]),
      "all-zero digest": () => cid(0x55, ZERO32),
    };
    for (const [why, make] of Object.entries(badCids)) {
      for (const field of ["artifactCid", "provenanceCid"]) {
        it(`refuses an unsupported ${field} (${why})`, async function () {
          const ctx = await loadFixture(publishedFixture);
          const bad = make(sha("x"));
          const release = makeRelease({ version: "2.0.0", nonce: 1n, [field]: bad });
          await expect(ctx.registry.publish(release, ctx.publisher.address, await sign(ctx.publisher, ctx.registry, release)))
            .to.be.revertedWithCustomError(ctx.registry, "UnsupportedCid")
            .withArgs(ethers.hexlify(bad));
        });
      }
    }

    const badFields = {
      "zero artifact digest": { artifactSha256: ZERO32 },
      "zero provenance digest": { provenanceSha256: ZERO32 },
      "zero size": { artifactSize: 0n },
      "size above 2^40-1": { artifactSize: MAX_SIZE + 1n },
      "size at uint64 max": { artifactSize: 2n ** 64n - 1n },
    };
    for (const [why, over] of Object.entries(badFields)) {
      it(`refuses ${why}`, async function () {
        const ctx = await loadFixture(publishedFixture);
        const release = makeRelease({ version: "2.0.0", nonce: 1n, ...over });
        await expect(
          ctx.registry.publish(release, ctx.publisher.address, await sign(ctx.publisher, ctx.registry, release))
        ).to.be.revertedWithCustomError(ctx.registry, "InvalidRelease");
      });
    }

    it("accepts the largest artifact size", async function () {
      const ctx = await loadFixture(publishedFixture);
      expect(await ctx.registry.MAX_ARTIFACT_SIZE()).to.equal(MAX_SIZE);
      const { id } = await publishAs(ctx, ctx.publisher, { version: "2.0.0", artifactSize: MAX_SIZE });
      expect((await ctx.registry.getRelease(id)).artifactSize).to.equal(MAX_SIZE);
    });

    const badVersions = {
      empty: "",
      space: "1.0.0 beta",
      underscore: "1.0.0_1",
      slash: "v1/2",
      at: "1.0.0@x",
      "non-ascii": "1.0.0-β",
      "65 characters": "1." + "0".repeat(63),
    };
    for (const [why, version] of Object.entries(badVersions)) {
      it(`refuses an invalid version (${why})`, async function () {
        const ctx = await loadFixture(publishedFixture);
        const release = makeRelease({ version, nonce: 1n });
        await expect(
          ctx.registry.publish(release, ctx.publisher.address, await sign(ctx.publisher, ctx.registry, release))
        )
          .to.be.revertedWithCustomError(ctx.registry, "InvalidVersion")
          .withArgs(version);
      });
    }

    it("accepts SemVer labels up to 64 characters", async function () {
      const ctx = await loadFixture(publishedFixture);
      for (const version of ["2.0.0-rc.1+build.5", "1." + "0".repeat(62), "10.20.30-alpha-beta.1"]) {
        const { id } = await publishAs(ctx, ctx.publisher, { version });
        expect((await ctx.registry.getRelease(id)).version).to.equal(version);
      }
    });
  });

  describe("revoke", function () {
    it("lets the publisher revoke; the release stays readable with reason and time", async function () {
      const ctx = await loadFixture(publishedFixture);
      const { registry, publisher, firstId } = ctx;
      const when = (await time.latest()) + 50;
      await time.setNextBlockTimestamp(when);
      await expect(registry.connect(publisher).revoke(firstId, "accuracy regression"))
        .to.emit(registry, "ReleaseRevoked")
        .withArgs(firstId, key("acme/digits"), publisher.address, "accuracy regression");
      expect(await registry.isRevoked(firstId)).to.equal(true);
      expect(await registry.isActive(firstId)).to.equal(false);
      const info = await registry.getRelease(firstId);
      expectInfo(info, ctx.first, { revokedAt: BigInt(when), revocationReason: "accuracy regression", publisher: publisher.address });
      expect(await registry.releaseCount("acme/digits")).to.equal(1n);
      expect(await registry.releasesByDigest(ctx.first.artifactSha256, 0, 5)).to.deep.equal([firstId]);
    });

    it("lets the name owner revoke a publisher's release, and keeps a long reason intact", async function () {
      const ctx = await loadFixture(publishedFixture);
      const reason = "key compromised: " + "x".repeat(200);
      await expect(ctx.registry.connect(ctx.owner).revoke(ctx.firstId, reason))
        .to.emit(ctx.registry, "ReleaseRevoked")
        .withArgs(ctx.firstId, key("acme/digits"), ctx.owner.address, reason);
      expect((await ctx.registry.getRelease(ctx.firstId)).revocationReason).to.equal(reason);
    });

    it("lets a removed publisher still revoke its own release (revoking only ever removes trust)", async function () {
      const ctx = await loadFixture(publishedFixture);
      await ctx.registry.connect(ctx.owner).removePublisher("acme/digits", ctx.publisher.address);
      await expect(ctx.registry.connect(ctx.publisher).revoke(ctx.firstId, "")).to.emit(ctx.registry, "ReleaseRevoked");
      expect(await ctx.registry.isRevoked(ctx.firstId)).to.equal(true);
    });

    it("refuses a stranger, another publisher of the name, a second revoke, an unknown id", async function () {
      const ctx = await loadFixture(publishedFixture);
      const { registry, stranger, owner, other, firstId } = ctx;
      await expect(registry.connect(stranger).revoke(firstId, "no"))
        .to.be.revertedWithCustomError(registry, "NotAuthorisedToRevoke")
        .withArgs(firstId, stranger.address);
      await registry.connect(owner).addPublisher("acme/digits", other.address);
      await expect(registry.connect(other).revoke(firstId, "no"))
        .to.be.revertedWithCustomError(registry, "NotAuthorisedToRevoke")
        .withArgs(firstId, other.address);
      await registry.connect(owner).revoke(firstId, "first");
      await expect(registry.connect(owner).revoke(firstId, "second"))
        .to.be.revertedWithCustomError(registry, "ReleaseIsRevoked")
        .withArgs(firstId);
      expect((await registry.getRelease(firstId)).revocationReason).to.equal("first");
      const unknown = releaseId("acme/digits", "7.7.7");
      await expect(registry.connect(owner).revoke(unknown, "x"))
        .to.be.revertedWithCustomError(registry, "UnknownRelease")
        .withArgs(unknown);
    });

    it("follows name ownership: the new owner may revoke, the old one may not", async function () {
      const ctx = await loadFixture(publishedFixture);
      const { registry, owner, other, firstId } = ctx;
      await registry.connect(owner).proposeNameOwner("acme/digits", other.address);
      await registry.connect(other).acceptNameOwner("acme/digits");
      await expect(registry.connect(owner).revoke(firstId, "x"))
        .to.be.revertedWithCustomError(registry, "NotAuthorisedToRevoke")
        .withArgs(firstId, owner.address);
      await expect(registry.connect(other).revoke(firstId, "x")).to.emit(registry, "ReleaseRevoked");
    });
  });

  describe("attest", function () {
    it("refuses an unknown release", async function () {
      const { registry, attester } = await loadFixture(deployFixture);
      const unknown = releaseId("acme/digits", "1.0.0");
      await expect(registry.connect(attester).attest(unknown, true, sha("r")))
        .to.be.revertedWithCustomError(registry, "UnknownRelease")
        .withArgs(unknown);
    });

    it("records a verdict, replaces it on a second call, keeps one entry per attester", async function () {
      const ctx = await loadFixture(publishedFixture);
      const { registry, attester, other, firstId } = ctx;
      const t1 = (await time.latest()) + 10;
      await time.setNextBlockTimestamp(t1);
      await expect(registry.connect(attester).attest(firstId, true, sha("report 1")))
        .to.emit(registry, "ReleaseAttested")
        .withArgs(firstId, attester.address, true, sha("report 1"));
      expect(await registry.attestationsOf(firstId)).to.deep.equal([[attester.address, true, sha("report 1"), BigInt(t1)]]);

      await registry.connect(other).attest(firstId, true, sha("other report"));
      const t2 = t1 + 100;
      await time.setNextBlockTimestamp(t2);
      await expect(registry.connect(attester).attest(firstId, false, sha("report 2")))
        .to.emit(registry, "ReleaseAttested")
        .withArgs(firstId, attester.address, false, sha("report 2"));
      const all = await registry.attestationsOf(firstId);
      expect(all.length).to.equal(2);
      expect(all[0]).to.deep.equal([attester.address, false, sha("report 2"), BigInt(t2)]);
      expect(all[1].attester).to.equal(other.address);
      expect(all[1].passed).to.equal(true);
      expect(await registry.attestedBy(attester.address, 0, 10)).to.deep.equal([firstId]);
    });

    it("allows a verdict on a revoked release (an auditor may still report on it)", async function () {
      const ctx = await loadFixture(publishedFixture);
      await ctx.registry.connect(ctx.owner).revoke(ctx.firstId, "bad");
      await expect(ctx.registry.connect(ctx.attester).attest(ctx.firstId, false, sha("r"))).to.emit(
        ctx.registry,
        "ReleaseAttested"
      );
    });

    it("pages the releases an attester has judged", async function () {
      const ctx = await loadFixture(publishedFixture);
      const ids = [ctx.firstId];
      for (const version of ["1.1.0", "1.2.0"]) ids.push((await publishAs(ctx, ctx.publisher, { version })).id);
      for (const id of ids) await ctx.registry.connect(ctx.attester).attest(id, true, sha(id));
      const page = (o, l) => ctx.registry.attestedBy(ctx.attester.address, o, l);
      expect(await page(0, 2)).to.deep.equal(ids.slice(0, 2));
      expect(await page(2, 10)).to.deep.equal(ids.slice(2));
      expect(await page(1, 1)).to.deep.equal([ids[1]]);
      expect(await page(3, 1)).to.deep.equal([]);
      expect(await page(99, 1)).to.deep.equal([]);
      expect(await page(0, 0)).to.deep.equal([]);
      expect(await page(1, ethers.MaxUint256)).to.deep.equal(ids.slice(1));
      expect(await ctx.registry.attestedBy(ctx.other.address, 0, 10)).to.deep.equal([]);
    });
  });

  describe("views", function () {
    async function historyFixture() {
      const ctx = await publishedFixture();
      const ids = [ctx.firstId];
      const releases = [ctx.first];
      for (const version of ["1.1.0", "1.2.0", "2.0.0"]) {
        const { id, release } = await publishAs(ctx, ctx.publisher, { version, parent: ids[ids.length - 1] });
        ids.push(id);
        releases.push(release);
      }
      return { ...ctx, ids, releases };
    }

    it("latest is the newest release that is not revoked", async function () {
      const ctx = await loadFixture(historyFixture);
      const { registry, owner, ids } = ctx;
      expect((await registry.latest("acme/digits")).id).to.equal(ids[3]);
      await registry.connect(owner).revoke(ids[3], "x");
      expect((await registry.latest("acme/digits")).id).to.equal(ids[2]);
      await registry.connect(owner).revoke(ids[1], "x");
      expect((await registry.latest("acme/digits")).id).to.equal(ids[2]);
      await registry.connect(owner).revoke(ids[2], "x");
      expectInfo(await registry.latest("acme/digits"), ctx.releases[0], { revokedAt: 0n });
      await registry.connect(owner).revoke(ids[0], "x");
      await expect(registry.latest("acme/digits"))
        .to.be.revertedWithCustomError(registry, "NoActiveRelease")
        .withArgs(key("acme/digits"));
      // A later release becomes latest again.
      const { id } = await publishAs(ctx, ctx.publisher, { version: "3.0.0" });
      expect((await registry.latest("acme/digits")).id).to.equal(id);
    });

    it("latest of a name without releases reverts with NoActiveRelease", async function () {
      const { registry, owner } = await loadFixture(deployFixture);
      await expect(registry.latest("acme/none"))
        .to.be.revertedWithCustomError(registry, "NoActiveRelease")
        .withArgs(key("acme/none"));
      await registry.connect(owner).claimName("acme/none");
      await expect(registry.latest("acme/none")).to.be.revertedWithCustomError(registry, "NoActiveRelease");
    });

    it("pages the releases of a name in publish order", async function () {
      const { registry, ids } = await loadFixture(historyFixture);
      expect(await registry.releaseCount("acme/digits")).to.equal(4n);
      expect(await registry.releaseCount("acme/none")).to.equal(0n);
      expect(await registry.releasesOf("acme/digits", 0, 100)).to.deep.equal(ids);
      expect(await registry.releasesOf("acme/digits", 0, 2)).to.deep.equal(ids.slice(0, 2));
      expect(await registry.releasesOf("acme/digits", 2, 2)).to.deep.equal(ids.slice(2, 4));
      expect(await registry.releasesOf("acme/digits", 3, 5)).to.deep.equal([ids[3]]);
      expect(await registry.releasesOf("acme/digits", 4, 1)).to.deep.equal([]);
      expect(await registry.releasesOf("acme/digits", 1000, 1)).to.deep.equal([]);
      expect(await registry.releasesOf("acme/digits", 1, 0)).to.deep.equal([]);
      expect(await registry.releasesOf("acme/digits", ethers.MaxUint256, ethers.MaxUint256)).to.deep.equal([]);
      expect(await registry.releasesOf("acme/digits", 1, ethers.MaxUint256)).to.deep.equal(ids.slice(1));
      expect(await registry.releasesOf("acme/none", 0, 10)).to.deep.equal([]);
    });

    it("pages the releases that share an artifact digest, across names, in publish order", async function () {
      const ctx = await loadFixture(historyFixture);
      const shared = ctx.releases[1].artifactSha256;
      const a = await publishAs(ctx, ctx.publisher, { version: "4.0.0", artifactSha256: shared });
      const b = await publishAs(ctx, ctx.other, { name: "mirror/digits", artifactSha256: shared });
      const c = await publishAs(ctx, ctx.publisher, { version: "5.0.0", artifactSha256: shared });
      const expected = [ctx.ids[1], a.id, b.id, c.id];
      const page = (o, l) => ctx.registry.releasesByDigest(shared, o, l);
      expect(await page(0, 10)).to.deep.equal(expected);
      expect(await page(0, 1)).to.deep.equal(expected.slice(0, 1));
      expect(await page(1, 2)).to.deep.equal(expected.slice(1, 3));
      expect(await page(3, 2)).to.deep.equal(expected.slice(3));
      expect(await page(4, 1)).to.deep.equal([]);
      expect(await page(1000, 1000)).to.deep.equal([]);
      expect(await page(2, 0)).to.deep.equal([]);
      expect(await page(2, ethers.MaxUint256)).to.deep.equal(expected.slice(2));
      expect(await page(ethers.MaxUint256, 1)).to.deep.equal([]);
      expect(await ctx.registry.releasesByDigest(sha("nothing"), 0, 10)).to.deep.equal([]);
      // The other digests keep their own single entries.
      expect(await ctx.registry.releasesByDigest(ctx.releases[2].artifactSha256, 0, 10)).to.deep.equal([ctx.ids[2]]);
      // Revoked releases stay listed (the reader decides).
      await ctx.registry.connect(ctx.owner).revoke(a.id, "x");
      expect(await page(0, 10)).to.deep.equal(expected);
    });

    it("reads releases by id and by version, and knows what does not exist", async function () {
      const { registry, ids, releases } = await loadFixture(historyFixture);
      for (let i = 0; i < ids.length; i++) {
        expectInfo(await registry.getRelease(ids[i]), releases[i], {});
        expectInfo(await registry.getReleaseByVersion("acme/digits", releases[i].version), releases[i], {});
      }
      expect((await registry.getRelease(ids[2])).parent).to.equal(ids[1]);
      const unknown = releaseId("acme/digits", "0.0.0");
      await expect(registry.getRelease(unknown)).to.be.revertedWithCustomError(registry, "UnknownRelease").withArgs(unknown);
      await expect(registry.getReleaseByVersion("acme/digits", "0.0.0"))
        .to.be.revertedWithCustomError(registry, "UnknownRelease")
        .withArgs(unknown);
      expect(await registry.isActive(unknown)).to.equal(false);
      expect(await registry.isRevoked(unknown)).to.equal(false);
      expect(await registry.attestationsOf(unknown)).to.deep.equal([]);
      expect(await registry.nameOwner("acme/none")).to.deep.equal([ethers.ZeroAddress, ethers.ZeroAddress]);
      expect(await registry.isPublisher("acme/none", ethers.ZeroAddress)).to.equal(false);
    });

    it("computes ids and EIP-712 digests the way off-chain code does", async function () {
      const { registry } = await loadFixture(deployFixture);
      expect(await registry.computeReleaseId("acme/digits", "1.0.0")).to.equal(releaseId("acme/digits", "1.0.0"));
      expect(await registry.computeReleaseId("acme/digits", "1.0.1")).to.not.equal(releaseId("acme/digits", "1.0.0"));
      expect(await registry.RELEASE_TYPEHASH()).to.equal(ethers.id(TYPE_STRING));
      const release = makeRelease({ parent: sha("p"), nonce: 7n, deadline: 12345n });
      const domain = await domainOf(registry);
      expect(await registry.hashRelease(release)).to.equal(ethers.TypedDataEncoder.hash(domain, RELEASE_TYPES, release));
    });

    it("reports its EIP-712 domain (ERC-5267)", async function () {
      const { registry } = await loadFixture(deployFixture);
      const { chainId } = await ethers.provider.getNetwork();
      const d = await registry.eip712Domain();
      expect(d.fields).to.equal("0x0f");
      expect(d.name).to.equal("ModelRegistry");
      expect(d.version).to.equal("1");
      expect(d.chainId).to.equal(chainId);
      expect(d.verifyingContract).to.equal(await registry.getAddress());
      expect(d.salt).to.equal(ZERO32);
      expect(d.extensions).to.deep.equal([]);
    });
  });
});
