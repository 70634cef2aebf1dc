// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {AggregatorV3Interface} from "./interfaces/AggregatorV3Interface.sol";
import {IModelRegistry} from "./interfaces/IModelRegistry.sol";

/// @title PredictionFeed
/// @notice A Chainlink-compatible feed whose answers are predictions of one verified model from the
/// ModelRegistry. Every round records which release (and which artifact SHA-256) produced it, so a
/// consumer or an auditor can trace each on-chain value to the exact bytes that computed it.
/// @dev Rounds are sequential: the open round is always `latestRoundId + 1`. Authorised nodes submit
/// one answer each for the open round, made with the feed's approved release; the round closes on
/// the median of the first `quorum` answers. The quorum is odd (2f+1), so the median is always one
/// of the answers and f liars cannot move it outside the range of the honest ones. Optional bounds
/// refuse answers outside [minAnswer, maxAnswer].
///
/// A release is accepted only while the registry's `lineageValid` holds at submit time: it exists,
/// is not revoked, its publisher may still publish the name, and no ancestor within the registry's
/// MAX_LINEAGE_DEPTH (64) parents is revoked; a deeper lineage is refused (fail closed). Changing the
/// approved release discards a partly filled round, because its answers came from another model.
contract PredictionFeed is AggregatorV3Interface, Ownable2Step {
    /// @notice A closed round, as `getRoundData` and `roundModel` report it.
    struct Round {
        int256 answer;
        uint64 startedAt;
        uint64 updatedAt;
        uint32 submissions;
        uint32 epoch;
        bytes32 releaseId;
        bytes32 artifactSha256;
    }

    /// @notice Feed version reported through AggregatorV3Interface.
    uint256 public constant version = 1;
    /// @notice Upper bound on authorised nodes; it bounds the gas of the median sort.
    uint256 public constant MAX_NODES = 31;

    /// @notice The registry whose releases this feed accepts.
    IModelRegistry public immutable registry;
    /// @notice keccak256 of the model name; only releases of this name can be approved.
    bytes32 public immutable modelNameKey;
    /// @notice The model (`owner/model`) whose predictions this feed carries.
    string public modelName;
    /// @notice How many answers close a round.
    uint256 public quorum;
    /// @notice The release nodes must use; zero until the owner approves one.
    bytes32 public approvedRelease;
    /// @notice The artifact SHA-256 of the approved release (copied from the registry).
    bytes32 public approvedArtifactSha256;
    /// @notice When true, anyone may move the approval to the registry's newest active release.
    bool public followLatest;
    /// @notice Id of the newest closed round; 0 before the first.
    uint80 public latestRoundId;
    /// @notice The smallest answer a node may submit (type(int256).min: no lower bound).
    int256 public minAnswer = type(int256).min;
    /// @notice The largest answer a node may submit (type(int256).max: no upper bound).
    int256 public maxAnswer = type(int256).max;

    uint8 private immutable _decimals;
    string private _description;
    address[] private _nodes;
    mapping(address node => uint256 indexPlusOne) private _nodeIndex;
    mapping(uint80 roundId => Round) private _rounds;
    /// @dev Answers of the open round. `_epoch` changes when a partly filled round is discarded.
    int256[] private _openAnswers;
    uint64 private _openStartedAt;
    uint32 private _epoch;
    mapping(uint80 roundId => mapping(address node => uint32 epochPlusOne)) private _submitted;

    // ----------------------------------------------------------------------------------------
    // Events
    // ----------------------------------------------------------------------------------------

    /// @notice Chainlink AggregatorInterface event: a round closed with this answer.
    event AnswerUpdated(int256 indexed current, uint256 indexed roundId, uint256 updatedAt);
    /// @notice Chainlink AggregatorInterface event: the first answer of a round arrived.
    event NewRound(uint256 indexed roundId, address indexed startedBy, uint256 startedAt);
    /// @notice A node submitted an answer made with `releaseId`.
    event AnswerSubmitted(uint80 indexed roundId, address indexed node, int256 answer, bytes32 indexed releaseId);
    /// @notice A round closed on the median of `submissions` answers of one release.
    event RoundClosed(
        uint80 indexed roundId, int256 answer, bytes32 indexed releaseId, bytes32 artifactSha256, uint256 submissions
    );
    /// @notice The answers of a partly filled round were discarded (the approved model changed).
    event RoundReset(uint80 indexed roundId, uint256 discarded);
    /// @notice The approved release changed.
    event ApprovedReleaseChanged(bytes32 indexed previous, bytes32 indexed current, bytes32 artifactSha256);
    /// @notice The follow-latest mode was switched.
    event FollowLatestChanged(bool enabled);
    /// @notice A node may now submit.
    event NodeAdded(address indexed node);
    /// @notice A node may no longer submit.
    event NodeRemoved(address indexed node);
    /// @notice The number of answers that closes a round changed.
    event QuorumChanged(uint256 previous, uint256 current);
    /// @notice The range of acceptable answers changed.
    event AnswerBoundsChanged(int256 minAnswer, int256 maxAnswer);

    // ----------------------------------------------------------------------------------------
    // Errors
    // ----------------------------------------------------------------------------------------

    /// @notice The zero address was given for the registry or a node.
    error ZeroAddress();
    /// @notice The quorum is even, zero, above MAX_NODES or above the number of nodes.
    error InvalidQuorum(uint256 quorum, uint256 nodeCount);
    /// @notice The bounds are inverted (min above max).
    error InvalidBounds(int256 minAnswer, int256 maxAnswer);
    /// @notice The answer is outside the feed's bounds.
    error AnswerOutOfBounds(int256 answer, int256 minAnswer, int256 maxAnswer);
    /// @notice The feed already has MAX_NODES nodes.
    error TooManyNodes();
    /// @notice The account is already an authorised node.
    error AlreadyNode(address account);
    /// @notice The account is not an authorised node.
    error NotNode(address account);
    /// @notice Submissions go to the open round only (`latestRoundId + 1`).
    error WrongRound(uint80 roundId, uint80 openRound);
    /// @notice No release has been approved yet.
    error NoApprovedRelease();
    /// @notice The submission was made with a release other than the approved one.
    error ReleaseNotApproved(bytes32 releaseId, bytes32 approved);
    /// @notice The release is not valid in the registry (unknown, revoked, its publisher no longer
    /// authorised) or has a revoked ancestor, or a lineage deeper than the registry follows.
    error ReleaseNotActive(bytes32 releaseId);
    /// @notice The release belongs to another model than this feed's.
    error WrongModel(bytes32 releaseId, string name);
    /// @notice The node already answered this round.
    error AlreadySubmitted(uint80 roundId, address node);
    /// @notice The round has not closed (or does not exist).
    error NoSuchRound(uint80 roundId);
    /// @notice `syncApprovedRelease` needs follow-latest mode.
    error NotFollowingLatest();

    /// @param registry_ The ModelRegistry whose releases this feed accepts.
    /// @param modelName_ The model (`owner/model`) whose releases may be approved.
    /// @param description_ Human description, e.g. "CO2 ppm forecast, next week".
    /// @param decimals_ Fixed-point decimals of answers (nodes scale their float predictions).
    /// @param quorum_ Answers that close a round: odd, 1 for a single node, 2f+1 to tolerate f liars.
    constructor(
        IModelRegistry registry_,
        string memory modelName_,
        string memory description_,
        uint8 decimals_,
        uint256 quorum_
    ) Ownable(msg.sender) {
        if (address(registry_) == address(0)) revert ZeroAddress();
        if (quorum_ % 2 == 0 || quorum_ > MAX_NODES) revert InvalidQuorum(quorum_, 0);
        registry = registry_;
        modelName = modelName_;
        modelNameKey = keccak256(bytes(modelName_));
        _description = description_;
        _decimals = decimals_;
        quorum = quorum_;
        emit QuorumChanged(0, quorum_);
    }

    // ----------------------------------------------------------------------------------------
    // Nodes submit
    // ----------------------------------------------------------------------------------------

    /// @notice Submits this node's answer for the open round, made with `releaseId`.
    /// @dev Checks, in order: authorised node, open round, answer within bounds, an approved release,
    /// the same release, its lineage still valid in the registry, first answer of this node. Closes
    /// the round at quorum.
    function submit(uint80 roundId, int256 answer, bytes32 releaseId) external {
        if (_nodeIndex[msg.sender] == 0) revert NotNode(msg.sender);
        uint80 open = latestRoundId + 1;
        if (roundId != open) revert WrongRound(roundId, open);
        int256 low = minAnswer;
        int256 high = maxAnswer;
        if (answer < low || answer > high) revert AnswerOutOfBounds(answer, low, high);
        bytes32 approved = approvedRelease;
        if (approved == bytes32(0)) revert NoApprovedRelease();
        if (releaseId != approved) revert ReleaseNotApproved(releaseId, approved);
        if (!registry.lineageValid(releaseId)) revert ReleaseNotActive(releaseId);
        uint32 mark = _epoch + 1;
        if (_submitted[roundId][msg.sender] == mark) revert AlreadySubmitted(roundId, msg.sender);
        _submitted[roundId][msg.sender] = mark;

        if (_openAnswers.length == 0) {
            _openStartedAt = uint64(block.timestamp);
            emit NewRound(roundId, msg.sender, block.timestamp);
        }
        _openAnswers.push(answer);
        emit AnswerSubmitted(roundId, msg.sender, answer, releaseId);
        // Odd counts only: after a quorum change the open round may already hold more answers than
        // the new quorum, and it then closes on the next odd count, never on an even one.
        uint256 count = _openAnswers.length;
        if (count >= quorum && count % 2 == 1) _close(roundId, releaseId);
    }

    // ----------------------------------------------------------------------------------------
    // Owner
    // ----------------------------------------------------------------------------------------

    /// @notice Authorises `node` to submit answers.
    function addNode(address node) external onlyOwner {
        if (node == address(0)) revert ZeroAddress();
        if (_nodeIndex[node] != 0) revert AlreadyNode(node);
        if (_nodes.length >= MAX_NODES) revert TooManyNodes();
        _nodes.push(node);
        _nodeIndex[node] = _nodes.length;
        emit NodeAdded(node);
    }

    /// @notice Withdraws `node`'s authorisation. Refused if fewer nodes than the quorum would remain.
    /// @dev An answer it already gave to the open round still counts.
    function removeNode(address node) external onlyOwner {
        uint256 indexPlusOne = _nodeIndex[node];
        if (indexPlusOne == 0) revert NotNode(node);
        if (_nodes.length - 1 < quorum) revert InvalidQuorum(quorum, _nodes.length - 1);
        address last = _nodes[_nodes.length - 1];
        _nodes[indexPlusOne - 1] = last;
        _nodeIndex[last] = indexPlusOne;
        _nodes.pop();
        delete _nodeIndex[node];
        emit NodeRemoved(node);
    }

    /// @notice Sets how many answers close a round: odd (2f+1), at most the number of nodes.
    function setQuorum(uint256 quorum_) external onlyOwner {
        if (quorum_ % 2 == 0 || quorum_ > _nodes.length) revert InvalidQuorum(quorum_, _nodes.length);
        emit QuorumChanged(quorum, quorum_);
        quorum = quorum_;
    }

    /// @notice Refuses answers outside [minAnswer_, maxAnswer_]; type(int256).min/max lift a bound.
    /// @dev Answers already in the open round stay: they were within the bounds when submitted.
    function setAnswerBounds(int256 minAnswer_, int256 maxAnswer_) external onlyOwner {
        if (minAnswer_ > maxAnswer_) revert InvalidBounds(minAnswer_, maxAnswer_);
        minAnswer = minAnswer_;
        maxAnswer = maxAnswer_;
        emit AnswerBoundsChanged(minAnswer_, maxAnswer_);
    }

    /// @notice Approves the release nodes must use. Its lineage must be valid in the registry and it
    /// must belong to this feed's model. A partly filled round is discarded.
    function setApprovedRelease(bytes32 releaseId) external onlyOwner {
        _approve(releaseId);
    }

    /// @notice Lets anyone move the approval to the registry's newest valid release of the model
    /// (the registry's `latest` decides), or stops that.
    function setFollowLatest(bool enabled) external onlyOwner {
        followLatest = enabled;
        emit FollowLatestChanged(enabled);
    }

    // ----------------------------------------------------------------------------------------
    // Anyone
    // ----------------------------------------------------------------------------------------

    /// @notice In follow-latest mode, approves the registry's newest valid release of the model.
    /// @return releaseId The now approved release.
    function syncApprovedRelease() external returns (bytes32 releaseId) {
        if (!followLatest) revert NotFollowingLatest();
        releaseId = registry.latest(modelName).id;
        _approve(releaseId);
    }

    // ----------------------------------------------------------------------------------------
    // Views: AggregatorV3Interface
    // ----------------------------------------------------------------------------------------

    /// @inheritdoc AggregatorV3Interface
    function decimals() external view returns (uint8) {
        return _decimals;
    }

    /// @inheritdoc AggregatorV3Interface
    function description() external view returns (string memory) {
        return _description;
    }

    /// @inheritdoc AggregatorV3Interface
    /// @dev Reverts with NoSuchRound for a round that has not closed.
    function getRoundData(uint80 roundId)
        external
        view
        returns (uint80, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        Round storage round = _closed(roundId);
        return (roundId, round.answer, round.startedAt, round.updatedAt, roundId);
    }

    /// @inheritdoc AggregatorV3Interface
    /// @dev Reverts with NoSuchRound(0) before the first round closes.
    function latestRoundData()
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        roundId = latestRoundId;
        Round storage round = _closed(roundId);
        return (roundId, round.answer, round.startedAt, round.updatedAt, roundId);
    }

    // ----------------------------------------------------------------------------------------
    // Views: models, nodes, the open round
    // ----------------------------------------------------------------------------------------

    /// @notice The release and artifact digest of the model that produced a closed round.
    function roundModel(uint80 roundId) external view returns (bytes32 releaseId, bytes32 artifactSha256) {
        Round storage round = _closed(roundId);
        return (round.releaseId, round.artifactSha256);
    }

    /// @notice How many answers a closed round's median was taken over.
    function roundSubmissions(uint80 roundId) external view returns (uint256) {
        return _closed(roundId).submissions;
    }

    /// @notice The open round: its id, answers so far and when its first answer came (0 if none).
    function openRound() external view returns (uint80 roundId, uint256 submissions, uint256 startedAt) {
        submissions = _openAnswers.length;
        return (latestRoundId + 1, submissions, submissions == 0 ? 0 : _openStartedAt);
    }

    /// @notice Whether `node` has an answer in `roundId` (closed, or open and not discarded).
    /// @dev Nodes call this after a restart so they never answer a round twice.
    function hasSubmitted(uint80 roundId, address node) external view returns (bool) {
        uint32 mark = _submitted[roundId][node];
        if (mark == 0) return false;
        if (roundId <= latestRoundId) return mark == _rounds[roundId].epoch + 1;
        return roundId == latestRoundId + 1 && mark == _epoch + 1;
    }

    /// @notice Whether `account` may submit.
    function isNode(address account) external view returns (bool) {
        return _nodeIndex[account] != 0;
    }

    /// @notice All authorised nodes (order changes on removal).
    function nodes() external view returns (address[] memory) {
        return _nodes;
    }

    // ----------------------------------------------------------------------------------------
    // Internals
    // ----------------------------------------------------------------------------------------

    function _approve(bytes32 releaseId) private {
        if (!registry.lineageValid(releaseId)) revert ReleaseNotActive(releaseId);
        IModelRegistry.ReleaseInfo memory info = registry.getRelease(releaseId);
        if (keccak256(bytes(info.name)) != modelNameKey) revert WrongModel(releaseId, info.name);
        bytes32 previous = approvedRelease;
        if (previous == releaseId) return;
        approvedRelease = releaseId;
        approvedArtifactSha256 = info.artifactSha256;
        emit ApprovedReleaseChanged(previous, releaseId, info.artifactSha256);
        uint256 discarded = _openAnswers.length;
        if (discarded != 0) {
            delete _openAnswers;
            emit RoundReset(latestRoundId + 1, discarded);
        }
        ++_epoch;
    }

    function _close(uint80 roundId, bytes32 releaseId) private {
        int256[] memory answers = _openAnswers;
        int256 median = _median(answers);
        bytes32 sha = approvedArtifactSha256;
        _rounds[roundId] = Round({
            answer: median,
            startedAt: _openStartedAt,
            updatedAt: uint64(block.timestamp),
            submissions: uint32(answers.length),
            epoch: _epoch,
            releaseId: releaseId,
            artifactSha256: sha
        });
        latestRoundId = roundId;
        delete _openAnswers;
        // Cleared so the next round's first answer always writes a fresh value: its gas cost then
        // does not depend on whether it lands in the same second as this one (estimates stay valid).
        _openStartedAt = 0;
        emit RoundClosed(roundId, median, releaseId, sha, answers.length);
        emit AnswerUpdated(median, roundId, block.timestamp);
    }

    /// @dev Insertion sort (at most MAX_NODES values). The count is the quorum, which is odd, so the
    /// median is the middle answer itself.
    function _median(int256[] memory values) private pure returns (int256) {
        uint256 n = values.length;
        for (uint256 i = 1; i < n; ++i) {
            int256 v = values[i];
            uint256 j = i;
            while (j > 0 && values[j - 1] > v) {
                values[j] = values[j - 1];
                --j;
            }
            values[j] = v;
        }
        return values[n / 2];
    }

    function _closed(uint80 roundId) private view returns (Round storage round) {
        round = _rounds[roundId];
        if (round.updatedAt == 0) revert NoSuchRound(roundId);
    }
}
