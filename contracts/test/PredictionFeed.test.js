// PredictionFeed: Chainlink-compatible reads, node/quorum/median rules, and every revert path.
const { expect } = require("chai");
const { ethers } = require("hardhat");
const { loadFixture, time } = require("@nomicfoundation/hardhat-network-helpers");
const { RELEASE_TYPES, domainOf } = require("./_release");

const NAME = "acme/co2-forecaster";
const OTHER = "acme/other-model";
const DECIMALS = 8;


function rawCid(digest) {
  return "0x01551220" + digest.slice(2);
}

/** Signs and publishes `name@version` with an artifact digest derived from the label. */
async function publish(registry, publisher, name, version) {
  const domain = await domainOf(registry);
  const artifactSha256 = ethers.sha256(ethers.toUtf8Bytes(`${name}@${version}`));
  const provenanceSha256 = ethers.sha256(ethers.toUtf8Bytes(`prov ${name}@${version}`));
  const release = {
    name,
    version,
    artifactSha256,
    artifactCid: rawCid(artifactSha256),
    artifactSize: 1234,
    provenanceSha256,
    provenanceCid: rawCid(provenanceSha256),
    parent: ethers.ZeroHash,
    nonce: await registry.nonces(publisher.address),
    deadline: 2n ** 40n,
  };
  const signature = await publisher.signTypedData(domain, RELEASE_TYPES, release);
  await registry.publish(release, publisher.address, signature);
  return { id: await registry.computeReleaseId(name, version), sha: artifactSha256 };
}

async function deployFeed(registry, quorum = 1, name = NAME) {
  const Feed = await ethers.getContractFactory("PredictionFeed");
  return Feed.deploy(await registry.getAddress(), name, "CO2 ppm, next week", DECIMALS, quorum);
}

async function baseFixture() {
  const [owner, publisher, n1, n2, n3, n4, stranger] = await ethers.getSigners();
  const registry = await (await ethers.getContractFactory("ModelRegistry")).deploy();
  const v1 = await publish(registry, publisher, NAME, "1.0.0");
  const v2 = await publish(registry, publisher, NAME, "1.1.0");
  const other = await publish(registry, publisher, OTHER, "1.0.0");
  const feed = await deployFeed(registry, 1);
  await feed.addNode(n1.address);
  await feed.setApprovedRelease(v1.id);
  const consumer = await (await ethers.getContractFactory("FeedConsumer")).deploy(await feed.getAddress(), 3600);
  return { owner, publisher, n1, n2, n3, n4, stranger, registry, feed, consumer, v1, v2, other };
}

async function quorumFixture() {
  const f = await baseFixture();
  await f.feed.addNode(f.n2.address);
  await f.feed.addNode(f.n3.address);
  await f.feed.setQuorum(3);
  return f;
}

