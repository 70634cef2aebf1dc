// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {Nonces} from "@openzeppelin/contracts/utils/Nonces.sol";
import {IModelRegistry} from "./interfaces/IModelRegistry.sol";
import {Namespaces} from "./Namespaces.sol";

/// @title ModelRegistry
/// @notice Anchors releases of compressed ML models: the artifact's SHA-256 and IPFS CID, the
/// hash and CID of its compression-provenance document, an optional model card's hash and CID,
/// its publisher and its parent release.
/// @dev Immutable by design (no proxy). A release is signed off-chain with EIP-712 and may be
/// submitted by anyone (a relayer). Storage keeps everything a verifier needs without scanning
/// logs; events carry everything an indexer needs, strings included.
///
/// Names are `namespace/model`. A namespace is bound to one account, its owner, who claims it by
/// commit-reveal: `commitNamespace(makeCommitment(namespace, owner, salt))`, then, at least one
/// block later and within `MAX_COMMITMENT_AGE`, `claimNamespace(namespace, salt)`. A watcher of the
/// mempool learns nothing from the commitment (it hides the namespace and binds the claimant), and
/// a reveal it copies is useless to it: the commitment names the original sender. The namespace
/// owner owns every name under it: it may always publish, adds and removes per-name publishers,
/// points aliases and revokes. Publishing under an unclaimed namespace reverts.
///
/// One rule decides whether a release counts (`isValid`): it exists, is not revoked, and its
/// publisher may still publish its name (a publisher of the name, or the namespace owner). So
/// removing a publisher, or handing the namespace to a new owner, withdraws the releases that
/// account signed from `latest`, alias resolution and PredictionFeed (re-adding the publisher
/// restores them). Revocation remains the way to withdraw one release for good.
///
/// CIDs are accepted in binary CIDv1 form with a sha2-256 multihash and one of the codecs raw
/// (0x55), dag-pb (0x70) or dag-cbor (0x71): `0x01 codec 0x12 0x20 digest[32]`, 36 bytes.
///
/// Gas: every fresh storage word costs 22,100 gas, so publish writes as few as it can without
/// losing anything a reader needs. The three CID codecs share one byte of the record's first slot.
/// A CID digest equal to its content's SHA-256 (a single raw block, e.g. a provenance document or
/// card under `kubo-v1`) is stored as zero and read back as the SHA-256. A release without a card
/// writes no card word. Releases sharing an artifact digest form a linked list through the records
/// (a head per digest and a `previousWithSameDigest` pointer that stays zero, unwritten, for the
/// usual unique digest).
///
/// Every loop is bounded: paged views return at most `MAX_PAGE_SIZE` items, `latest` looks at the
/// newest `LATEST_SCAN_LIMIT` releases, `lineageValid` follows at most `MAX_LINEAGE_DEPTH` parents.
contract ModelRegistry is EIP712, Nonces, Namespaces, IModelRegistry {
    /// @notice A release as the publisher signs it (the EIP-712 primary type). A release without a
    /// card has `cardSha256 == 0` and an empty `cardCid`.
    struct Release {
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
        uint256 nonce;
        uint256 deadline;
    }

    /// @notice One attester's verdict on one release (the latest one it gave). `attestedAt == 0`
    /// means the attester gave none.
    struct Attestation {
        address attester;
        bool passed;
        bytes32 reportSha256;
        uint64 attestedAt;
    }

    /// @dev Packed: publisher, time, size and the three CID codecs (two bits each, see `_codecBits`)
    /// share one slot. A CID digest is zero when it equals the matching SHA-256; zero words are not
    /// written, so a release without a card costs nothing for its card fields.
    struct Record {
        address publisher;
        uint40 publishedAt;
        uint40 artifactSize;
        uint8 codecs;
        bytes32 nameKey;
        bytes32 artifactSha256;
        bytes32 artifactCidDigest;
        bytes32 provenanceSha256;
        bytes32 provenanceCidDigest;
        bytes32 cardSha256;
        bytes32 cardCidDigest;
        bytes32 parent;
        bytes32 previousWithSameDigest;
        string version;
    }

    struct Revocation {
        uint64 revokedAt;
        string reason;
    }

    /// @dev Written by the first release of a name; `namespaceKey` is zero until then.
    struct NameInfo {
        bytes32 namespaceKey;
        uint64 releaseCount;
        string name;
    }

    struct AliasEntry {
        bytes32 releaseId;
        uint256 indexPlusOne;
    }

    /// @dev Storage form of an Attestation: attester, verdict and time packed into one slot.
    struct StoredAttestation {
        address attester;
        bool passed;
        uint64 attestedAt;
        bytes32 reportSha256;
    }

    bytes32 public constant RELEASE_TYPEHASH = keccak256(
        "Release(string name,string version,bytes32 artifactSha256,bytes artifactCid,uint64 artifactSize,"
        "bytes32 provenanceSha256,bytes provenanceCid,bytes32 cardSha256,bytes cardCid,bytes32 parent,"
        "uint256 nonce,uint256 deadline)"
    );

    /// @notice The largest artifact a release may describe (uint40: 1 TiB).
    uint64 public constant MAX_ARTIFACT_SIZE = type(uint40).max;
    /// @notice The most parents `lineageValid` follows; a release with a deeper lineage is not valid.
    uint256 public constant MAX_LINEAGE_DEPTH = 64;
    /// @notice The most releases `latest` looks at, newest first.
    uint256 public constant LATEST_SCAN_LIMIT = 256;
    /// @notice The most items any paged view returns at once.
    uint256 public constant MAX_PAGE_SIZE = 256;

    mapping(bytes32 nameKey => NameInfo) private _names;
    mapping(bytes32 nameKey => mapping(address account => bool)) private _publishers;
    mapping(bytes32 nameKey => mapping(uint256 index => bytes32 releaseId)) private _releasesOfName;
    mapping(bytes32 sha256Digest => bytes32 newestReleaseId) private _newestOfDigest;
    mapping(bytes32 releaseId => Record) private _records;
    mapping(bytes32 releaseId => Revocation) private _revocations;
    mapping(bytes32 nameKey => mapping(bytes32 aliasKey => AliasEntry)) private _aliases;
    mapping(bytes32 nameKey => string[]) private _aliasNames;
    mapping(bytes32 releaseId => StoredAttestation[]) private _attestations;
    mapping(bytes32 releaseId => mapping(address attester => uint256 indexPlusOne)) private _attestationIndex;
    mapping(address attester => bytes32[]) private _attestedBy;

    // ----------------------------------------------------------------------------------------
    // Events
    // ----------------------------------------------------------------------------------------

    /// @notice An account may now publish releases of the name.
    event PublisherAdded(bytes32 indexed nameKey, string name, address indexed publisher);
    /// @notice An account may no longer publish releases of the name; its releases stop counting.
    event PublisherRemoved(bytes32 indexed nameKey, string name, address indexed publisher);
    /// @notice A release was anchored. Carries every field so indexers need no storage reads.
    event ReleasePublished(
        bytes32 indexed releaseId,
        bytes32 indexed nameKey,
        bytes32 indexed artifactSha256,
        string name,
        string version,
        bytes artifactCid,
        uint64 artifactSize,
        bytes32 provenanceSha256,
        bytes provenanceCid,
        bytes32 cardSha256,
        bytes cardCid,
        bytes32 parent,
        address publisher,
        address submitter
    );
    /// @notice A release was revoked; it stays readable with this reason.
    event ReleaseRevoked(bytes32 indexed releaseId, bytes32 indexed nameKey, address indexed by, string reason);
    /// @notice An attester gave (or replaced) its verdict on a release.
    event ReleaseAttested(bytes32 indexed releaseId, address indexed attester, bool passed, bytes32 reportSha256);
    /// @notice `name@aliasName` now points at `releaseId`.
    event AliasSet(bytes32 indexed nameKey, string name, string aliasName, bytes32 indexed releaseId);
    /// @notice `name@aliasName` no longer exists.
    event AliasRemoved(bytes32 indexed nameKey, string name, string aliasName);

    // ----------------------------------------------------------------------------------------
    // Errors
    // ----------------------------------------------------------------------------------------

    /// @notice The version label is empty, longer than 64 bytes or has characters outside SemVer's set.
    error InvalidVersion(string version);
    /// @notice The alias is not `[a-z][a-z0-9-]{0,31}`, or is `latest`.
    error InvalidAlias(string aliasName);
    /// @notice The zero address cannot publish.
    error ZeroAddress();
    /// @notice The account is already a publisher of the name.
    error AlreadyPublisher(bytes32 nameKey, address account);
    /// @notice The account may not publish releases of the name.
    error NotPublisher(bytes32 nameKey, address account);
    /// @notice The signature does not come from the stated publisher (ECDSA or ERC-1271).
    error InvalidSignature(address publisher);
    /// @notice The release's deadline has passed.
    error ExpiredDeadline(uint256 deadline, uint256 nowTimestamp);
    /// @notice The version label is already taken for this name.
    error DuplicateVersion(bytes32 releaseId);
    /// @notice The CID is not a 36-byte CIDv1 with codec raw, dag-pb or dag-cbor and a non-zero
    /// sha2-256 multihash.
    error UnsupportedCid(bytes cid);
    /// @notice A digest or size is zero, the size is too large, or the card's digest and CID are not
    /// both given or both absent.
    error InvalidRelease();
    /// @notice No release has this id.
    error UnknownRelease(bytes32 releaseId);
    /// @notice The release is revoked.
    error ReleaseIsRevoked(bytes32 releaseId);
    /// @notice The release does not count: its publisher may no longer publish its name.
    error ReleaseNotValid(bytes32 releaseId);
    /// @notice The release belongs to another name.
    error WrongName(bytes32 releaseId, bytes32 nameKey);
    /// @notice Only the namespace owner or the release's publisher may revoke it.
    error NotAuthorisedToRevoke(bytes32 releaseId, address account);
    /// @notice No valid release among the newest LATEST_SCAN_LIMIT releases of the name.
    error NoActiveRelease(bytes32 nameKey);
    /// @notice The name has no such alias.
    error UnknownAlias(bytes32 nameKey, string aliasName);
    /// @notice The cursor is not a release with this artifact digest.
    error InvalidCursor(uint256 cursor);

    constructor() EIP712("ModelRegistry", "1") {}

    // ----------------------------------------------------------------------------------------
    // Publishers of a name
    // ----------------------------------------------------------------------------------------

    /// @notice Lets `account` publish releases of the name (which need not have releases yet).
    /// Only the namespace owner may call this.
    function addPublisher(string calldata name, address account) external {
        bytes32 nameKey = keccak256(bytes(name));
        _onlyNamespaceOwner(_namespaceKeyOf(name));
        if (account == address(0)) revert ZeroAddress();
        if (_publishers[nameKey][account]) revert AlreadyPublisher(nameKey, account);
        _publishers[nameKey][account] = true;
        emit PublisherAdded(nameKey, name, account);
    }

    /// @notice Stops `account` from publishing releases of the name; the releases it signed stop
    /// counting (see `isValid`) until it is added again. Only the namespace owner may call this.
    function removePublisher(string calldata name, address account) external {
        bytes32 nameKey = keccak256(bytes(name));
        _onlyNamespaceOwner(_namespaceKeyOf(name));
        if (!_publishers[nameKey][account]) revert NotPublisher(nameKey, account);
        _publishers[nameKey][account] = false;
        emit PublisherRemoved(nameKey, name, account);
    }

    // ----------------------------------------------------------------------------------------
    // Releases
    // ----------------------------------------------------------------------------------------

    /// @notice Anchors a release signed by `publisher`. Anyone may submit it.
    /// @dev The publisher must be the namespace owner or a publisher of the name. The signature is
    /// checked with ECDSA for accounts and ERC-1271 for contract wallets; the publisher's sequential
    /// nonce and the deadline stop replay, the EIP-712 domain stops replay on another chain or contract.
    /// @param release The signed fields.
    /// @param publisher The account whose signature this is.
    /// @param signature 65-byte ECDSA signature, or whatever the ERC-1271 wallet accepts.
    /// @return id keccak256(abi.encode(keccak256(name), keccak256(version))).
    function publish(Release calldata release, address publisher, bytes calldata signature)
        external
        returns (bytes32 id)
    {
        if (block.timestamp > release.deadline) revert ExpiredDeadline(release.deadline, block.timestamp);
        if (
            release.artifactSha256 == bytes32(0) || release.provenanceSha256 == bytes32(0)
                || release.artifactSize == 0 || release.artifactSize > MAX_ARTIFACT_SIZE
                || (release.cardSha256 == bytes32(0)) != (release.cardCid.length == 0)
        ) revert InvalidRelease();
        (uint8 artifactCodec, bytes32 artifactDigest) = _splitCid(release.artifactCid);
        (uint8 provenanceCodec, bytes32 provenanceDigest) = _splitCid(release.provenanceCid);
        uint8 cardCodec = 0;
        bytes32 cardDigest = bytes32(0);
        if (release.cardCid.length != 0) (cardCodec, cardDigest) = _splitCid(release.cardCid);
        _checkVersion(release.version);

        bytes32 nameKey = keccak256(bytes(release.name));
        NameInfo storage info = _names[nameKey];
        bytes32 namespaceKey = info.namespaceKey;
        bool firstOfName = namespaceKey == bytes32(0);
        if (firstOfName) namespaceKey = _namespaceKeyOf(release.name);
        address nsOwner = _namespaceOwnerOf(namespaceKey);
        if (nsOwner == address(0)) revert UnknownNamespace(namespaceKey);
        if (publisher != nsOwner && !_publishers[nameKey][publisher]) revert NotPublisher(nameKey, publisher);

        id = _releaseId(nameKey, keccak256(bytes(release.version)));
        if (_records[id].publisher != address(0)) revert DuplicateVersion(id);
        if (release.parent != bytes32(0)) _requireActive(release.parent);

        if (!SignatureChecker.isValidSignatureNow(publisher, hashRelease(release), signature)) {
            revert InvalidSignature(publisher);
        }
        _useCheckedNonce(publisher, release.nonce);

        if (firstOfName) {
            info.namespaceKey = namespaceKey;
            info.name = release.name;
        }
        Record storage record = _records[id];
        record.publisher = publisher;
        record.publishedAt = uint40(block.timestamp);
        record.artifactSize = uint40(release.artifactSize);
        record.codecs = artifactCodec | (provenanceCodec << 2) | (cardCodec << 4);
        record.nameKey = nameKey;
        record.artifactSha256 = release.artifactSha256;
        if (artifactDigest != release.artifactSha256) record.artifactCidDigest = artifactDigest;
        record.provenanceSha256 = release.provenanceSha256;
        if (provenanceDigest != release.provenanceSha256) record.provenanceCidDigest = provenanceDigest;
        if (release.cardSha256 != bytes32(0)) {
            record.cardSha256 = release.cardSha256;
            if (cardDigest != release.cardSha256) record.cardCidDigest = cardDigest;
        }
        if (release.parent != bytes32(0)) record.parent = release.parent;
        record.version = release.version;

        uint64 index = info.releaseCount;
        _releasesOfName[nameKey][index] = id;
        info.releaseCount = index + 1;
        bytes32 previous = _newestOfDigest[release.artifactSha256];
        if (previous != bytes32(0)) record.previousWithSameDigest = previous;
        _newestOfDigest[release.artifactSha256] = id;

        emit ReleasePublished(
            id,
            nameKey,
            release.artifactSha256,
            release.name,
            release.version,
            release.artifactCid,
            release.artifactSize,
            release.provenanceSha256,
            release.provenanceCid,
            release.cardSha256,
            release.cardCid,
            release.parent,
            publisher,
            msg.sender
        );
    }

    /// @notice Revokes a release. It stays readable, with the reason and the time.
    /// @dev Allowed for the namespace's current owner and for the release's publisher (even one that
    /// was removed: revoking only ever removes trust).
    function revoke(bytes32 releaseId, string calldata reason) external {
        Record storage record = _requireActive(releaseId);
        bytes32 nameKey = record.nameKey;
        if (msg.sender != record.publisher && msg.sender != _namespaceOwnerOf(_names[nameKey].namespaceKey)) {
            revert NotAuthorisedToRevoke(releaseId, msg.sender);
        }
        _revocations[releaseId] = Revocation({revokedAt: uint64(block.timestamp), reason: reason});
        emit ReleaseRevoked(releaseId, nameKey, msg.sender, reason);
    }

    /// @notice Records the caller's verdict on a release (for example after an independent
    /// verification or accuracy check). A second call by the same attester replaces its verdict.
    /// @param reportSha256 SHA-256 of the attester's report, kept off chain.
    function attest(bytes32 releaseId, bool passed, bytes32 reportSha256) external {
        if (_records[releaseId].publisher == address(0)) revert UnknownRelease(releaseId);
        StoredAttestation memory attestation = StoredAttestation({
            attester: msg.sender,
            passed: passed,
            attestedAt: uint64(block.timestamp),
            reportSha256: reportSha256
        });
        uint256 indexPlusOne = _attestationIndex[releaseId][msg.sender];
        if (indexPlusOne == 0) {
            _attestations[releaseId].push(attestation);
            _attestationIndex[releaseId][msg.sender] = _attestations[releaseId].length;
            _attestedBy[msg.sender].push(releaseId);
        } else {
            _attestations[releaseId][indexPlusOne - 1] = attestation;
        }
        emit ReleaseAttested(releaseId, msg.sender, passed, reportSha256);
    }

    // ----------------------------------------------------------------------------------------
    // Aliases
    // ----------------------------------------------------------------------------------------

    /// @notice Points `name@aliasName` at a valid release of the name (creating the alias or moving
    /// it: re-pointing is the rollback path that needs no new release). Namespace owner only.
    /// @param aliasName `[a-z][a-z0-9-]{0,31}`, not `latest`.
    function setAlias(string calldata name, string calldata aliasName, bytes32 releaseId) external {
        bytes32 nameKey = keccak256(bytes(name));
        _onlyNamespaceOwner(_namespaceKeyOf(name));
        _checkAlias(aliasName);
        Record storage record = _requireActive(releaseId);
        if (record.nameKey != nameKey) revert WrongName(releaseId, nameKey);
        if (!_counts(record)) revert ReleaseNotValid(releaseId);
        AliasEntry storage entry = _aliases[nameKey][keccak256(bytes(aliasName))];
        if (entry.indexPlusOne == 0) {
            _aliasNames[nameKey].push(aliasName);
            entry.indexPlusOne = _aliasNames[nameKey].length;
        }
        entry.releaseId = releaseId;
        emit AliasSet(nameKey, name, aliasName, releaseId);
    }

    /// @notice Deletes `name@aliasName`. Namespace owner only.
    function removeAlias(string calldata name, string calldata aliasName) external {
        bytes32 nameKey = keccak256(bytes(name));
        _onlyNamespaceOwner(_namespaceKeyOf(name));
        mapping(bytes32 => AliasEntry) storage entries = _aliases[nameKey];
        uint256 indexPlusOne = entries[keccak256(bytes(aliasName))].indexPlusOne;
        if (indexPlusOne == 0) revert UnknownAlias(nameKey, aliasName);
        string[] storage names = _aliasNames[nameKey];
        uint256 last = names.length - 1;
        if (indexPlusOne - 1 != last) {
            string memory moved = names[last];
            names[indexPlusOne - 1] = moved;
            entries[keccak256(bytes(moved))].indexPlusOne = indexPlusOne;
        }
        names.pop();
        delete entries[keccak256(bytes(aliasName))];
        emit AliasRemoved(nameKey, name, aliasName);
    }

    /// @notice The release `name@aliasName` points at. Reverts with UnknownAlias when there is no such
    /// alias, ReleaseIsRevoked when its target was revoked later, ReleaseNotValid when the target's
    /// publisher may no longer publish the name: the alias never resolves to bytes that stopped counting.
    function resolveAlias(string calldata name, string calldata aliasName) external view returns (ReleaseInfo memory) {
        bytes32 nameKey = keccak256(bytes(name));
        bytes32 id = _aliases[nameKey][keccak256(bytes(aliasName))].releaseId;
        if (id == bytes32(0)) revert UnknownAlias(nameKey, aliasName);
        Record storage record = _requireActive(id);
        if (!_counts(record)) revert ReleaseNotValid(id);
        return getRelease(id);
    }

    /// @notice The release id `name@aliasName` points at, valid or not (zero if no such alias).
    function aliasTarget(string calldata name, string calldata aliasName) external view returns (bytes32) {
        return _aliases[keccak256(bytes(name))][keccak256(bytes(aliasName))].releaseId;
    }

    /// @notice How many aliases the name has.
    function aliasCount(string calldata name) external view returns (uint256) {
        return _aliasNames[keccak256(bytes(name))].length;
    }

    /// @notice The name's aliases and their targets, paged (order changes on removal).
    function aliasesOf(string calldata name, uint256 offset, uint256 limit)
        external
        view
        returns (string[] memory aliasNames, bytes32[] memory releaseIds)
    {
        bytes32 nameKey = keccak256(bytes(name));
        string[] storage names = _aliasNames[nameKey];
        (uint256 start, uint256 end) = _window(names.length, offset, limit);
        aliasNames = new string[](end - start);
        releaseIds = new bytes32[](end - start);
        for (uint256 i = start; i < end; ++i) {
            aliasNames[i - start] = names[i];
            releaseIds[i - start] = _aliases[nameKey][keccak256(bytes(names[i]))].releaseId;
        }
    }

    // ----------------------------------------------------------------------------------------
    // Views: releases
    // ----------------------------------------------------------------------------------------

    /// @notice The EIP-712 digest a publisher signs for `release`.
    function hashRelease(Release calldata release) public view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    RELEASE_TYPEHASH,
                    keccak256(bytes(release.name)),
                    keccak256(bytes(release.version)),
                    release.artifactSha256,
                    keccak256(release.artifactCid),
                    release.artifactSize,
                    release.provenanceSha256,
                    keccak256(release.provenanceCid),
                    release.cardSha256,
                    keccak256(release.cardCid),
                    release.parent,
                    release.nonce,
                    release.deadline
                )
            )
        );
    }

    /// @notice The id of `name@version`, whether or not it exists.
    function computeReleaseId(string calldata name, string calldata version) external pure returns (bytes32) {
        return _releaseId(keccak256(bytes(name)), keccak256(bytes(version)));
    }

    /// @notice The release with this id; reverts with UnknownRelease if there is none.
    function getRelease(bytes32 id) public view returns (ReleaseInfo memory info) {
        Record storage record = _records[id];
        if (record.publisher == address(0)) revert UnknownRelease(id);
        Revocation storage revocation = _revocations[id];
        uint8 codecs = record.codecs;
        bytes32 cardSha256 = record.cardSha256;
        info = ReleaseInfo({
            id: id,
            name: _names[record.nameKey].name,
            version: record.version,
            artifactSha256: record.artifactSha256,
            artifactCid: _joinCid(codecs, record.artifactCidDigest, record.artifactSha256),
            artifactSize: record.artifactSize,
            provenanceSha256: record.provenanceSha256,
            provenanceCid: _joinCid(codecs >> 2, record.provenanceCidDigest, record.provenanceSha256),
            cardSha256: cardSha256,
            cardCid: cardSha256 == bytes32(0) ? bytes("") : _joinCid(codecs >> 4, record.cardCidDigest, cardSha256),
            parent: record.parent,
            publisher: record.publisher,
            publishedAt: record.publishedAt,
            revokedAt: revocation.revokedAt,
            revocationReason: revocation.reason
        });
    }

    /// @notice `name@version`; reverts with UnknownRelease if there is none.
    function getReleaseByVersion(string calldata name, string calldata version)
        external
        view
        returns (ReleaseInfo memory)
    {
        return getRelease(_releaseId(keccak256(bytes(name)), keccak256(bytes(version))));
    }

    /// @notice The newest valid release of the name (see `isValid`), among its newest
    /// LATEST_SCAN_LIMIT releases; reverts with NoActiveRelease when there is none.
    function latest(string calldata name) external view returns (ReleaseInfo memory) {
        bytes32 nameKey = keccak256(bytes(name));
        NameInfo storage info = _names[nameKey];
        address nsOwner = _namespaceOwnerOf(info.namespaceKey);
        mapping(uint256 => bytes32) storage ids = _releasesOfName[nameKey];
        uint256 count = info.releaseCount;
        uint256 stop = count > LATEST_SCAN_LIMIT ? count - LATEST_SCAN_LIMIT : 0;
        for (uint256 i = count; i > stop; --i) {
            bytes32 id = ids[i - 1];
            if (_revocations[id].revokedAt != 0) continue;
            address publisher = _records[id].publisher;
            if (publisher == nsOwner || _publishers[nameKey][publisher]) return getRelease(id);
        }
        revert NoActiveRelease(nameKey);
    }

    /// @notice How many releases the name has, revoked ones included.
    function releaseCount(string calldata name) external view returns (uint256) {
        return _names[keccak256(bytes(name))].releaseCount;
    }

    /// @notice Release ids of the name in publish order, at most `limit` (capped at MAX_PAGE_SIZE)
    /// from `offset`.
    function releasesOf(string calldata name, uint256 offset, uint256 limit)
        external
        view
        returns (bytes32[] memory page)
    {
        bytes32 nameKey = keccak256(bytes(name));
        (uint256 start, uint256 end) = _window(_names[nameKey].releaseCount, offset, limit);
        mapping(uint256 => bytes32) storage ids = _releasesOfName[nameKey];
        page = new bytes32[](end - start);
        for (uint256 i = start; i < end; ++i) {
            page[i - start] = ids[i];
        }
    }

    /// @notice Release ids whose artifact has this SHA-256, newest first, at most `limit` (capped at
    /// MAX_PAGE_SIZE) from `cursor`, and the cursor of the next page (0 when there is none).
    /// @dev O(page): a cursor is the id (as uint256) of the first release of its page; 0 starts at
    /// the newest. A cursor that is not a release with this digest reverts with InvalidCursor.
    function releasesByDigest(bytes32 artifactSha256, uint256 cursor, uint256 limit)
        external
        view
        returns (bytes32[] memory page, uint256 next)
    {
        bytes32 id = _newestOfDigest[artifactSha256];
        if (cursor != 0) {
            id = bytes32(cursor);
            if (_records[id].publisher == address(0) || _records[id].artifactSha256 != artifactSha256) {
                revert InvalidCursor(cursor);
            }
        }
        if (limit > MAX_PAGE_SIZE) limit = MAX_PAGE_SIZE;
        bytes32[] memory buffer = new bytes32[](limit);
        uint256 n = 0;
        while (n < limit && id != bytes32(0)) {
            buffer[n++] = id;
            id = _records[id].previousWithSameDigest;
        }
        page = new bytes32[](n);
        for (uint256 i = 0; i < n; ++i) {
            page[i] = buffer[i];
        }
        next = uint256(id);
    }

    /// @notice Whether the release exists and is revoked.
    function isRevoked(bytes32 id) external view returns (bool) {
        return _revocations[id].revokedAt != 0;
    }

    /// @inheritdoc IModelRegistry
    function isActive(bytes32 id) external view returns (bool) {
        return _records[id].publisher != address(0) && _revocations[id].revokedAt == 0;
    }

    /// @inheritdoc IModelRegistry
    function isValid(bytes32 id) public view returns (bool) {
        Record storage record = _records[id];
        return record.publisher != address(0) && _revocations[id].revokedAt == 0 && _counts(record);
    }

    /// @inheritdoc IModelRegistry
    function lineageValid(bytes32 id) external view returns (bool) {
        if (!isValid(id)) return false;
        bytes32 parent = _records[id].parent;
        for (uint256 depth = 0; depth < MAX_LINEAGE_DEPTH; ++depth) {
            if (parent == bytes32(0)) return true;
            if (_revocations[parent].revokedAt != 0) return false;
            parent = _records[parent].parent;
        }
        return parent == bytes32(0);
    }

    // ----------------------------------------------------------------------------------------
    // Views: namespaces, names, attestations
    // ----------------------------------------------------------------------------------------

    /// @notice The owner of the name: the owner of its namespace (zero if unclaimed or not a name).
    function nameOwner(string calldata name) external view returns (address) {
        (bool ok, bytes32 namespaceKey) = _tryNamespaceKeyOf(bytes(name));
        return ok ? _namespaceOwnerOf(namespaceKey) : address(0);
    }

    /// @notice Whether `account` was added as a publisher of the name (the namespace owner need not be).
    function isPublisher(string calldata name, address account) external view returns (bool) {
        return _publishers[keccak256(bytes(name))][account];
    }

    /// @notice Whether `account` may publish releases of the name now: a publisher of the name or the
    /// namespace owner. Releases count only while this holds for their publisher.
    function mayPublish(string calldata name, address account) external view returns (bool) {
        bytes32 nameKey = keccak256(bytes(name));
        if (_publishers[nameKey][account]) return true;
        (bool ok, bytes32 namespaceKey) = _tryNamespaceKeyOf(bytes(name));
        return ok && account != address(0) && _namespaceOwnerOf(namespaceKey) == account;
    }

    /// @notice How many attesters have given a verdict on the release.
    function attestationCount(bytes32 id) external view returns (uint256) {
        return _attestations[id].length;
    }

    /// @notice Attesters' latest verdicts on the release, in the order they first judged it, paged.
    function attestationsOf(bytes32 id, uint256 offset, uint256 limit)
        external
        view
        returns (Attestation[] memory page)
    {
        StoredAttestation[] storage stored = _attestations[id];
        (uint256 start, uint256 end) = _window(stored.length, offset, limit);
        page = new Attestation[](end - start);
        for (uint256 i = start; i < end; ++i) {
            page[i - start] = _attestation(stored[i]);
        }
    }

    /// @notice `attester`'s latest verdict on the release, in O(1); `attestedAt == 0` if it gave none.
    function attestationOf(bytes32 id, address attester) external view returns (Attestation memory) {
        uint256 indexPlusOne = _attestationIndex[id][attester];
        if (indexPlusOne == 0) return Attestation({attester: attester, passed: false, reportSha256: 0, attestedAt: 0});
        return _attestation(_attestations[id][indexPlusOne - 1]);
    }

    /// @notice Ids of the releases `attester` has given a verdict on, paged.
    function attestedBy(address attester, uint256 offset, uint256 limit)
        external
        view
        returns (bytes32[] memory page)
    {
        bytes32[] storage ids = _attestedBy[attester];
        (uint256 start, uint256 end) = _window(ids.length, offset, limit);
        page = new bytes32[](end - start);
        for (uint256 i = start; i < end; ++i) {
            page[i - start] = ids[i];
        }
    }

    // ----------------------------------------------------------------------------------------
    // Internals
    // ----------------------------------------------------------------------------------------

    /// @dev The D4 rule: the record's publisher may still publish its name.
    function _counts(Record storage record) private view returns (bool) {
        address publisher = record.publisher;
        bytes32 nameKey = record.nameKey;
        return _publishers[nameKey][publisher] || _namespaceOwnerOf(_names[nameKey].namespaceKey) == publisher;
    }

    function _requireActive(bytes32 id) private view returns (Record storage record) {
        record = _records[id];
        if (record.publisher == address(0)) revert UnknownRelease(id);
        if (_revocations[id].revokedAt != 0) revert ReleaseIsRevoked(id);
    }

    function _attestation(StoredAttestation storage a) private view returns (Attestation memory) {
        return Attestation({attester: a.attester, passed: a.passed, reportSha256: a.reportSha256, attestedAt: a.attestedAt});
    }

    function _releaseId(bytes32 nameKey, bytes32 versionKey) private pure returns (bytes32) {
        return keccak256(abi.encode(nameKey, versionKey));
    }

    /// @dev `[a-z][a-z0-9-]{0,31}` and not `latest` (which always means the newest valid release).
    function _checkAlias(string calldata aliasName) private pure {
        bytes calldata b = bytes(aliasName);
        if (b.length == 0 || b.length > 32 || b[0] < "a" || b[0] > "z" || keccak256(b) == keccak256("latest")) {
            revert InvalidAlias(aliasName);
        }
        for (uint256 i = 1; i < b.length; ++i) {
            bytes1 c = b[i];
            if (!((c >= "a" && c <= "z") || (c >= "0" && c <= "9") || c == "-")) revert InvalidAlias(aliasName);
        }
    }

    /// @dev SemVer's character set ([0-9A-Za-z.+-]), 1..64 bytes. Full SemVer grammar is checked off
    /// chain, where a label that is not SemVer is refused when resolving.
    function _checkVersion(string calldata version) private pure {
        bytes calldata b = bytes(version);
        if (b.length == 0 || b.length > 64) revert InvalidVersion(version);
        for (uint256 i = 0; i < b.length; ++i) {
            bytes1 c = b[i];
            if (!((c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9") || c == "." || c == "-"
                    || c == "+")) revert InvalidVersion(version);
        }
    }

    /// @dev The codec as two bits (raw 0, dag-pb 1, dag-cbor 2) and the multihash digest.
    function _splitCid(bytes calldata cid) private pure returns (uint8 bits, bytes32 digest) {
        if (cid.length != 36 || cid[0] != 0x01 || cid[2] != 0x12 || cid[3] != 0x20) revert UnsupportedCid(cid);
        bytes1 codec = cid[1];
        if (codec == 0x55) bits = 0;
        else if (codec == 0x70) bits = 1;
        else if (codec == 0x71) bits = 2;
        else revert UnsupportedCid(cid);
        digest = bytes32(cid[4:36]);
        // Zero marks "same as the SHA-256" in storage; no real content hashes to it.
        if (digest == bytes32(0)) revert UnsupportedCid(cid);
    }

    /// @dev Inverse of the storage rule in publish: the codec from its two low bits, and a zero
    /// digest means the content's SHA-256.
    function _joinCid(uint8 bits, bytes32 storedDigest, bytes32 sha256Digest) private pure returns (bytes memory) {
        uint8 code = bits & 3;
        uint8 codec = code == 0 ? 0x55 : (code == 1 ? 0x70 : 0x71);
        bytes32 digest = storedDigest == bytes32(0) ? sha256Digest : storedDigest;
        return abi.encodePacked(uint8(0x01), codec, uint8(0x12), uint8(0x20), digest);
    }

    /// @dev The `[start, end)` slice of `total` items that a page at `offset` of `limit` covers,
    /// at most MAX_PAGE_SIZE long.
    function _window(uint256 total, uint256 offset, uint256 limit) private pure returns (uint256 start, uint256 end) {
        if (offset >= total) return (total, total);
        if (limit > MAX_PAGE_SIZE) limit = MAX_PAGE_SIZE;
        start = offset;
        end = total - offset < limit ? total : offset + limit;
    }
}
