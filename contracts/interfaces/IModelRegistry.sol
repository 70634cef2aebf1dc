// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IModelRegistry
/// @notice The part of ModelRegistry that a PredictionFeed reads: whether a release counts, whether
/// its lineage is clean, and which model and artifact digest it names. ModelRegistry implements this
/// interface, so the compiler keeps the two in step.
interface IModelRegistry {
    /// @notice A stored release as the views return it. `cardSha256` is zero and `cardCid` empty
    /// for a release without a model card.
    struct ReleaseInfo {
        bytes32 id;
        string name;
        string version;
        bytes32 artifactSha256;
        bytes artifactCid;
        uint64 artifactSize;
        bytes32 provenanceSha256;
        bytes provenanceCid;
        bytes32 cardSha256;
        bytes cardCid;
        bytes32 parent;
        address publisher;
        uint64 publishedAt;
        uint64 revokedAt;
        string revocationReason;
    }

    /// @notice Whether the release exists and is not revoked.
    function isActive(bytes32 id) external view returns (bool);

    /// @notice Whether the release counts: it exists, is not revoked, and its publisher may still
    /// publish its name (a publisher of the name or the namespace owner).
    function isValid(bytes32 id) external view returns (bool);

    /// @notice Whether the release counts and none of its ancestors is revoked, following at most
    /// `MAX_LINEAGE_DEPTH` parents; a deeper lineage is not valid (fail closed).
    function lineageValid(bytes32 id) external view returns (bool);

    function getRelease(bytes32 id) external view returns (ReleaseInfo memory);

    function latest(string calldata name) external view returns (ReleaseInfo memory);
}