describe("PredictionFeed", function () {
  describe("deployment and Chainlink reads", function () {
    it("reports decimals, description, version, model and owner", async function () {
      const { feed, registry, owner } = await loadFixture(baseFixture);
      expect(await feed.decimals()).to.equal(DECIMALS);
      expect(await feed.description()).to.equal("CO2 ppm, next week");
      expect(await feed.version()).to.equal(1n);
      expect(await feed.modelName()).to.equal(NAME);
      expect(await feed.modelNameKey()).to.equal(ethers.keccak256(ethers.toUtf8Bytes(NAME)));
      expect(await feed.registry()).to.equal(await registry.getAddress());
      expect(await feed.owner()).to.equal(owner.address);
      expect(await feed.quorum()).to.equal(1n);
    });

    it("refuses a zero registry and an out-of-range quorum", async function () {
      const { registry } = await loadFixture(baseFixture);
      const Feed = await ethers.getContractFactory("PredictionFeed");
      await expect(Feed.deploy(ethers.ZeroAddress, NAME, "d", 8, 1)).to.be.revertedWithCustomError(Feed, "ZeroAddress");
      await expect(deployFeed(registry, 0)).to.be.revertedWithCustomError(Feed, "InvalidQuorum").withArgs(0, 0);
      await expect(deployFeed(registry, 32)).to.be.revertedWithCustomError(Feed, "InvalidQuorum").withArgs(32, 0);
    });

    it("reverts reads before the first round closes", async function () {
      const { feed, consumer } = await loadFixture(baseFixture);
      await expect(feed.latestRoundData()).to.be.revertedWithCustomError(feed, "NoSuchRound").withArgs(0);
      await expect(feed.getRoundData(1)).to.be.revertedWithCustomError(feed, "NoSuchRound").withArgs(1);
      await expect(feed.roundModel(1)).to.be.revertedWithCustomError(feed, "NoSuchRound").withArgs(1);
      await expect(feed.roundSubmissions(1)).to.be.revertedWithCustomError(feed, "NoSuchRound").withArgs(1);
      await expect(consumer.read()).to.be.revertedWithCustomError(feed, "NoSuchRound");
      const [openId, submissions, startedAt] = await feed.openRound();
      expect([openId, submissions, startedAt]).to.deep.equal([1n, 0n, 0n]);
    });
  });

  describe("single node", function () {
    it("closes a round per submission and binds it to the model", async function () {
      const { feed, n1, v1 } = await loadFixture(baseFixture);
      const answer = 41_234_000_000n;
      const tx = feed.connect(n1).submit(1, answer, v1.id);
      await expect(tx).to.emit(feed, "NewRound").withArgs(1, n1.address, anyUint);
      await expect(tx).to.emit(feed, "AnswerSubmitted").withArgs(1, n1.address, answer, v1.id);
      await expect(tx).to.emit(feed, "RoundClosed").withArgs(1, answer, v1.id, v1.sha, 1);
      await expect(tx).to.emit(feed, "AnswerUpdated").withArgs(answer, 1, anyUint);
      const ts = BigInt(await time.latest());
      expect(await feed.latestRoundData()).to.deep.equal([1n, answer, ts, ts, 1n]);
      expect(await feed.getRoundData(1)).to.deep.equal([1n, answer, ts, ts, 1n]);
      expect(await feed.roundModel(1)).to.deep.equal([v1.id, v1.sha]);
      expect(await feed.roundSubmissions(1)).to.equal(1n);
      expect(await feed.latestRoundId()).to.equal(1n);
      expect(await feed.hasSubmitted(1, n1.address)).to.equal(true);
      expect((await feed.openRound())[0]).to.equal(2n);
    });

    it("lets an unmodified Chainlink consumer read it", async function () {
      const { feed, consumer, n1, v1 } = await loadFixture(baseFixture);
      await feed.connect(n1).submit(1, 123n, v1.id);
      await feed.connect(n1).submit(2, 456n, v1.id);
      await expect(consumer.consume()).to.emit(consumer, "Consumed").withArgs(2, 456n, DECIMALS);
      expect(await consumer.lastAnswer()).to.equal(456n);
      expect(await feed.getRoundData(1)).to.have.property("1", 123n);
      await time.increase(3601);
      await expect(consumer.read()).to.be.revertedWithCustomError(consumer, "StaleAnswer");
    });

    it("carries negative answers (consumers decide what they accept)", async function () {
      const { feed, consumer, n1, v1 } = await loadFixture(baseFixture);
      await feed.connect(n1).submit(1, -5n, v1.id);
      expect((await feed.latestRoundData())[1]).to.equal(-5n);
      await expect(consumer.read()).to.be.revertedWithCustomError(consumer, "BadAnswer").withArgs(-5n);
    });
  });

  describe("submit refusals", function () {
    it("refuses an account that is not a node", async function () {
      const { feed, stranger, owner, v1 } = await loadFixture(baseFixture);
      await expect(feed.connect(stranger).submit(1, 1, v1.id))
        .to.be.revertedWithCustomError(feed, "NotNode").withArgs(stranger.address);
      await expect(feed.connect(owner).submit(1, 1, v1.id))
        .to.be.revertedWithCustomError(feed, "NotNode").withArgs(owner.address);
    });

    it("refuses rounds other than the open one", async function () {
      const { feed, n1, v1 } = await loadFixture(baseFixture);
      await expect(feed.connect(n1).submit(0, 1, v1.id)).to.be.revertedWithCustomError(feed, "WrongRound").withArgs(0, 1);
      await expect(feed.connect(n1).submit(2, 1, v1.id)).to.be.revertedWithCustomError(feed, "WrongRound").withArgs(2, 1);
      await feed.connect(n1).submit(1, 1, v1.id);
      await expect(feed.connect(n1).submit(1, 2, v1.id)).to.be.revertedWithCustomError(feed, "WrongRound").withArgs(1, 2);
    });

    it("refuses submissions before any release is approved", async function () {
      const { registry, n1, v1 } = await loadFixture(baseFixture);
      const feed = await deployFeed(registry, 1);
      await feed.addNode(n1.address);
      await expect(feed.connect(n1).submit(1, 1, v1.id)).to.be.revertedWithCustomError(feed, "NoApprovedRelease");
    });

    it("refuses a release that is not the approved one", async function () {
      const { feed, n1, v1, v2, other } = await loadFixture(baseFixture);
      await expect(feed.connect(n1).submit(1, 1, v2.id))
        .to.be.revertedWithCustomError(feed, "ReleaseNotApproved").withArgs(v2.id, v1.id);
      await expect(feed.connect(n1).submit(1, 1, other.id))
        .to.be.revertedWithCustomError(feed, "ReleaseNotApproved").withArgs(other.id, v1.id);
      await expect(feed.connect(n1).submit(1, 1, ethers.ZeroHash))
        .to.be.revertedWithCustomError(feed, "ReleaseNotApproved").withArgs(ethers.ZeroHash, v1.id);
    });

    it("refuses the approved release once it is revoked in the registry", async function () {
      const { feed, registry, publisher, n1, v1 } = await loadFixture(baseFixture);
      await feed.connect(n1).submit(1, 10, v1.id);
      await registry.connect(publisher).revoke(v1.id, "bad weights");
      await expect(feed.connect(n1).submit(2, 11, v1.id))
        .to.be.revertedWithCustomError(feed, "ReleaseNotActive").withArgs(v1.id);
      // the closed round keeps saying which model produced it
      expect(await feed.roundModel(1)).to.deep.equal([v1.id, v1.sha]);
    });

    it("refuses a second answer from the same node in one round", async function () {
      const { feed, n1, n2, v1 } = await loadFixture(quorumFixture);
      await feed.connect(n1).submit(1, 10, v1.id);
      await expect(feed.connect(n1).submit(1, 11, v1.id))
        .to.be.revertedWithCustomError(feed, "AlreadySubmitted").withArgs(1, n1.address);
      expect(await feed.hasSubmitted(1, n1.address)).to.equal(true);
      expect(await feed.hasSubmitted(1, n2.address)).to.equal(false);
      expect(await feed.hasSubmitted(2, n1.address)).to.equal(false);
      const [openId, submissions] = await feed.openRound();
      expect([openId, submissions]).to.deep.equal([1n, 1n]);
    });
  });

  describe("quorum and median", function () {
    it("waits for the quorum, then closes on the median: one liar among three cannot move it", async function () {
      const { feed, n1, n2, n3, v1 } = await loadFixture(quorumFixture);
      await feed.connect(n1).submit(1, 1000, v1.id);
      await expect(feed.latestRoundData()).to.be.revertedWithCustomError(feed, "NoSuchRound");
      await feed.connect(n3).submit(1, 10n ** 30n, v1.id); // the liar
      await expect(feed.connect(n2).submit(1, 1002, v1.id)).to.emit(feed, "RoundClosed").withArgs(1, 1002, v1.id, v1.sha, 3);
      expect((await feed.latestRoundData())[1]).to.equal(1002n);
      expect(await feed.roundSubmissions(1)).to.equal(3n);
    });

    it("a liar reporting very low values cannot move it either", async function () {
      const { feed, n1, n2, n3, v1 } = await loadFixture(quorumFixture);
      await feed.connect(n3).submit(1, -(10n ** 30n), v1.id);
      await feed.connect(n2).submit(1, 999, v1.id);
      await feed.connect(n1).submit(1, 1001, v1.id);
      expect((await feed.latestRoundData())[1]).to.equal(999n);
    });

    it("takes the mean of the middle two for an even count", async function () {
      const { feed, n1, n2, n3, n4, v1 } = await loadFixture(quorumFixture);
      await feed.addNode(n4.address);
      await feed.setQuorum(4);
      await feed.connect(n1).submit(1, -7, v1.id);
      await feed.connect(n2).submit(1, 40, v1.id);
      await feed.connect(n3).submit(1, 10, v1.id);
      await feed.connect(n4).submit(1, 1000, v1.id);
      expect((await feed.latestRoundData())[1]).to.equal(25n);
    });

    it("closes at quorum even if more nodes exist (late node goes to the next round)", async function () {
      const { feed, n1, n2, n3, v1 } = await loadFixture(quorumFixture);
      await feed.setQuorum(2);
      await feed.connect(n1).submit(1, 5, v1.id);
      await feed.connect(n2).submit(1, 9, v1.id);
      expect((await feed.latestRoundData())[1]).to.equal(7n);
      await expect(feed.connect(n3).submit(1, 6, v1.id)).to.be.revertedWithCustomError(feed, "WrongRound").withArgs(1, 2);
      await feed.connect(n3).submit(2, 6, v1.id);
      expect((await feed.openRound())[1]).to.equal(1n);
    });
  });

  describe("approved release", function () {
    it("is owner-only and emits the change", async function () {
      const { feed, stranger, v1, v2 } = await loadFixture(baseFixture);
      await expect(feed.connect(stranger).setApprovedRelease(v2.id))
        .to.be.revertedWithCustomError(feed, "OwnableUnauthorizedAccount").withArgs(stranger.address);
      await expect(feed.setApprovedRelease(v2.id)).to.emit(feed, "ApprovedReleaseChanged").withArgs(v1.id, v2.id, v2.sha);
      expect(await feed.approvedRelease()).to.equal(v2.id);
      expect(await feed.approvedArtifactSha256()).to.equal(v2.sha);
      await expect(feed.setApprovedRelease(v2.id)).to.not.emit(feed, "ApprovedReleaseChanged");
    });

    it("refuses unknown, revoked and other models' releases", async function () {
      const { feed, registry, publisher, v2, other } = await loadFixture(baseFixture);
      const unknown = ethers.id("nope");
      await expect(feed.setApprovedRelease(unknown)).to.be.revertedWithCustomError(feed, "ReleaseNotActive").withArgs(unknown);
      await registry.connect(publisher).revoke(v2.id, "recalled");
      await expect(feed.setApprovedRelease(v2.id)).to.be.revertedWithCustomError(feed, "ReleaseNotActive").withArgs(v2.id);
      await expect(feed.setApprovedRelease(other.id)).to.be.revertedWithCustomError(feed, "WrongModel").withArgs(other.id, OTHER);
    });

    it("discards a partly filled round when the model changes", async function () {
      const { feed, n1, n2, n3, v1, v2 } = await loadFixture(quorumFixture);
      await feed.connect(n1).submit(1, 100, v1.id);
      await feed.connect(n2).submit(1, 101, v1.id);
      await expect(feed.setApprovedRelease(v2.id)).to.emit(feed, "RoundReset").withArgs(1, 2);
      expect(await feed.hasSubmitted(1, n1.address)).to.equal(false);
      await expect(feed.connect(n3).submit(1, 102, v1.id)).to.be.revertedWithCustomError(feed, "ReleaseNotApproved");
      for (const [node, value] of [[n1, 200], [n2, 202], [n3, 201]]) await feed.connect(node).submit(1, value, v2.id);
      expect((await feed.latestRoundData())[1]).to.equal(201n);
      expect(await feed.roundModel(1)).to.deep.equal([v2.id, v2.sha]);
      expect(await feed.hasSubmitted(1, n1.address)).to.equal(true);
    });

    it("follow-latest lets anyone sync to the registry's newest active release", async function () {
      const { feed, registry, publisher, stranger, v1, v2 } = await loadFixture(baseFixture);
      await expect(feed.connect(stranger).syncApprovedRelease()).to.be.revertedWithCustomError(feed, "NotFollowingLatest");
      await expect(feed.connect(stranger).setFollowLatest(true)).to.be.revertedWithCustomError(feed, "OwnableUnauthorizedAccount");
      await expect(feed.setFollowLatest(true)).to.emit(feed, "FollowLatestChanged").withArgs(true);
      await expect(feed.connect(stranger).syncApprovedRelease()).to.emit(feed, "ApprovedReleaseChanged").withArgs(v1.id, v2.id, v2.sha);
      await registry.connect(publisher).revoke(v2.id, "regression");
      await feed.connect(stranger).syncApprovedRelease();
      expect(await feed.approvedRelease()).to.equal(v1.id);
      await registry.connect(publisher).revoke(v1.id, "regression");
      await expect(feed.connect(stranger).syncApprovedRelease()).to.be.revertedWithCustomError(registry, "NoActiveRelease");
      await feed.setFollowLatest(false);
      await expect(feed.syncApprovedRelease()).to.be.revertedWithCustomError(feed, "NotFollowingLatest");
    });
  });

  describe("nodes and quorum administration", function () {
    it("adds nodes with checks", async function () {
      const { feed, n1, n2, stranger } = await loadFixture(baseFixture);
      await expect(feed.connect(stranger).addNode(n2.address)).to.be.revertedWithCustomError(feed, "OwnableUnauthorizedAccount");
      await expect(feed.addNode(ethers.ZeroAddress)).to.be.revertedWithCustomError(feed, "ZeroAddress");
      await expect(feed.addNode(n1.address)).to.be.revertedWithCustomError(feed, "AlreadyNode").withArgs(n1.address);
      await expect(feed.addNode(n2.address)).to.emit(feed, "NodeAdded").withArgs(n2.address);
      expect(await feed.isNode(n2.address)).to.equal(true);
      expect(await feed.nodes()).to.deep.equal([n1.address, n2.address]);
    });

    it("caps the node set at MAX_NODES", async function () {
      const { feed } = await loadFixture(baseFixture);
      for (let i = 1; i < 31; i++) await feed.addNode(ethers.getAddress("0x" + i.toString(16).padStart(40, "0")));
      expect((await feed.nodes()).length).to.equal(31);
      await expect(feed.addNode(ethers.Wallet.createRandom().address)).to.be.revertedWithCustomError(feed, "TooManyNodes");
    });

    it("removes nodes, never below the quorum", async function () {
      const { feed, n1, n2, n3, stranger, v1 } = await loadFixture(quorumFixture);
      await expect(feed.removeNode(stranger.address)).to.be.revertedWithCustomError(feed, "NotNode").withArgs(stranger.address);
      await expect(feed.removeNode(n1.address)).to.be.revertedWithCustomError(feed, "InvalidQuorum").withArgs(3, 2);
      await expect(feed.connect(stranger).removeNode(n1.address)).to.be.revertedWithCustomError(feed, "OwnableUnauthorizedAccount");
      await feed.setQuorum(2);
      await expect(feed.removeNode(n1.address)).to.emit(feed, "NodeRemoved").withArgs(n1.address);
      expect(await feed.isNode(n1.address)).to.equal(false);
      expect([...(await feed.nodes())].sort()).to.deep.equal([n2.address, n3.address].sort());
      await expect(feed.connect(n1).submit(1, 1, v1.id)).to.be.revertedWithCustomError(feed, "NotNode");
      await expect(feed.removeNode(n2.address)).to.be.revertedWithCustomError(feed, "InvalidQuorum").withArgs(2, 1);
    });

    it("keeps the quorum between 1 and the node count", async function () {
      const { feed, stranger } = await loadFixture(quorumFixture);
      await expect(feed.setQuorum(0)).to.be.revertedWithCustomError(feed, "InvalidQuorum").withArgs(0, 3);
      await expect(feed.setQuorum(4)).to.be.revertedWithCustomError(feed, "InvalidQuorum").withArgs(4, 3);
      await expect(feed.connect(stranger).setQuorum(2)).to.be.revertedWithCustomError(feed, "OwnableUnauthorizedAccount");
      await expect(feed.setQuorum(2)).to.emit(feed, "QuorumChanged").withArgs(3, 2);
    });

    it("hands ownership over in two steps", async function () {
      const { feed, owner, stranger, v2 } = await loadFixture(baseFixture);
      await feed.transferOwnership(stranger.address);
      expect(await feed.owner()).to.equal(owner.address);
      await expect(feed.connect(owner).acceptOwnership()).to.be.revertedWithCustomError(feed, "OwnableUnauthorizedAccount");
      await feed.connect(stranger).acceptOwnership();
      expect(await feed.owner()).to.equal(stranger.address);
      await expect(feed.setApprovedRelease(v2.id)).to.be.revertedWithCustomError(feed, "OwnableUnauthorizedAccount");
      await feed.connect(stranger).setApprovedRelease(v2.id);
    });
  });
});

const { anyUint } = require("@nomicfoundation/hardhat-chai-matchers/withArgs");
