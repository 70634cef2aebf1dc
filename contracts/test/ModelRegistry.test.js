// ModelRegistry releases through the external ABI only (the storage layout may change for gas, these
// tests must not): publish with and without a model card, revoke, attest, and the paged views.
// Signatures are real EIP-712 signatures made with ethers' signTypedData.
const { expect } = require("chai");
const { ethers } = require("hardhat");
const { loadFixture, time } = require("@nomicfoundation/hardhat-network-helpers");
const { anyValue } = require("@nomicfoundation/hardhat-chai-matchers/withArgs");
const { RELEASE_TYPES, domainOf } = require("./_release");
const {
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
} = require("./_fixtures");

const TYPE_STRING =
  "Release(string name,string version,bytes32 artifactSha256,bytes artifactCid,uint64 artifactSize," +
  "bytes32 provenanceSha256,bytes provenanceCid,bytes32 cardSha256,bytes cardCid,bytes32 parent," +
  "uint256 nonce,uint256 deadline)";

describe("ModelRegistry", function () {
  describe("publish", function () {
    it("anchors a release submitted by a relayer, with every field readable", async function () {
      const ctx = await loadFixture(publishedFixture);
      const { registry, publisher, relayer } = ctx;
      const release = makeRelease({ version: "1.1.0-rc.1+build.7", parent: ctx.firstId, nonce: 1n });
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
          ZERO32,
          "0x",
          ctx.firstId,
          publisher.address,
          relayer.address
        );
      expect(await registry.nonces(publisher.address)).to.equal(2n);
      const info = await registry.getRelease(id);
      expectInfo(info, release, { publisher: publisher.address, publishedAt: BigInt(when), revokedAt: 0n, revocationReason: "" });
      expectInfo(await registry.getReleaseByVersion(release.name, release.version), release, {});
      expect(await registry.isActive(id)).to.equal(true);
      expect(await registry.isValid(id)).to.equal(true);
      expect(await registry.isRevoked(id)).to.equal(false);
      expect(await registry.releaseCount("acme/digits")).to.equal(2n);
      expect(await registry.releasesOf("acme/digits", 0, 10)).to.deep.equal([ctx.firstId, id]);
      expect(await registry.releasesByDigest(release.artifactSha256, 0, 10)).to.deep.equal([[id], 0n]);
      // The relayer gained nothing.
      expect(await registry.mayPublish("acme/digits", relayer.address)).to.equal(false);
    });

    it("lets the namespace owner publish any name under it without being added", async function () {
      const ctx = await loadFixture(publishedFixture);
      const { id, release } = await publishAs(ctx, ctx.owner, { name: "acme/new-model" });
      expectInfo(await ctx.registry.getRelease(id), release, { publisher: ctx.owner.address });
      expect((await ctx.registry.latest("acme/new-model")).id).to.equal(id);
    });

    it("signs, stores and emits a model card's digest and CID", async function () {
      const ctx = await loadFixture(publishedFixture);
      const { registry, publisher, relayer } = ctx;
      // A raw single-block card (CID digest = SHA-256) and a dag-pb card (its own digest).
      for (const [version, fields] of [
        ["2.0.0", card("raw")],
        ["2.1.0", { cardSha256: sha("card dag-pb"), cardCid: cid(0x70, sha("card dag-pb root")) }],
      ]) {
        const release = makeRelease({ version, nonce: await registry.nonces(publisher.address), ...fields });
        const signature = await sign(publisher, registry, release);
        await expect(registry.connect(relayer).publish(release, publisher.address, signature))
          .to.emit(registry, "ReleasePublished")
          .withArgs(
            releaseId("acme/digits", version),
            key("acme/digits"),
            release.artifactSha256,
            "acme/digits",
            version,
            anyValue,
            release.artifactSize,
            release.provenanceSha256,
            anyValue,
            fields.cardSha256,
            ethers.hexlify(fields.cardCid),
            ZERO32,
            publisher.address,
            relayer.address
          );
        expectInfo(await registry.getRelease(releaseId("acme/digits", version)), release, {});
      }
      // The card is signed: changing it breaks the signature.
      const release = makeRelease({ version: "2.2.0", nonce: 2n, ...card("signed") });
      const signature = await sign(publisher, registry, release);
      await expect(registry.publish({ ...release, ...card("changed") }, publisher.address, signature))
        .to.be.revertedWithCustomError(registry, "InvalidSignature")
        .withArgs(publisher.address);
      // A release without a card reads back without one.
      const info = await registry.getRelease(ctx.firstId);
      expect(info.cardSha256).to.equal(ZERO32);
      expect(info.cardCid).to.equal("0x");
    });

    it("refuses a card digest without a CID, a CID without a digest, and a bad card CID", async function () {
      const ctx = await loadFixture(publishedFixture);
      const { registry, publisher } = ctx;
      for (const over of [{ cardSha256: sha("c") }, { cardCid: cid(0x55, sha("c")) }]) {
        const release = makeRelease({ version: "2.0.0", nonce: 1n, ...over });
        await expect(
          registry.publish(release, publisher.address, await sign(publisher, registry, release))
        ).to.be.revertedWithCustomError(registry, "InvalidRelease");
      }
      const bad = ethers.concat(["0x01771220", sha("c")]);
      const release = makeRelease({ version: "2.0.0", nonce: 1n, cardSha256: sha("c"), cardCid: bad });
      await expect(registry.publish(release, publisher.address, await sign(publisher, registry, release)))
        .to.be.revertedWithCustomError(registry, "UnsupportedCid")
        .withArgs(ethers.hexlify(bad));
    });

    it("round-trips CIDs of every supported codec, and CIDs whose digest is the content SHA-256", async function () {
      const ctx = await loadFixture(publishedFixture);
      let n = 0;
      for (const [codecA, codecP, codecC] of [[0x55, 0x70, 0x71], [0x70, 0x71, 0x55], [0x71, 0x55, 0x70]]) {
        const version = `1.0.${++n}`;
        const artifactSha256 = sha(`a${version}`);
        const provenanceSha256 = sha(`p${version}`);
        const cardSha256 = sha(`c${version}`);
        // Each field in turn carries its content's own SHA-256 (a single raw block): storage may
        // deduplicate, reads must not notice.
        const over = {
          version,
          artifactSha256,
          provenanceSha256,
          cardSha256,
          artifactCid: cid(codecA, n === 1 ? artifactSha256 : sha(`acid${version}`)),
          provenanceCid: cid(codecP, n === 2 ? provenanceSha256 : sha(`pcid${version}`)),
          cardCid: cid(codecC, n === 3 ? cardSha256 : sha(`ccid${version}`)),
        };
        const { release, id } = await publishAs(ctx, ctx.publisher, over);
        expectInfo(await ctx.registry.getRelease(id), release, {});
      }
    });

    it("validates the name of a first release", async function () {
      const ctx = await loadFixture(publishedFixture);
      for (const name of ["Acme/model", "acme", "acme/b/c", "acme/", "acme/..", "acme/" + "m".repeat(65)]) {
        const release = makeRelease({ name, nonce: 0n });
        const signature = await sign(ctx.owner, ctx.registry, release);
        await expect(ctx.registry.publish(release, ctx.owner.address, signature))
          .to.be.revertedWithCustomError(ctx.registry, "InvalidName")
          .withArgs(name);
      }
    });

    it("accepts names at the limits of the rule", async function () {
      const ctx = await loadFixture(deployFixture);
      for (const [ns, model] of [["a".repeat(64), "b".repeat(64)], ["a", "b"], ["0.9_x-y", "z.z-9_"], ["...", ".x"]]) {
        await claimNamespace(ctx.registry, ctx.owner, ns);
        const { id } = await publishAs(ctx, ctx.owner, { name: `${ns}/${model}` });
        expect((await ctx.registry.getRelease(id)).name).to.equal(`${ns}/${model}`);
      }
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
      const { registry, second, owner } = ctx;
      await claimNamespace(registry, owner, "acme");
      await claimNamespace(second, owner, "acme");
      const release = makeRelease({ nonce: 0n });
      const forSecond = await sign(owner, second, release);
      await expect(registry.publish(release, owner.address, forSecond))
        .to.be.revertedWithCustomError(registry, "InvalidSignature")
        .withArgs(owner.address);
      await expect(second.publish(release, owner.address, forSecond)).to.emit(second, "ReleasePublished");
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
      await expect(registry.publish({ ...release, ...card("added") }, publisher.address, good))
        .to.be.revertedWithCustomError(registry, "InvalidSignature");
      await expect(registry.publish(release, publisher.address, "0x1234"))
        .to.be.revertedWithCustomError(registry, "InvalidSignature");
      await expect(registry.publish(release, publisher.address, "0x"))
        .to.be.revertedWithCustomError(registry, "InvalidSignature");
    });

    it("refuses a high-s (malleable) copy of a valid signature", async function () {
      const ctx = await loadFixture(publishedFixture);
      const { registry, publisher } = ctx;
      const release = makeRelease({ version: "1.1.0", nonce: 1n });
      const sig = ethers.Signature.from(await sign(publisher, registry, release));
      const n = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
      const highS = ethers.concat([sig.r, ethers.toBeHex(n - BigInt(sig.s), 32), sig.v === 27 ? "0x1c" : "0x1b"]);
      await expect(registry.publish(release, publisher.address, highS))
        .to.be.revertedWithCustomError(registry, "InvalidSignature")
        .withArgs(publisher.address);
    });

    it("refuses the zero address as publisher", async function () {
      const ctx = await loadFixture(publishedFixture);
      const release = makeRelease({ nonce: 0n, version: "3.0.0" });
      const signature = await sign(ctx.publisher, ctx.registry, release);
      await expect(ctx.registry.publish(release, ethers.ZeroAddress, signature))
        .to.be.revertedWithCustomError(ctx.registry, "NotPublisher")
        .withArgs(key("acme/digits"), ethers.ZeroAddress);
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
      await claimNamespace(ctx.registry, ctx.other, "other");
      const { id } = await publishAs(ctx, ctx.other, { name: "other/tuned", parent: ctx.firstId });
      expect((await ctx.registry.getRelease(id)).parent).to.equal(ctx.firstId);
    });

    it("accepts an ERC-1271 wallet publisher that approves, refuses one that does not", async function () {
      const ctx = await loadFixture(deployFixture);
      const { registry, wallet, walletKey, relayer, owner } = ctx;
      const walletAddress = await wallet.getAddress();
      await claimNamespace(registry, owner, "dao");
      await registry.connect(owner).addPublisher("dao/model", walletAddress);
      const release = makeRelease({ name: "dao/model", nonce: 0n });
      const signature = await sign(walletKey, registry, release);
      await wallet.setAccepting(false);
      await expect(registry.connect(relayer).publish(release, walletAddress, signature))
        .to.be.revertedWithCustomError(registry, "InvalidSignature")
        .withArgs(walletAddress);
      await wallet.setAccepting(true);
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
          "0x",
          ZERO32,
          walletAddress,
          relayer.address
        );
      expect(await registry.nonces(walletAddress)).to.equal(1n);
      // The key alone is not the publisher.
      expect(await registry.mayPublish("dao/model", walletKey.address)).to.equal(false);
    });

    const badCids = {
      "35 bytes": (d) => ethers.dataSlice(cid(0x70, d), 0, 35),
      "37 bytes": (d) => ethers.concat([cid(0x70, d), "0x00"]),
      empty: () => "0x",
      "CIDv0 multihash without prefix": (d) => ethers.concat(["0x1220", d, "0x0000"]),
      "CID version 0": (d) => ethers.concat(["0x00701220", d]),
      "CID version 2": (d) => ethers.concat(["0x02701220", d]),
      "two-byte codec varint": (d) => ethers.concat(["0x0180", "0x12", d, "0x00"]),
      "codec 0x00": (d) => cid(0x00, d),
      "codec 0x7f": (d) => cid(0x7f, d),
      "codec dag-json (0x0129 does not fit)": (d) => cid(0x29, d),
      "sha2-512 multihash code": (d) => ethers.concat(["0x01701320", d]),
      "blake2b multihash code": (d) => ethers.concat(["0x0170b220", d]),
      "digest length 31": (d) => ethers.concat(["0x0170121f", d]),
      "all-zero digest": () => cid(0x55, ZERO32),
    };
    for (const [why, make] of Object.entries(badCids)) {
      for (const field of ["artifactCid", "provenanceCid", "cardCid"]) {
        it(`refuses an unsupported ${field} (${why})`, async function () {
          const ctx = await loadFixture(publishedFixture);
          const bad = make(sha("x"));
          const over = { version: "2.0.0", nonce: 1n, [field]: bad };
          if (field === "cardCid") over.cardSha256 = sha("card");
          const release = makeRelease(over);
          const reverted = expect(
            ctx.registry.publish(release, ctx.publisher.address, await sign(ctx.publisher, ctx.registry, release))
          );
          if (field === "cardCid" && bad === "0x") {
            await reverted.to.be.revertedWithCustomError(ctx.registry, "InvalidRelease");
          } else {
            await reverted.to.be.revertedWithCustomError(ctx.registry, "UnsupportedCid").withArgs(ethers.hexlify(bad));
          }
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
      expect(await registry.isValid(firstId)).to.equal(false);
      const info = await registry.getRelease(firstId);
      expectInfo(info, ctx.first, { revokedAt: BigInt(when), revocationReason: "accuracy regression", publisher: publisher.address });
      expect(await registry.releaseCount("acme/digits")).to.equal(1n);
      expect(await registry.releasesByDigest(ctx.first.artifactSha256, 0, 5)).to.deep.equal([[firstId], 0n]);
    });

    it("lets the namespace owner revoke a publisher's release, and keeps a long reason intact", async function () {
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
      const { registry, attester, other, stranger, firstId } = ctx;
      const t1 = (await time.latest()) + 10;
      await time.setNextBlockTimestamp(t1);
      await expect(registry.connect(attester).attest(firstId, true, sha("report 1")))
        .to.emit(registry, "ReleaseAttested")
        .withArgs(firstId, attester.address, true, sha("report 1"));
      expect(await registry.attestationsOf(firstId, 0, 10)).to.deep.equal([[attester.address, true, sha("report 1"), BigInt(t1)]]);

      await registry.connect(other).attest(firstId, true, sha("other report"));
      const t2 = t1 + 100;
      await time.setNextBlockTimestamp(t2);
      await expect(registry.connect(attester).attest(firstId, false, sha("report 2")))
        .to.emit(registry, "ReleaseAttested")
        .withArgs(firstId, attester.address, false, sha("report 2"));
      expect(await registry.attestationCount(firstId)).to.equal(2n);
      const all = await registry.attestationsOf(firstId, 0, 10);
      expect(all.length).to.equal(2);
      expect(all[0]).to.deep.equal([attester.address, false, sha("report 2"), BigInt(t2)]);
      expect(all[1].attester).to.equal(other.address);
      expect(await registry.attestationsOf(firstId, 1, 1)).to.deep.equal([all[1]]);
      expect(await registry.attestationsOf(firstId, 2, 1)).to.deep.equal([]);
      expect(await registry.attestationOf(firstId, attester.address)).to.deep.equal(all[0]);
      expect(await registry.attestationOf(firstId, other.address)).to.deep.equal(all[1]);
      // One that never attested: attestedAt 0.
      expect(await registry.attestationOf(firstId, stranger.address)).to.deep.equal([stranger.address, false, ZERO32, 0n]);
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

    it("spam cannot make a listed attester's verdict or a page cost more to read", async function () {
      const ctx = await loadFixture(publishedFixture);
      const { registry, attester, firstId } = ctx;
      await registry.connect(attester).attest(firstId, true, sha("real"));
      const cost = () => registry.attestationOf.estimateGas(firstId, attester.address);
      const pageCost = () => registry.attestationsOf.estimateGas(firstId, 0, 1);
      const before = [await cost(), await pageCost()];
      // 300 throw-away attesters pile verdicts on the release.
      const [funder] = await ethers.getSigners();
      for (let i = 0; i < 300; i++) {
        const spammer = ethers.Wallet.createRandom().connect(ethers.provider);
        await funder.sendTransaction({ to: spammer.address, value: ethers.parseEther("0.01") });
        await registry.connect(spammer).attest(firstId, true, sha(`spam ${i}`));
      }
      expect(await registry.attestationCount(firstId)).to.equal(301n);
      expect(await cost()).to.equal(before[0]);
      expect(await pageCost()).to.equal(before[1]);
      // A page never exceeds MAX_PAGE_SIZE, whatever the caller asks.
      expect((await registry.attestationsOf(firstId, 0, ethers.MaxUint256)).length).to.equal(256);
      expect((await registry.attestationsOf(firstId, 256, ethers.MaxUint256)).length).to.equal(45);
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

    it("latest is the newest valid release", async function () {
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
      const { id } = await publishAs(ctx, ctx.publisher, { version: "3.0.0" });
      expect((await registry.latest("acme/digits")).id).to.equal(id);
    });

    it("latest of a name without releases reverts with NoActiveRelease", async function () {
      const { registry } = await loadFixture(publishedFixture);
      await expect(registry.latest("acme/none"))
        .to.be.revertedWithCustomError(registry, "NoActiveRelease")
        .withArgs(key("acme/none"));
      await expect(registry.latest("nobody/none")).to.be.revertedWithCustomError(registry, "NoActiveRelease");
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

    it("pages the releases that share an artifact digest, across names, newest first, by cursor", async function () {
      const ctx = await loadFixture(historyFixture);
      const shared = ctx.releases[1].artifactSha256;
      await claimNamespace(ctx.registry, ctx.other, "mirror");
      const a = await publishAs(ctx, ctx.publisher, { version: "4.0.0", artifactSha256: shared });
      const b = await publishAs(ctx, ctx.other, { name: "mirror/digits", artifactSha256: shared });
      const c = await publishAs(ctx, ctx.publisher, { version: "5.0.0", artifactSha256: shared });
      const newestFirst = [c.id, b.id, a.id, ctx.ids[1]];
      const page = (cursor, limit) => ctx.registry.releasesByDigest(shared, cursor, limit);
      expect(await page(0, 10)).to.deep.equal([newestFirst, 0n]);
      // Walk it two at a time with the returned cursor.
      const [first, next] = await page(0, 2);
      expect(first).to.deep.equal(newestFirst.slice(0, 2));
      expect(next).to.equal(BigInt(a.id));
      expect(await page(next, 2)).to.deep.equal([newestFirst.slice(2), 0n]);
      expect(await page(next, 1)).to.deep.equal([[a.id], BigInt(ctx.ids[1])]);
      expect(await page(0, 0)).to.deep.equal([[], BigInt(c.id)]);
      expect((await page(0, ethers.MaxUint256))[0]).to.deep.equal(newestFirst);
      expect(await ctx.registry.releasesByDigest(sha("nothing"), 0, 10)).to.deep.equal([[], 0n]);
      expect(await ctx.registry.releasesByDigest(ctx.releases[2].artifactSha256, 0, 10)).to.deep.equal([[ctx.ids[2]], 0n]);
      // A cursor from another digest's list, or no release at all, is refused.
      for (const bad of [BigInt(ctx.ids[2]), 1n, BigInt(sha("nothing"))]) {
        await expect(page(bad, 1)).to.be.revertedWithCustomError(ctx.registry, "InvalidCursor").withArgs(bad);
      }
      // Revoked releases stay listed (the reader decides).
      await ctx.registry.connect(ctx.owner).revoke(a.id, "x");
      expect((await page(0, 10))[0]).to.deep.equal(newestFirst);
    });

    it("reads a digest page in O(page): its cost does not grow with the list", async function () {
      const ctx = await loadFixture(publishedFixture);
      const shared = ctx.first.artifactSha256;
      const ids = [ctx.firstId];
      for (let i = 1; i <= 40; i++) ids.push((await publishAs(ctx, ctx.publisher, { version: `1.${i}.0`, artifactSha256: shared })).id);
      const deepCursor = BigInt(ids[5]);
      const shallow = await ctx.registry.releasesByDigest.estimateGas(shared, BigInt(ids[39]), 3);
      const deep = await ctx.registry.releasesByDigest.estimateGas(shared, deepCursor, 3);
      expect(deep).to.be.lessThan(shallow + 200n);
      expect(shallow).to.be.lessThan(deep + 200n);
      expect((await ctx.registry.releasesByDigest(shared, deepCursor, 3))[0]).to.deep.equal([ids[5], ids[4], ids[3]]);
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
      expect(await registry.isValid(unknown)).to.equal(false);
      expect(await registry.lineageValid(unknown)).to.equal(false);
      expect(await registry.isRevoked(unknown)).to.equal(false);
      expect(await registry.attestationsOf(unknown, 0, 10)).to.deep.equal([]);
      expect(await registry.attestationCount(unknown)).to.equal(0n);
      expect(await registry.namespaceOwner("none")).to.deep.equal([ethers.ZeroAddress, ethers.ZeroAddress]);
      expect(await registry.mayPublish("none/x", ethers.ZeroAddress)).to.equal(false);
      expect(await registry.mayPublish("not a name", ethers.ZeroAddress)).to.equal(false);
    });

    it("computes ids and EIP-712 digests the way off-chain code does", async function () {
      const { registry } = await loadFixture(deployFixture);
      expect(await registry.computeReleaseId("acme/digits", "1.0.0")).to.equal(releaseId("acme/digits", "1.0.0"));
      expect(await registry.computeReleaseId("acme/digits", "1.0.1")).to.not.equal(releaseId("acme/digits", "1.0.0"));
      expect(await registry.RELEASE_TYPEHASH()).to.equal(ethers.id(TYPE_STRING));
      const domain = await domainOf(registry);
      for (const over of [{}, card("x")]) {
        const release = makeRelease({ parent: sha("p"), nonce: 7n, deadline: 12345n, ...over });
        expect(await registry.hashRelease(release)).to.equal(ethers.TypedDataEncoder.hash(domain, RELEASE_TYPES, release));
      }
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

  describe("lineage", function () {
    it("is valid only while the release counts and no ancestor is revoked", async function () {
      const ctx = await loadFixture(publishedFixture);
      const { registry, owner, firstId } = ctx;
      const child = await publishAs(ctx, ctx.publisher, { version: "1.1.0", parent: firstId });
      const grandchild = await publishAs(ctx, ctx.publisher, { version: "1.2.0", parent: child.id });
      expect(await registry.lineageValid(grandchild.id)).to.equal(true);
      await registry.connect(owner).revoke(firstId, "poisoned base");
      expect(await registry.isValid(grandchild.id)).to.equal(true);
      expect(await registry.lineageValid(grandchild.id)).to.equal(false);
      expect(await registry.lineageValid(child.id)).to.equal(false);
    });

    it("follows MAX_LINEAGE_DEPTH parents and refuses a deeper lineage (fail closed)", async function () {
      const ctx = await loadFixture(publishedFixture);
      const depth = Number(await ctx.registry.MAX_LINEAGE_DEPTH());
      expect(depth).to.equal(64);
      const ids = [ctx.firstId];
      for (let i = 1; i <= depth + 1; i++) {
        ids.push((await publishAs(ctx, ctx.publisher, { version: `1.${i}.0`, parent: ids[ids.length - 1] })).id);
      }
      // ids[depth] has exactly `depth` ancestors; ids[depth + 1] has one more than is followed.
      expect(await ctx.registry.lineageValid(ids[depth])).to.equal(true);
      expect(await ctx.registry.lineageValid(ids[depth + 1])).to.equal(false);
      await ctx.registry.connect(ctx.owner).revoke(ids[0], "root revoked");
      expect(await ctx.registry.lineageValid(ids[depth])).to.equal(false);
      expect(await ctx.registry.lineageValid(ids[1])).to.equal(false);
    });
  });
});
