// Namespaces: commit-reveal claims that a mempool watcher cannot front-run, two-step transfers, the
// namespace owner's rights over every name under it, and the one rule for removed publishers (D4).
const { expect } = require("chai");
const { ethers, network } = require("hardhat");
const { loadFixture, time, mine } = require("@nomicfoundation/hardhat-network-helpers");
const { randomSalt } = require("./_release");
const {
  key,
  sign,
  makeRelease,
  releaseId,
  deployFixture,
  publishAs,
  publishedFixture,
  claimNamespace,
} = require("./_fixtures");

const commitmentOf = (namespace, claimant, salt) =>
  ethers.keccak256(
    ethers.AbiCoder.defaultAbiCoder().encode(["bytes32", "address", "bytes32"], [key(namespace), claimant, salt])
  );

/** Runs `fn` with automine off (transactions wait in the mempool), then mines one block. */
async function inOneBlock(fn) {
  await network.provider.send("evm_setAutomine", [false]);
  try {
    return await fn();
  } finally {
    await mine(1);
    await network.provider.send("evm_setAutomine", [true]);
  }
}

/** Whether a transaction sent while automine was off was mined successfully. */
async function succeeded(tx) {
  const receipt = await ethers.provider.getTransactionReceipt(tx.hash);
  return receipt !== null && receipt.status === 1;
}

