// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IModelRegistry
/// @notice The part of ModelRegistry that a PredictionFeed reads: whether a release is active, and
/// which model and artifact digest it names. ModelRegistry implements this interface, so the
/// compiler keeps the two in step.
interface IModelRegistry {
    /// @notice A stored release as the views return it.
    struct ReleaseInfo {
        bytes32 id;
        string name;
        string version;
        bytes32 artifactSha256;
        bytes artifactCid;
        uint64 artifactSize;
        bytes32 provenanceSha256;
        bytes provenanceCid;
        bytes32 parent;
        address publisher;
        uint64 publishedAt;
        uint64 revokedAt;
        string revocationReason;
    }

    function isActive(bytes32 id) external view returns (bool);

    function getRelease(bytes32 id) external view returns (ReleaseInfo memory);

    function latest(string calldata name) external view returns (ReleaseInfo memory);
}
