// Aliases: movable pointers (`production`, `staging`) the namespace owner sets on a name's releases.
// An alias never points at a release that does not count, and a later revocation makes it resolve
// to an error, never to the revoked bytes.
const { expect } = require("chai");
const { ethers } = require("hardhat");
const { loadFixture } = require("@nomicfoundation/hardhat-network-helpers");
const { key, releaseId, publishAs, publishedFixture, claimNamespace, expectInfo } = require("./_fixtures");

async function twoReleasesFixture() {
  const ctx = await publishedFixture();
  const second = await publishAs(ctx, ctx.publisher, { version: "1.1.0", parent: ctx.firstId });
  return { ...ctx, secondId: second.id, second: second.release };
}

describe("Aliases", function () {
  it("sets, moves (the rollback path) and resolves an alias, with an event each time", async function () {
    const ctx = await loadFixture(twoReleasesFixture);
    const { registry, owner, firstId, secondId } = ctx;
    const k = key("acme/digits");
    await expect(registry.connect(owner).setAlias("acme/digits", "production", secondId))
      .to.emit(registry, "AliasSet")
      .withArgs(k, "acme/digits", "production", secondId);
    expectInfo(await registry.resolveAlias("acme/digits", "production"), ctx.second, {});
    expect(await registry.aliasTarget("acme/digits", "production")).to.equal(secondId);
    // Rollback: point it back at 1.0.0 without publishing anything.
    await expect(registry.connect(owner).setAlias("acme/digits", "production", firstId))
      .to.emit(registry, "AliasSet")
      .withArgs(k, "acme/digits", "production", firstId);
    expectInfo(await registry.resolveAlias("acme/digits", "production"), ctx.first, {});
    expect(await registry.aliasCount("acme/digits")).to.equal(1n);
  });

  it("resolves to an error, never to the bytes, once the target is revoked", async function () {
    const ctx = await loadFixture(twoReleasesFixture);
    const { registry, owner, secondId } = ctx;
    await registry.connect(owner).setAlias("acme/digits", "production", secondId);
    await registry.connect(owner).revoke(secondId, "bad weights");
    await expect(registry.resolveAlias("acme/digits", "production"))
      .to.be.revertedWithCustomError(registry, "ReleaseIsRevoked")
      .withArgs(secondId);
    // The raw pointer stays readable (an explorer shows what it pointed at).
    expect(await registry.aliasTarget("acme/digits", "production")).to.equal(secondId);
  });

  it("refuses an unknown release, another name's release, a revoked one", async function () {
    const ctx = await loadFixture(twoReleasesFixture);
    const { registry, owner, firstId } = ctx;
    const unknown = releaseId("acme/digits", "9.9.9");
    await expect(registry.connect(owner).setAlias("acme/digits", "production", unknown))
      .to.be.revertedWithCustomError(registry, "UnknownRelease")
      .withArgs(unknown);
    const other = await publishAs(ctx, owner, { name: "acme/other" });
    await expect(registry.connect(owner).setAlias("acme/digits", "production", other.id))
      .to.be.revertedWithCustomError(registry, "WrongName")
      .withArgs(other.id, key("acme/digits"));
    await registry.connect(owner).revoke(firstId, "x");
    await expect(registry.connect(owner).setAlias("acme/digits", "production", firstId))
      .to.be.revertedWithCustomError(registry, "ReleaseIsRevoked")
      .withArgs(firstId);
  });

  it("is the namespace owner's alone: publishers and strangers are refused", async function () {
    const ctx = await loadFixture(twoReleasesFixture);
    const { registry, publisher, stranger, secondId } = ctx;
    for (const who of [publisher, stranger]) {
      await expect(registry.connect(who).setAlias("acme/digits", "production", secondId))
        .to.be.revertedWithCustomError(registry, "NotNamespaceOwner")
        .withArgs(key("acme"), who.address);
      await expect(registry.connect(who).removeAlias("acme/digits", "production"))
        .to.be.revertedWithCustomError(registry, "NotNamespaceOwner")
        .withArgs(key("acme"), who.address);
    }
    // Another namespace's owner cannot point acme's aliases either.
    await claimNamespace(registry, stranger, "evil");
    await expect(registry.connect(stranger).setAlias("acme/digits", "production", secondId)).to.be.revertedWithCustomError(
      registry,
      "NotNamespaceOwner"
    );
  });

  const invalid = {
    empty: "",
    latest: "latest",
    "starts with a digit": "1prod",
    "starts with a dash": "-prod",
    uppercase: "Production",
    underscore: "prod_1",
    dot: "prod.1",
    space: "prod 1",
    at: "prod@1",
    "33 characters": "a".repeat(33),
    "non-ascii": "prödüction",
  };
  for (const [why, aliasName] of Object.entries(invalid)) {
    it(`refuses an invalid alias (${why})`, async function () {
      const ctx = await loadFixture(twoReleasesFixture);
      await expect(ctx.registry.connect(ctx.owner).setAlias("acme/digits", aliasName, ctx.secondId))
        .to.be.revertedWithCustomError(ctx.registry, "InvalidAlias")
        .withArgs(aliasName);
    });
  }

  it("accepts aliases at the limits of the grammar", async function () {
    const ctx = await loadFixture(twoReleasesFixture);
    for (const aliasName of ["a", "a".repeat(32), "z9-9", "latest-stable", "prod-"]) {
      await ctx.registry.connect(ctx.owner).setAlias("acme/digits", aliasName, ctx.secondId);
      expect((await ctx.registry.resolveAlias("acme/digits", aliasName)).id).to.equal(ctx.secondId);
    }
  });

  it("removes aliases and pages the rest (order may change on removal)", async function () {
    const ctx = await loadFixture(twoReleasesFixture);
    const { registry, owner, firstId, secondId } = ctx;
    const targets = { production: secondId, staging: firstId, canary: secondId };
    for (const [aliasName, id] of Object.entries(targets)) await registry.connect(owner).setAlias("acme/digits", aliasName, id);
    const [names, ids] = await registry.aliasesOf("acme/digits", 0, 10);
    expect(names).to.deep.equal(["production", "staging", "canary"]);
    expect(ids).to.deep.equal([secondId, firstId, secondId]);
    expect(await registry.aliasesOf("acme/digits", 1, 1)).to.deep.equal([["staging"], [firstId]]);
    await expect(registry.connect(owner).removeAlias("acme/digits", "production"))
      .to.emit(registry, "AliasRemoved")
      .withArgs(key("acme/digits"), "acme/digits", "production");
    expect(await registry.aliasCount("acme/digits")).to.equal(2n);
    expect(await registry.aliasesOf("acme/digits", 0, 10)).to.deep.equal([["canary", "staging"], [secondId, firstId]]);
    await expect(registry.resolveAlias("acme/digits", "production"))
      .to.be.revertedWithCustomError(registry, "UnknownAlias")
      .withArgs(key("acme/digits"), "production");
    expect(await registry.aliasTarget("acme/digits", "production")).to.equal(ethers.ZeroHash);
    await expect(registry.connect(owner).removeAlias("acme/digits", "production"))
      .to.be.revertedWithCustomError(registry, "UnknownAlias")
      .withArgs(key("acme/digits"), "production");
    // The moved entry still removes cleanly; then the last one.
    await registry.connect(owner).removeAlias("acme/digits", "canary");
    await registry.connect(owner).removeAlias("acme/digits", "staging");
    expect(await registry.aliasesOf("acme/digits", 0, 10)).to.deep.equal([[], []]);
    // And a removed alias can be set again.
    await registry.connect(owner).setAlias("acme/digits", "production", firstId);
    expect(await registry.aliasesOf("acme/digits", 0, 10)).to.deep.equal([["production"], [firstId]]);
  });

  it("is per name: the same alias on two names points at different releases", async function () {
    const ctx = await loadFixture(twoReleasesFixture);
    const { registry, owner, secondId } = ctx;
    const other = await publishAs(ctx, owner, { name: "acme/other" });
    await registry.connect(owner).setAlias("acme/digits", "production", secondId);
    await registry.connect(owner).setAlias("acme/other", "production", other.id);
    expect((await registry.resolveAlias("acme/digits", "production")).id).to.equal(secondId);
    expect((await registry.resolveAlias("acme/other", "production")).id).to.equal(other.id);
    await expect(registry.resolveAlias("acme/third", "production")).to.be.revertedWithCustomError(registry, "UnknownAlias");
  });
});