describe("Namespaces", function () {
  describe("commit-reveal claim", function () {
    it("claims with a commitment from an earlier block and emits both steps", async function () {
      const { registry, owner } = await loadFixture(deployFixture);
      const salt = randomSalt();
      const commitment = await registry.makeCommitment("acme", owner.address, salt);
      expect(commitment).to.equal(commitmentOf("acme", owner.address, salt));
      await expect(registry.connect(owner).commitNamespace(commitment))
        .to.emit(registry, "NamespaceCommitted")
        .withArgs(commitment, owner.address);
      // Calls run in the pending block, one after the commitment's (eth_call on "latest" reuses its number).
      expect(await registry.connect(owner).claimNamespace.staticCall("acme", salt, { blockTag: "pending" })).to.equal(
        key("acme")
      );
      await expect(registry.connect(owner).claimNamespace("acme", salt))
        .to.emit(registry, "NamespaceClaimed")
        .withArgs(key("acme"), "acme", owner.address);
      expect(await registry.namespaceOwner("acme")).to.deep.equal([owner.address, ethers.ZeroAddress]);
      // The owner owns every name under the namespace, published or not.
      expect(await registry.nameOwner("acme/digits")).to.equal(owner.address);
      expect(await registry.nameOwner("acme/anything-else")).to.equal(owner.address);
      expect(await registry.mayPublish("acme/digits", owner.address)).to.equal(true);
      expect(await registry.nameOwner("other/digits")).to.equal(ethers.ZeroAddress);
      expect(await registry.nameOwner("not a name")).to.equal(ethers.ZeroAddress);
      // The commitment is spent.
      await expect(registry.connect(owner).claimNamespace("acme", salt))
        .to.be.revertedWithCustomError(registry, "UnknownCommitment")
        .withArgs(commitment);
    });

    it("refuses a reveal in the commitment's own block", async function () {
      const { registry, owner } = await loadFixture(deployFixture);
      const salt = randomSalt();
      const commitment = commitmentOf("acme", owner.address, salt);
      const [commit, claim] = await inOneBlock(async () => [
        await registry.connect(owner).commitNamespace(commitment, { gasLimit: 200_000 }),
        await registry.connect(owner).claimNamespace("acme", salt, { gasLimit: 200_000 }),
      ]);
      expect(await succeeded(commit)).to.equal(true);
      expect(await succeeded(claim)).to.equal(false);
      // The commitment itself survives: a reveal in any later block works.
      expect(await registry.connect(owner).claimNamespace.staticCall("acme", salt, { blockTag: "pending" })).to.equal(
        key("acme")
      );
      // Replaying the failed reveal in the same block as the commit reverts with CommitmentTooNew.
      const fresh = randomSalt();
      await network.provider.send("evm_setAutomine", [false]);
      await registry.connect(owner).commitNamespace(commitmentOf("acme", owner.address, fresh), { gasLimit: 200_000 });
      await expect(registry.connect(owner).claimNamespace.staticCall("acme", fresh, { blockTag: "pending" }))
        .to.be.revertedWithCustomError(registry, "CommitmentTooNew");
      await mine(1);
      await network.provider.send("evm_setAutomine", [true]);
    });

    it("refuses a wrong salt, another sender, an expired commitment", async function () {
      const { registry, owner, stranger } = await loadFixture(deployFixture);
      const salt = randomSalt();
      await registry.connect(owner).commitNamespace(commitmentOf("acme", owner.address, salt));
      const wrong = randomSalt();
      await expect(registry.connect(owner).claimNamespace("acme", wrong))
        .to.be.revertedWithCustomError(registry, "UnknownCommitment")
        .withArgs(commitmentOf("acme", owner.address, wrong));
      await expect(registry.connect(stranger).claimNamespace("acme", salt))
        .to.be.revertedWithCustomError(registry, "UnknownCommitment")
        .withArgs(commitmentOf("acme", stranger.address, salt));
      await expect(registry.connect(owner).claimNamespace("acme2", salt)).to.be.revertedWithCustomError(
        registry,
        "UnknownCommitment"
      );
      await time.increase(24 * 3600 + 1);
      await expect(registry.connect(owner).claimNamespace("acme", salt))
        .to.be.revertedWithCustomError(registry, "CommitmentExpired")
        .withArgs(commitmentOf("acme", owner.address, salt));
      // An expired commitment may be made again, and then works.
      await registry.connect(owner).commitNamespace(commitmentOf("acme", owner.address, salt));
      await expect(registry.connect(owner).claimNamespace("acme", salt)).to.emit(registry, "NamespaceClaimed");
    });

    it("accepts a reveal at the last second of the commitment's life", async function () {
      const { registry, owner } = await loadFixture(deployFixture);
      const salt = randomSalt();
      await registry.connect(owner).commitNamespace(commitmentOf("acme", owner.address, salt));
      const committedAt = await time.latest();
      await time.setNextBlockTimestamp(committedAt + 24 * 3600);
      await expect(registry.connect(owner).claimNamespace("acme", salt)).to.emit(registry, "NamespaceClaimed");
    });

    it("never lets a live commitment be overwritten (nobody can keep one too new)", async function () {
      const { registry, owner, watcher } = await loadFixture(deployFixture);
      const salt = randomSalt();
      const commitment = commitmentOf("acme", owner.address, salt);
      await registry.connect(owner).commitNamespace(commitment);
      await expect(registry.connect(watcher).commitNamespace(commitment))
        .to.be.revertedWithCustomError(registry, "CommitmentExists")
        .withArgs(commitment);
      await expect(registry.connect(owner).claimNamespace("acme", salt)).to.emit(registry, "NamespaceClaimed");
    });

    it("refuses a namespace that is already claimed", async function () {
      const { registry, owner, stranger } = await loadFixture(deployFixture);
      await claimNamespace(registry, owner, "acme");
      await expect(claimNamespace(registry, stranger, "acme"))
        .to.be.revertedWithCustomError(registry, "NamespaceAlreadyClaimed")
        .withArgs("acme");
      await expect(claimNamespace(registry, owner, "acme")).to.be.revertedWithCustomError(
        registry,
        "NamespaceAlreadyClaimed"
      );
    });

    const invalid = {
      uppercase: "Acme",
      empty: "",
      slash: "acme/x",
      "only a slash": "/",
      "65 characters": "a".repeat(65),
      space: "ac me",
      "non-ascii": "äcme",
      at: "acme@1",
      colon: "acme:x",
      dot: ".",
      "dot dot": "..",
    };
    for (const [why, namespace] of Object.entries(invalid)) {
      it(`refuses an invalid namespace (${why})`, async function () {
        const { registry, owner } = await loadFixture(deployFixture);
        await expect(claimNamespace(registry, owner, namespace))
          .to.be.revertedWithCustomError(registry, "InvalidNamespace")
          .withArgs(namespace);
      });
    }

    it("accepts namespaces at the limits of the rule", async function () {
      const { registry, owner } = await loadFixture(deployFixture);
      for (const namespace of ["a".repeat(64), "a", "0.9_x-y", "...", ".x"]) {
        await expect(claimNamespace(registry, owner, namespace)).to.emit(registry, "NamespaceClaimed");
        expect((await registry.namespaceOwner(namespace))[0]).to.equal(owner.address);
      }
    });
  });

  describe("front-running", function () {
    it("a watcher that sees a pending reveal cannot claim the namespace first", async function () {
      const { registry, owner, watcher } = await loadFixture(deployFixture);
      const salt = randomSalt();
      await registry.connect(owner).commitNamespace(commitmentOf("acme", owner.address, salt));
      const fee = { gasLimit: 300_000, maxFeePerGas: ethers.parseUnits("200", "gwei"), maxPriorityFeePerGas: ethers.parseUnits("100", "gwei") };
      const [reveal, copied, ownCommit, ownReveal] = await inOneBlock(async () => {
        const victim = await registry.connect(owner).claimNamespace("acme", salt, { gasLimit: 300_000 });
        // The watcher decodes namespace and salt from the pending reveal and outbids it: replaying
        // the reveal from its own account, and committing and revealing its own claim at once.
        const decoded = registry.interface.decodeFunctionData("claimNamespace", victim.data);
        const a = await registry.connect(watcher).claimNamespace(decoded[0], decoded[1], fee);
        const mine = randomSalt();
        const b = await registry.connect(watcher).commitNamespace(commitmentOf("acme", watcher.address, mine), fee);
        const c = await registry.connect(watcher).claimNamespace("acme", mine, { ...fee, nonce: b.nonce + 1 });
        return [victim, a, b, c];
      });
      expect(await succeeded(copied)).to.equal(false);
      expect(await succeeded(ownCommit)).to.equal(true);
      expect(await succeeded(ownReveal)).to.equal(false);
      expect(await succeeded(reveal)).to.equal(true);
      expect((await registry.namespaceOwner("acme"))[0]).to.equal(owner.address);
    });

    it("a watcher that sees a pending first publish cannot claim the name or publish beside it", async function () {
      const ctx = await loadFixture(deployFixture);
      const { registry, owner, watcher, relayer } = ctx;
      await claimNamespace(registry, owner, "acme");
      const release = makeRelease({ name: "acme/brand-new", nonce: 0n });
      const signature = await sign(owner, registry, release);
      const fee = { gasLimit: 1_000_000, maxFeePerGas: ethers.parseUnits("200", "gwei"), maxPriorityFeePerGas: ethers.parseUnits("100", "gwei") };
      const [victim, stolen, squat] = await inOneBlock(async () => {
        const pending = await registry.connect(relayer).publish(release, owner.address, signature, { gasLimit: 1_000_000 });
        // The watcher re-signs the same release with its own key and outbids the original...
        const copy = { ...release, nonce: 0n };
        const a = await registry.connect(watcher).publish(copy, watcher.address, await sign(watcher, registry, copy), fee);
        // ...and tries to claim the namespace outright (no commitment can help it in this block).
        const b = await registry.connect(watcher).claimNamespace("acme", randomSalt(), { ...fee, nonce: a.nonce + 1 });
        return [pending, a, b];
      });
      expect(await succeeded(stolen)).to.equal(false);
      expect(await succeeded(squat)).to.equal(false);
      expect(await succeeded(victim)).to.equal(true);
      const info = await registry.getRelease(releaseId("acme/brand-new", "1.0.0"));
      expect(info.publisher).to.equal(owner.address);
      await expect(registry.connect(watcher).publish(release, watcher.address, await sign(watcher, registry, release)))
        .to.be.revertedWithCustomError(registry, "NotPublisher")
        .withArgs(key("acme/brand-new"), watcher.address);
    });

    it("a stranger cannot publish acme/... beside acme's models, nor under an unclaimed namespace", async function () {
      const ctx = await loadFixture(publishedFixture);
      const { registry, stranger } = ctx;
      for (const name of ["acme/digits", "acme/digits-v2", "acme/other"]) {
        const release = makeRelease({ name, version: "9.9.9", nonce: 0n });
        await expect(registry.publish(release, stranger.address, await sign(stranger, registry, release)))
          .to.be.revertedWithCustomError(registry, "NotPublisher")
          .withArgs(key(name), stranger.address);
      }
      const release = makeRelease({ name: "newco/model", nonce: 0n });
      await expect(registry.publish(release, stranger.address, await sign(stranger, registry, release)))
        .to.be.revertedWithCustomError(registry, "UnknownNamespace")
        .withArgs(key("newco"));
      // Once the stranger claims its own namespace it publishes there, and only there.
      await claimNamespace(registry, stranger, "newco");
      await expect(registry.publish(release, stranger.address, await sign(stranger, registry, release))).to.emit(
        registry,
        "ReleasePublished"
      );
    });
  });

  describe("publishers", function () {
    it("lets the namespace owner add a publisher to a name, published or not", async function () {
      const { registry, owner, publisher } = await loadFixture(deployFixture);
      await claimNamespace(registry, owner, "acme");
      await expect(registry.connect(owner).addPublisher("acme/digits", publisher.address))
        .to.emit(registry, "PublisherAdded")
        .withArgs(key("acme/digits"), "acme/digits", publisher.address);
      expect(await registry.isPublisher("acme/digits", publisher.address)).to.equal(true);
      expect(await registry.mayPublish("acme/digits", publisher.address)).to.equal(true);
      // Per name: no rights on the namespace's other names.
      expect(await registry.mayPublish("acme/other", publisher.address)).to.equal(false);
      expect(await registry.isPublisher("acme/digits", owner.address)).to.equal(false);
      expect(await registry.mayPublish("acme/digits", owner.address)).to.equal(true);
    });

    it("refuses add/remove by anyone but the namespace owner, on unclaimed namespaces, on bad names", async function () {
      const { registry, owner, publisher, stranger } = await loadFixture(publishedFixture);
      const ns = key("acme");
      await expect(registry.connect(stranger).addPublisher("acme/digits", stranger.address))
        .to.be.revertedWithCustomError(registry, "NotNamespaceOwner")
        .withArgs(ns, stranger.address);
      await expect(registry.connect(publisher).addPublisher("acme/digits", stranger.address))
        .to.be.revertedWithCustomError(registry, "NotNamespaceOwner")
        .withArgs(ns, publisher.address);
      await expect(registry.connect(stranger).removePublisher("acme/digits", publisher.address))
        .to.be.revertedWithCustomError(registry, "NotNamespaceOwner")
        .withArgs(ns, stranger.address);
      await expect(registry.connect(owner).addPublisher("newco/x", publisher.address))
        .to.be.revertedWithCustomError(registry, "UnknownNamespace")
        .withArgs(key("newco"));
      for (const bad of ["acme", "acme/", "acme/x/y", "Acme/x", "acme/.."]) {
        await expect(registry.connect(owner).addPublisher(bad, publisher.address))
          .to.be.revertedWithCustomError(registry, "InvalidName")
          .withArgs(bad);
      }
    });

    it("refuses the zero address and a second add", async function () {
      const { registry, owner, publisher } = await loadFixture(publishedFixture);
      await expect(registry.connect(owner).addPublisher("acme/digits", ethers.ZeroAddress)).to.be.revertedWithCustomError(
        registry,
        "ZeroAddress"
      );
      await expect(registry.connect(owner).addPublisher("acme/digits", publisher.address))
        .to.be.revertedWithCustomError(registry, "AlreadyPublisher")
        .withArgs(key("acme/digits"), publisher.address);
    });

    it("removes a publisher: no new releases, and its releases stop counting until it is re-added (D4)", async function () {
      const ctx = await loadFixture(publishedFixture);
      const { registry, owner, publisher, firstId } = ctx;
      const ownRelease = await publishAs(ctx, owner, { version: "0.9.0" });
      const second = await publishAs(ctx, publisher, { version: "1.1.0", parent: firstId });
      expect((await registry.latest("acme/digits")).id).to.equal(second.id);
      await registry.connect(owner).setAlias("acme/digits", "production", second.id);

      await expect(registry.connect(owner).removePublisher("acme/digits", publisher.address))
        .to.emit(registry, "PublisherRemoved")
        .withArgs(key("acme/digits"), "acme/digits", publisher.address);
      expect(await registry.isPublisher("acme/digits", publisher.address)).to.equal(false);
      expect(await registry.mayPublish("acme/digits", publisher.address)).to.equal(false);
      // Still active (not revoked), but no longer valid: latest, aliases and lineage skip it.
      expect(await registry.isActive(second.id)).to.equal(true);
      expect(await registry.isValid(second.id)).to.equal(false);
      expect(await registry.lineageValid(second.id)).to.equal(false);
      expect((await registry.latest("acme/digits")).id).to.equal(ownRelease.id);
      await expect(registry.resolveAlias("acme/digits", "production"))
        .to.be.revertedWithCustomError(registry, "ReleaseNotValid")
        .withArgs(second.id);
      await expect(registry.connect(owner).setAlias("acme/digits", "staging", firstId))
        .to.be.revertedWithCustomError(registry, "ReleaseNotValid")
        .withArgs(firstId);
      const next = makeRelease({ version: "1.2.0", nonce: 2n });
      await expect(registry.publish(next, publisher.address, await sign(publisher, registry, next)))
        .to.be.revertedWithCustomError(registry, "NotPublisher")
        .withArgs(key("acme/digits"), publisher.address);
      await expect(registry.connect(owner).removePublisher("acme/digits", publisher.address))
        .to.be.revertedWithCustomError(registry, "NotPublisher")
        .withArgs(key("acme/digits"), publisher.address);

      // Re-adding restores the rule's verdict.
      await registry.connect(owner).addPublisher("acme/digits", publisher.address);
      expect(await registry.isValid(second.id)).to.equal(true);
      expect((await registry.latest("acme/digits")).id).to.equal(second.id);
      expect((await registry.resolveAlias("acme/digits", "production")).id).to.equal(second.id);
    });

    it("keeps nonces per publisher", async function () {
      const ctx = await loadFixture(publishedFixture);
      await ctx.registry.connect(ctx.owner).addPublisher("acme/digits", ctx.other.address);
      expect(await ctx.registry.nonces(ctx.other.address)).to.equal(0n);
      await publishAs(ctx, ctx.other, { version: "1.1.0", nonce: 0n });
      expect(await ctx.registry.nonces(ctx.other.address)).to.equal(1n);
      expect(await ctx.registry.nonces(ctx.publisher.address)).to.equal(1n);
    });
  });

  describe("two-step namespace transfer", function () {
    it("proposes, refuses the wrong account, hands over to the right one", async function () {
      const { registry, owner, other, stranger } = await loadFixture(deployFixture);
      const k = key("acme");
      await claimNamespace(registry, owner, "acme");
      await expect(registry.connect(stranger).proposeNamespaceOwner("acme", stranger.address))
        .to.be.revertedWithCustomError(registry, "NotNamespaceOwner")
        .withArgs(k, stranger.address);
      await expect(registry.connect(owner).proposeNamespaceOwner("unknown", other.address))
        .to.be.revertedWithCustomError(registry, "UnknownNamespace")
        .withArgs(key("unknown"));
      await expect(registry.connect(owner).proposeNamespaceOwner("acme", other.address))
        .to.emit(registry, "NamespaceTransferProposed")
        .withArgs(k, "acme", owner.address, other.address);
      expect(await registry.namespaceOwner("acme")).to.deep.equal([owner.address, other.address]);

      await expect(registry.connect(stranger).acceptNamespaceOwner("acme"))
        .to.be.revertedWithCustomError(registry, "NotPendingOwner")
        .withArgs(k, stranger.address);
      await expect(registry.connect(owner).acceptNamespaceOwner("acme"))
        .to.be.revertedWithCustomError(registry, "NotPendingOwner")
        .withArgs(k, owner.address);
      await expect(registry.connect(other).acceptNamespaceOwner("unknown"))
        .to.be.revertedWithCustomError(registry, "UnknownNamespace")
        .withArgs(key("unknown"));

      await expect(registry.connect(other).acceptNamespaceOwner("acme"))
        .to.emit(registry, "NamespaceTransferred")
        .withArgs(k, "acme", owner.address, other.address);
      expect(await registry.namespaceOwner("acme")).to.deep.equal([other.address, ethers.ZeroAddress]);
      expect(await registry.nameOwner("acme/digits")).to.equal(other.address);
      await expect(registry.connect(owner).addPublisher("acme/digits", stranger.address))
        .to.be.revertedWithCustomError(registry, "NotNamespaceOwner")
        .withArgs(k, owner.address);
      // The proposal is spent.
      await expect(registry.connect(other).acceptNamespaceOwner("acme")).to.be.revertedWithCustomError(
        registry,
        "NotPendingOwner"
      );
    });

    it("cancels a proposal by proposing the zero address", async function () {
      const { registry, owner, other } = await loadFixture(deployFixture);
      await claimNamespace(registry, owner, "acme");
      await registry.connect(owner).proposeNamespaceOwner("acme", other.address);
      await registry.connect(owner).proposeNamespaceOwner("acme", ethers.ZeroAddress);
      await expect(registry.connect(other).acceptNamespaceOwner("acme")).to.be.revertedWithCustomError(
        registry,
        "NotPendingOwner"
      );
    });

    it("withdraws the previous owner's releases (key rotation) and moves revoke rights", async function () {
      const ctx = await loadFixture(publishedFixture);
      const { registry, owner, other, publisher, firstId } = ctx;
      const byOwner = await publishAs(ctx, owner, { version: "2.0.0" });
      await registry.connect(owner).proposeNamespaceOwner("acme", other.address);
      await registry.connect(other).acceptNamespaceOwner("acme");
      // The old owner signed as owner, not as a per-name publisher: its release stops counting.
      expect(await registry.isValid(byOwner.id)).to.equal(false);
      expect(await registry.isValid(firstId)).to.equal(true);
      expect((await registry.latest("acme/digits")).id).to.equal(firstId);
      await expect(registry.connect(owner).revoke(firstId, "x"))
        .to.be.revertedWithCustomError(registry, "NotAuthorisedToRevoke")
        .withArgs(firstId, owner.address);
      // The new owner may vouch for the old key again.
      await registry.connect(other).addPublisher("acme/digits", owner.address);
      expect(await registry.isValid(byOwner.id)).to.equal(true);
      await expect(registry.connect(other).revoke(firstId, "x")).to.emit(registry, "ReleaseRevoked");
      expect(await registry.mayPublish("acme/digits", publisher.address)).to.equal(true);
    });
  });
});
