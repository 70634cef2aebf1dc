// The edges of ModelRegistry's input rules and bounded loops that the other suites do not reach
// (found by `make coverage-contracts`): each case is something a hostile or careless caller can send.
const { expect } = require("chai");
const { ethers } = require("hardhat");
const { loadFixture } = require("@nomicfoundation/hardhat-network-helpers");
const { key, sha, releaseId, makeRelease, sign, publishAs, publishedFixture, claimNamespace } = require("./_fixtures");

describe("Limits", function () {
  describe("aliases", function () {
    // The grammar is [a-z][a-z0-9-]{0,31}: a first byte just above 'z' must fail like one below 'a'.
    for (const aliasName of ["{prod", "~prod", "\u00ffprod", "`prod"]) {
      it(`refuses an alias whose first byte is outside a-z (${JSON.stringify(aliasName)})`, async function () {
        const ctx = await loadFixture(publishedFixture);
        await expect(ctx.registry.connect(ctx.owner).setAlias("acme/digits", aliasName, ctx.firstId))
          .to.be.revertedWithCustomError(ctx.registry, "InvalidAlias")
          .withArgs(aliasName);
        expect(await ctx.registry.aliasCount("acme/digits")).to.equal(0n);
      });
    }
  });

  describe("CIDs", function () {
    // 36 bytes, CIDv1, a supported codec and sha2-256, but the multihash claims a digest that is not
    // 32 bytes long: the stored form (codec bits + 32-byte digest) could not give the same CID back.
    for (const field of ["artifactCid", "provenanceCid", "cardCid"]) {
      it(`refuses a ${field} whose multihash length byte is not 32`, async function () {
        const ctx = await loadFixture(publishedFixture);
        const bad = ethers.concat(["0x01551221", sha("x")]);
        const over = { version: "2.0.0", nonce: 1n, [field]: bad };
        if (field === "cardCid") over.cardSha256 = sha("card");
        const release = makeRelease(over);
        await expect(ctx.registry.publish(release, ctx.publisher.address, await sign(ctx.publisher, ctx.registry, release)))
          .to.be.revertedWithCustomError(ctx.registry, "UnsupportedCid")
          .withArgs(ethers.hexlify(bad));
      });
    }
  });

  describe("names", function () {
    // The longest valid name is 64 + 1 + 64 = 129 bytes; anything longer is refused before it is scanned.
    const tooLong = "a".repeat(65) + "/" + "b".repeat(64);
    const longest = "a".repeat(64) + "/" + "b".repeat(64);

    it("a name over 129 bytes has no owner and cannot be given publishers", async function () {
      const ctx = await loadFixture(publishedFixture);
      const { registry, owner, publisher } = ctx;
      expect(await registry.nameOwner(tooLong)).to.equal(ethers.ZeroAddress);
      expect(await registry.mayPublish(tooLong, owner.address)).to.equal(false);
      await expect(registry.connect(owner).addPublisher(tooLong, publisher.address))
        .to.be.revertedWithCustomError(registry, "InvalidName")
        .withArgs(tooLong);
      await expect(registry.connect(owner).setAlias(tooLong, "prod", ctx.firstId))
        .to.be.revertedWithCustomError(registry, "InvalidName")
        .withArgs(tooLong);
    });

    it("a 129-byte name is valid and belongs to its namespace's owner", async function () {
      const ctx = await loadFixture(publishedFixture);
      const { registry, owner } = ctx;
      await claimNamespace(registry, owner, "a".repeat(64));
      expect(await registry.nameOwner(longest)).to.equal(owner.address);
      const { id } = await publishAs(ctx, owner, { name: longest });
      expect((await registry.latest(longest)).id).to.equal(id);
    });
  });

  describe("latest scans a bounded window", function () {
    // `latest` reads at most LATEST_SCAN_LIMIT (256) releases, newest first. A name with more releases
    // than that whose newest 256 stopped counting has no `latest`, even if an older release still
    // counts: the scan never grows with the history, so it cannot be priced out of a block.
    it("finds nothing beyond the newest 256 releases, and the newest again once they count", async function () {
      this.timeout(600_000);
      const ctx = await loadFixture(publishedFixture); // 1.0.0 by the name's publisher
      const { registry, owner, publisher } = ctx;
      const limit = await registry.LATEST_SCAN_LIMIT();
      expect(limit).to.equal(256n);
      const { id: ownersId } = await publishAs(ctx, owner, { version: "1.0.1" });
      let nonce = await registry.nonces(publisher.address);
      let newest;
      for (let i = 0n; i < limit; ++i) {
        const release = makeRelease({ version: `2.0.${i}`, nonce: nonce++ });
        await registry.publish(release, publisher.address, await sign(publisher, registry, release));
        newest = releaseId(release.name, release.version);
      }
      expect(await registry.releaseCount("acme/digits")).to.equal(limit + 2n);
      expect((await registry.latest("acme/digits")).id).to.equal(newest);

      // The publisher is removed: its 257 releases stop counting; the owner's 1.0.1 still counts but
      // is the 257th newest, outside the window.
      await registry.connect(owner).removePublisher("acme/digits", publisher.address);
      expect(await registry.isValid(ownersId)).to.equal(true);
      await expect(registry.latest("acme/digits"))
        .to.be.revertedWithCustomError(registry, "NoActiveRelease")
        .withArgs(key("acme/digits"));

      await registry.connect(owner).addPublisher("acme/digits", publisher.address);
      expect((await registry.latest("acme/digits")).id).to.equal(newest);
    });
  });
});
