// PredictionFeed: Chainlink-compatible reads, node/quorum/median rules, and every revert path.
const { expect } = require("chai");
const { ethers } = require("hardhat");
const { loadFixture, time } = require("@nomicfoundation/hardhat-network-helpers");
const { RELEASE_TYPES, domainOf, claimNamespace } = require("./_release");

const NAME = "acme/co2-forecaster";
const OTHER = "acme/other-model";
const DECIMALS = 8;


function rawCid(digest) {
  return "0x01551220" + digest.slice(2);
}

/** Signs and publishes `name@version` with an artifact digest derived from the label. */
async function publish(registry, publisher, name, version, parent = ethers.ZeroHash) {
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
    cardSha256: ethers.ZeroHash,
    cardCid: "0x",
    parent,
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
  await claimNamespace(registry, publisher, "acme");
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
      await expect(deployFeed(registry, 2)).to.be.revertedWithCustomError(Feed, "InvalidQuorum").withArgs(2, 0);
      await expect(deployFeed(registry, 33)).to.be.revertedWithCustomError(Feed, "InvalidQuorum").withArgs(33, 0);
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

    it("one liar among three never moves the median outside the honest range (randomised)", async function () {
      const { feed, n1, n2, n3, v1 } = await loadFixture(quorumFixture);
      const nodes = [n1, n2, n3];
      let seed = 12345n;
      const rand = (span) => {
        seed = (seed * 6364136223846793005n + 1442695040888963407n) % 2n ** 64n;
        return (seed % (2n * span + 1n)) - span;
      };
      for (let round = 1; round <= 24; round++) {
        const honest = [1000n + rand(50n), 1000n + rand(50n)];
        const lie = rand(10n ** 40n);
        const liarIndex = round % 3;
        const answers = [...honest];
        answers.splice(liarIndex, 0, lie);
        for (let i = 0; i < 3; i++) await feed.connect(nodes[i]).submit(round, answers[i], v1.id);
        const median = (await feed.latestRoundData())[1];
        const [low, high] = honest[0] < honest[1] ? honest : [honest[1], honest[0]];
        expect(median >= low && median <= high, `round ${round}: ${median} outside [${low}, ${high}] (lie ${lie})`).to.equal(true);
      }
    });

    it("closes at quorum even if more nodes exist (late node goes to the next round)", async function () {
      const { feed, n1, n2, n3, v1 } = await loadFixture(quorumFixture);
      await feed.setQuorum(1);
      await feed.connect(n1).submit(1, 5, v1.id);
      expect((await feed.latestRoundData())[1]).to.equal(5n);
      await expect(feed.connect(n2).submit(1, 6, v1.id)).to.be.revertedWithCustomError(feed, "WrongRound").withArgs(1, 2);
      await feed.connect(n2).submit(2, 6, v1.id);
      expect((await feed.latestRoundData())[1]).to.equal(6n);
    });

    it("after a quorum change closes only on an odd count, never on an even one", async function () {
      const { feed, n1, n2, n3, n4, stranger, v1 } = await loadFixture(quorumFixture);
      await feed.addNode(n4.address);
      await feed.addNode(stranger.address);
      await feed.setQuorum(5);
      for (const [node, value] of [[n1, 10], [n2, 20], [n3, 30]]) await feed.connect(node).submit(1, value, v1.id);
      await feed.setQuorum(3);
      // Four answers reach the new quorum but are even: the round stays open.
      await feed.connect(n4).submit(1, 1000, v1.id);
      expect((await feed.openRound())[1]).to.equal(4n);
      await expect(feed.connect(stranger).submit(1, 40, v1.id)).to.emit(feed, "RoundClosed").withArgs(1, 30, v1.id, v1.sha, 5);
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

  describe("answer bounds", function () {
    it("are unbounded by default and refuse answers outside [min, max] once set", async function () {
      const { feed, n1, stranger, v1 } = await loadFixture(baseFixture);
      expect(await feed.minAnswer()).to.equal(-(2n ** 255n));
      expect(await feed.maxAnswer()).to.equal(2n ** 255n - 1n);
      await feed.connect(n1).submit(1, -(2n ** 255n), v1.id);
      await expect(feed.connect(stranger).setAnswerBounds(0, 10)).to.be.revertedWithCustomError(feed, "OwnableUnauthorizedAccount");
      await expect(feed.setAnswerBounds(11, 10)).to.be.revertedWithCustomError(feed, "InvalidBounds").withArgs(11, 10);
      await expect(feed.setAnswerBounds(100, 500)).to.emit(feed, "AnswerBoundsChanged").withArgs(100, 500);
      for (const bad of [99n, 501n, -(10n ** 30n), 10n ** 30n]) {
        await expect(feed.connect(n1).submit(2, bad, v1.id))
          .to.be.revertedWithCustomError(feed, "AnswerOutOfBounds")
          .withArgs(bad, 100, 500);
      }
      await feed.connect(n1).submit(2, 100, v1.id);
      await feed.connect(n1).submit(3, 500, v1.id);
      expect((await feed.latestRoundData())[1]).to.equal(500n);
    });

    it("stop a liar's absurd answer before it is counted", async function () {
      const { feed, n1, n2, n3, v1 } = await loadFixture(quorumFixture);
      await feed.setAnswerBounds(0, 10_000);
      await feed.connect(n1).submit(1, 1000, v1.id);
      await expect(feed.connect(n3).submit(1, 10n ** 30n, v1.id)).to.be.revertedWithCustomError(feed, "AnswerOutOfBounds");
      expect((await feed.openRound())[1]).to.equal(1n);
      await feed.connect(n2).submit(1, 1002, v1.id);
      await feed.connect(n3).submit(1, 1001, v1.id);
      expect((await feed.latestRoundData())[1]).to.equal(1001n);
    });
  });

  describe("lineage and removed publishers", function () {
    it("refuses a release whose parent was revoked after approval", async function () {
      const { feed, registry, publisher, n1, v1 } = await loadFixture(baseFixture);
      const child = await publish(registry, publisher, NAME, "2.0.0", v1.id);
      await feed.setApprovedRelease(child.id);
      await feed.connect(n1).submit(1, 10, child.id);
      await registry.connect(publisher).revoke(v1.id, "poisoned base model");
      await expect(feed.connect(n1).submit(2, 11, child.id))
        .to.be.revertedWithCustomError(feed, "ReleaseNotActive").withArgs(child.id);
      await expect(feed.setApprovedRelease(child.id))
        .to.be.revertedWithCustomError(feed, "ReleaseNotActive").withArgs(child.id);
    });

    it("refuses a release whose publisher was removed from the name (D4), and accepts it again once re-added", async function () {
      const { feed, registry, publisher, n1, stranger } = await loadFixture(baseFixture);
      await registry.connect(publisher).addPublisher(NAME, stranger.address);
      const theirs = await publish(registry, stranger, NAME, "3.0.0");
      await feed.setApprovedRelease(theirs.id);
      await feed.connect(n1).submit(1, 10, theirs.id);
      await registry.connect(publisher).removePublisher(NAME, stranger.address);
      await expect(feed.connect(n1).submit(2, 11, theirs.id))
        .to.be.revertedWithCustomError(feed, "ReleaseNotActive").withArgs(theirs.id);
      await registry.connect(publisher).addPublisher(NAME, stranger.address);
      await feed.connect(n1).submit(2, 11, theirs.id);
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
      await feed.setQuorum(1);
      await expect(feed.removeNode(n1.address)).to.emit(feed, "NodeRemoved").withArgs(n1.address);
      expect(await feed.isNode(n1.address)).to.equal(false);
      expect([...(await feed.nodes())].sort()).to.deep.equal([n2.address, n3.address].sort());
      await expect(feed.connect(n1).submit(1, 1, v1.id)).to.be.revertedWithCustomError(feed, "NotNode");
      await feed.removeNode(n2.address);
      await expect(feed.removeNode(n3.address)).to.be.revertedWithCustomError(feed, "InvalidQuorum").withArgs(1, 0);
    });

    it("keeps the quorum odd (2f+1) and between 1 and the node count", async function () {
      const { feed, stranger, n4 } = await loadFixture(quorumFixture);
      await expect(feed.setQuorum(0)).to.be.revertedWithCustomError(feed, "InvalidQuorum").withArgs(0, 3);
      await expect(feed.setQuorum(2)).to.be.revertedWithCustomError(feed, "InvalidQuorum").withArgs(2, 3);
      await feed.addNode(n4.address);
      await expect(feed.setQuorum(4)).to.be.revertedWithCustomError(feed, "InvalidQuorum").withArgs(4, 4);
      await expect(feed.setQuorum(5)).to.be.revertedWithCustomError(feed, "InvalidQuorum").withArgs(5, 4);
      await expect(feed.connect(stranger).setQuorum(1)).to.be.revertedWithCustomError(feed, "OwnableUnauthorizedAccount");
      await expect(feed.setQuorum(1)).to.emit(feed, "QuorumChanged").withArgs(3, 1);
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
