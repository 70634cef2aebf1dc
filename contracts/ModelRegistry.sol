// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {Nonces} from "@openzeppelin/contracts/utils/Nonces.sol";
import {IModelRegistry} from "./interfaces/IModelRegistry.sol";

/// @title ModelRegistry
/// @notice Anchors releases of compressed ML models: the artifact's SHA-256 and IPFS CID, the
/// hash and CID of its compression-provenance document, its publisher and its parent release.
/// @dev Immutable by design (no proxy). A release is signed off-chain with EIP-712 by a publisher
/// of its name and may be submitted by anyone (a relayer). Storage keeps everything a verifier
/// needs without scanning logs; events carry everything an indexer needs, strings included.
///
/// CIDs are accepted in binary CIDv1 form with a sha2-256 multihash and a one-byte codec
/// (`0x01 codec 0x12 0x20 digest[32]`, 36 bytes): that covers raw (0x55), dag-pb (0x70) and
/// dag-cbor (0x71) and lets a CID be stored as one word plus one byte.
///
/// Gas: a publish writes about nine fresh storage words, and every word avoided saves 22,100 gas.
/// Three choices keep the count down without losing anything a reader needs. A CID digest equal
/// to the file's SHA-256 (what a single raw block gives, e.g. a provenance document under
/// `kubo-v1`) is stored as zero and read back as the SHA-256. Releases sharing an artifact digest
/// form a linked list through the records (a head per digest, a `previousWithSameDigest` pointer
/// that is zero, and never written, for the usual unique digest). A name's release count lives
/// in the name's owner slot, which publish reads anyway.
contract ModelRegistry is EIP712, Nonces, IModelRegistry {
    /// @notice A release as the publisher signs it (the EIP-712 primary type).
    struct Release {
        string name;
        string version;
        bytes32 artifactSha256;
        bytes artifactCid;
        uint64 artifactSize;
        bytes32 provenanceSha256;
        bytes provenanceCid;
        bytes32 parent;
        uint256 nonce;
        uint256 deadline;
    }

    /// @notice One attester's verdict on one release (the latest one it gave).
    struct Attestation {
        address attester;
        bool passed;
        bytes32 reportSha256;
        uint64 attestedAt;
    }

    /// @dev Packed: publisher, time, size and the two CID codecs share one slot. A CID digest is
    /// zero when it equals the matching SHA-256 (see the contract notes); zero words are not written.
    struct Record {
        address publisher;
        uint40 publishedAt;
        uint40 artifactSize;
        uint8 artifactCidCodec;
        uint8 provenanceCidCodec;
        bytes32 nameKey;
        bytes32 artifactSha256;
        bytes32 artifactCidDigest;
        bytes32 provenanceSha256;
        bytes32 provenanceCidDigest;
        bytes32 parent;
        bytes32 previousWithSameDigest;
        string version;
    }

    struct Revocation {
        uint64 revokedAt;
        string reason;
    }

    /// @dev `releaseCount` shares the owner's slot: publish reads that slot anyway.
    struct NameInfo {
        address owner;
        uint64 releaseCount;
        address pendingOwner;
        string name;
    }

    /// @dev Storage form of an Attestation: attester, verdict and time packed into one slot
    /// (the ABI struct's field order would spread them over three).
    struct StoredAttestation {
        address attester;
        bool passed;
        uint64 attestedAt;
        bytes32 reportSha256;
    }

    bytes32 public constant RELEASE_TYPEHASH = keccak256(
        "Release(string name,string version,bytes32 artifactSha256,bytes artifactCid,uint64 artifactSize,"
        "bytes32 provenanceSha256,bytes provenanceCid,bytes32 parent,uint256 nonce,uint256 deadline)"
    );

    /// @dev The largest artifact a release may describe (uint40: 1 TiB; ONNX protobufs stop at 2 GiB).
    uint64 public constant MAX_ARTIFACT_SIZE = type(uint40).max;

    mapping(bytes32 nameKey => NameInfo) private _names;
    mapping(bytes32 nameKey => mapping(address account => bool)) private _publishers;
    mapping(bytes32 nameKey => mapping(uint256 index => bytes32 releaseId)) private _releasesOfName;
    mapping(bytes32 sha256Digest => bytes32 newestReleaseId) private _newestOfDigest;
    mapping(bytes32 releaseId => Record) private _records;
    mapping(bytes32 releaseId => Revocation) private _revocations;
    mapping(bytes32 releaseId => StoredAttestation[]) private _attestations;
    mapping(bytes32 releaseId => mapping(address attester => uint256 indexPlusOne)) private _attestationIndex;
    mapping(address attester => bytes32[]) private _attestedBy;

    // ----------------------------------------------------------------------------------------
    // Events
    // ----------------------------------------------------------------------------------------

    /// @notice A name got its first owner.
    event NameClaimed(bytes32 indexed nameKey, string name, address indexed owner);
    /// @notice The owner proposed a new owner; it takes effect when that account accepts.
    event NameTransferProposed(bytes32 indexed nameKey, string name, address indexed from, address indexed to);
    /// @notice Ownership of a name changed hands.
    event NameTransferred(bytes32 indexed nameKey, string name, address indexed from, address indexed to);
    /// @notice An account may now publish releases of the name.
    event PublisherAdded(bytes32 indexed nameKey, string name, address indexed publisher);
    /// @notice An account may no longer publish releases of the name.
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
        bytes32 parent,
        address publisher,
        address submitter
    );
    /// @notice A release was revoked; it stays readable with this reason.
    event ReleaseRevoked(bytes32 indexed releaseId, bytes32 indexed nameKey, address indexed by, string reason);
    /// @notice An attester gave (or replaced) its verdict on a release.
    event ReleaseAttested(bytes32 indexed releaseId, address indexed attester, bool passed, bytes32 reportSha256);

    // ----------------------------------------------------------------------------------------
    // Errors
    // ----------------------------------------------------------------------------------------

    /// @notice The name is not `owner/model` in lower-case `[a-z0-9._-]`, each part 1 to 64 characters
    /// and neither part `.` or `..`.
    error InvalidName(string name);
    /// @notice The version label is empty, longer than 64 bytes or has characters outside SemVer's set.
    error InvalidVersion(string version);
    /// @notice The name already has an owner.
    error NameAlreadyClaimed(string name);
    /// @notice Nobody has claimed the name yet.
    error UnknownName(bytes32 nameKey);
    /// @notice Only the name's owner may do this.
    error NotNameOwner(bytes32 nameKey, address account);
    /// @notice Only the proposed new owner may accept the name.
    error NotPendingOwner(bytes32 nameKey, address account);
    /// @notice The zero address cannot own or publish.
    error ZeroAddress();
    /// @notice The account is already a publisher of the name.
    error AlreadyPublisher(bytes32 nameKey, address account);
    /// @notice The account is not a publisher of the name.
    error NotPublisher(bytes32 nameKey, address account);
    /// @notice The signature does not come from the stated publisher (ECDSA or ERC-1271).
    error InvalidSignature(address publisher);
    /// @notice The release's deadline has passed.
    error ExpiredDeadline(uint256 deadline, uint256 nowTimestamp);
    /// @notice The version label is already taken for this name.
    error DuplicateVersion(bytes32 releaseId);
    /// @notice The CID is not a 36-byte CIDv1 with a one-byte codec and a non-zero sha2-256 multihash.
    error UnsupportedCid(bytes cid);
    /// @notice An artifact digest, provenance digest or size is zero, or the size is too large.
    error InvalidRelease();
    /// @notice No release has this id.
    error UnknownRelease(bytes32 releaseId);
    /// @notice The release is revoked.
    error ReleaseIsRevoked(bytes32 releaseId);
    /// @notice Only the name's owner or the release's publisher may revoke it.
    error NotAuthorisedToRevoke(bytes32 releaseId, address account);
    /// @notice The name has no release that is not revoked.
    error NoActiveRelease(bytes32 nameKey);

    constructor() EIP712("ModelRegistry", "1") {}

    // ----------------------------------------------------------------------------------------
    // Names
    // ----------------------------------------------------------------------------------------

    /// @notice Claims an unclaimed name; the caller becomes its owner and first publisher.
    /// @param name `owner/model` in lower-case `[a-z0-9._-]`.
    /// @return nameKey keccak256 of the name's bytes, the key used everywhere on chain.
    function claimName(string calldata name) external returns (bytes32 nameKey) {
        nameKey = keccak256(bytes(name));
        if (_names[nameKey].owner != address(0)) revert NameAlreadyClaimed(name);
        _claim(nameKey, name, msg.sender);
    }

    /// @notice Lets `account` publish releases of the name. Only the name's owner may call this.
    function addPublisher(string calldata name, address account) external {
        bytes32 nameKey = _onlyNameOwner(name);
        if (account == address(0)) revert ZeroAddress();
        if (_publishers[nameKey][account]) revert AlreadyPublisher(nameKey, account);
        _publishers[nameKey][account] = true;
        emit PublisherAdded(nameKey, name, account);
    }

    /// @notice Stops `account` from publishing new releases of the name; its releases stay valid.
    /// Only the name's owner may call this.
    function removePublisher(string calldata name, address account) external {
        bytes32 nameKey = _onlyNameOwner(name);
        if (!_publishers[nameKey][account]) revert NotPublisher(nameKey, account);
        _publishers[nameKey][account] = false;
        emit PublisherRemoved(nameKey, name, account);
    }

    /// @notice First step of handing a name over: the owner proposes `newOwner`.
    /// @dev Proposing the zero address cancels a pending proposal.
    function proposeNameOwner(string calldata name, address newOwner) external {
        bytes32 nameKey = _onlyNameOwner(name);
        _names[nameKey].pendingOwner = newOwner;
        emit NameTransferProposed(nameKey, name, msg.sender, newOwner);
    }

    /// @notice Second step of handing a name over: the proposed owner accepts and becomes a publisher.
    /// @dev The previous owner keeps publisher rights until the new owner removes them.
    function acceptNameOwner(string calldata name) external {
        bytes32 nameKey = keccak256(bytes(name));
        NameInfo storage info = _names[nameKey];
        if (info.owner == address(0)) revert UnknownName(nameKey);
        if (info.pendingOwner != msg.sender) revert NotPendingOwner(nameKey, msg.sender);
        address previous = info.owner;
        info.owner = msg.sender;
        info.pendingOwner = address(0);
        emit NameTransferred(nameKey, name, previous, msg.sender);
        if (!_publishers[nameKey][msg.sender]) {
            _publishers[nameKey][msg.sender] = true;
            emit PublisherAdded(nameKey, name, msg.sender);
        }
    }

    // ----------------------------------------------------------------------------------------
    // Releases
    // ----------------------------------------------------------------------------------------

    /// @notice Anchors a release signed by `publisher`. Anyone may submit it.
    /// @dev If the name is unclaimed, `publisher` claims it (the first publisher becomes owner).
    /// The signature is checked with ECDSA for accounts and ERC-1271 for contract wallets; the
    /// publisher's sequential nonce and the deadline stop replay, the EIP-712 domain stops replay
    /// on another chain or contract.
    /// @param release The signed fields.
    /// @param publisher The account whose signature this is; must be a publisher of the name.
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
        ) revert InvalidRelease();
        (uint8 artifactCodec, bytes32 artifactDigest) = _splitCid(release.artifactCid);
        (uint8 provenanceCodec, bytes32 provenanceDigest) = _splitCid(release.provenanceCid);
        _checkVersion(release.version);

        bytes32 nameKey = keccak256(bytes(release.name));
        bool unclaimed = _names[nameKey].owner == address(0);
        if (!unclaimed && !_publishers[nameKey][publisher]) revert NotPublisher(nameKey, publisher);

        id = _releaseId(nameKey, keccak256(bytes(release.version)));
        if (_records[id].publisher != address(0)) revert DuplicateVersion(id);
        if (release.parent != bytes32(0)) _requireActive(release.parent);

        if (!SignatureChecker.isValidSignatureNow(publisher, hashRelease(release), signature)) {
            revert InvalidSignature(publisher);
        }
        _useCheckedNonce(publisher, release.nonce);

        if (unclaimed) _claim(nameKey, release.name, publisher);
        Record storage record = _records[id];
        record.publisher = publisher;
        record.publishedAt = uint40(block.timestamp);
        record.artifactSize = uint40(release.artifactSize);
        record.artifactCidCodec = artifactCodec;
        record.provenanceCidCodec = provenanceCodec;
        record.nameKey = nameKey;
        record.artifactSha256 = release.artifactSha256;
        if (artifactDigest != release.artifactSha256) record.artifactCidDigest = artifactDigest;
        record.provenanceSha256 = release.provenanceSha256;
        if (provenanceDigest != release.provenanceSha256) record.provenanceCidDigest = provenanceDigest;
        if (release.parent != bytes32(0)) record.parent = release.parent;
        record.version = release.version;

        NameInfo storage info = _names[nameKey];
        uint64 index = info.releaseCount;
        info.releaseCount = index + 1;
        _releasesOfName[nameKey][index] = id;
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
            release.parent,
            publisher,
            msg.sender
        );
    }

    /// @notice Revokes a release. It stays readable, with the reason and the time.
    /// @dev Allowed for the name's current owner and for the release's publisher.
    function revoke(bytes32 releaseId, string calldata reason) external {
        Record storage record = _requireActive(releaseId);
        bytes32 nameKey = record.nameKey;
        if (msg.sender != record.publisher && msg.sender != _names[nameKey].owner) {
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
    // Views
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
        info = ReleaseInfo({
            id: id,
            name: _names[record.nameKey].name,
            version: record.version,
            artifactSha256: record.artifactSha256,
            artifactCid: _joinCid(record.artifactCidCodec, record.artifactCidDigest, record.artifactSha256),
            artifactSize: record.artifactSize,
            provenanceSha256: record.provenanceSha256,
            provenanceCid: _joinCid(record.provenanceCidCodec, record.provenanceCidDigest, record.provenanceSha256),
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

    /// @notice The newest release of the name that is not revoked.
    function latest(string calldata name) external view returns (ReleaseInfo memory) {
        bytes32 nameKey = keccak256(bytes(name));
        mapping(uint256 => bytes32) storage ids = _releasesOfName[nameKey];
        for (uint256 i = _names[nameKey].releaseCount; i > 0; --i) {
            if (_revocations[ids[i - 1]].revokedAt == 0) return getRelease(ids[i - 1]);
        }
        revert NoActiveRelease(nameKey);
    }

    /// @notice How many releases the name has, revoked ones included.
    function releaseCount(string calldata name) external view returns (uint256) {
        return _names[keccak256(bytes(name))].releaseCount;
    }

    /// @notice Release ids of the name in publish order, `limit` of them from `offset`.
    function releasesOf(string calldata name, uint256 offset, uint256 limit)
        external
        view
        returns (bytes32[] memory)
    {
        bytes32 nameKey = keccak256(bytes(name));
        (uint256 start, uint256 end) = _window(_names[nameKey].releaseCount, offset, limit);
        mapping(uint256 => bytes32) storage ids = _releasesOfName[nameKey];
        bytes32[] memory page = new bytes32[](end - start);
        for (uint256 i = start; i < end; ++i) {
            page[i - start] = ids[i];
        }
        return page;
    }

    /// @notice Release ids whose artifact has this SHA-256, in publish order, paged.
    /// @dev Walks the digest's list (newest first) once to count it and once to fill the page, so
    /// it costs O(releases with this digest): one in the usual case.
    function releasesByDigest(bytes32 artifactSha256, uint256 offset, uint256 limit)
        external
        view
        returns (bytes32[] memory)
    {
        uint256 total = 0;
        for (bytes32 id = _newestOfDigest[artifactSha256]; id != bytes32(0); id = _records[id].previousWithSameDigest) {
            ++total;
        }
        (uint256 start, uint256 end) = _window(total, offset, limit);
        bytes32[] memory page = new bytes32[](end - start);
        // Position `total - 1` is the head; walk back to `end - 1`, then fill the page backwards.
        bytes32 cursor = _newestOfDigest[artifactSha256];
        for (uint256 position = total; position > start; --position) {
            if (position <= end) page[position - 1 - start] = cursor;
            cursor = _records[cursor].previousWithSameDigest;
        }
        return page;
    }

    /// @notice Whether the release exists and is revoked.
    function isRevoked(bytes32 id) external view returns (bool) {
        return _revocations[id].revokedAt != 0;
    }

    /// @notice Whether the release exists and is not revoked.
    function isActive(bytes32 id) external view returns (bool) {
        return _records[id].publisher != address(0) && _revocations[id].revokedAt == 0;
    }

    /// @notice The owner of the name (zero if unclaimed) and the proposed next owner.
    function nameOwner(string calldata name) external view returns (address owner, address pendingOwner) {
        NameInfo storage info = _names[keccak256(bytes(name))];
        return (info.owner, info.pendingOwner);
    }

    /// @notice Whether `account` may publish releases of the name.
    function isPublisher(string calldata name, address account) external view returns (bool) {
        return _publishers[keccak256(bytes(name))][account];
    }

    /// @notice Every attester's latest verdict on the release, in the order attesters first judged it.
    function attestationsOf(bytes32 id) external view returns (Attestation[] memory) {
        StoredAttestation[] storage stored = _attestations[id];
        Attestation[] memory all = new Attestation[](stored.length);
        for (uint256 i = 0; i < all.length; ++i) {
            StoredAttestation storage a = stored[i];
            all[i] = Attestation({
                attester: a.attester, passed: a.passed, reportSha256: a.reportSha256, attestedAt: a.attestedAt
            });
        }
        return all;
    }

    /// @notice Ids of the releases `attester` has given a verdict on, paged.
    function attestedBy(address attester, uint256 offset, uint256 limit)
        external
        view
        returns (bytes32[] memory)
    {
        bytes32[] storage ids = _attestedBy[attester];
        (uint256 start, uint256 end) = _window(ids.length, offset, limit);
        bytes32[] memory page = new bytes32[](end - start);
        for (uint256 i = start; i < end; ++i) {
            page[i - start] = ids[i];
        }
        return page;
    }

    // ----------------------------------------------------------------------------------------
    // Internals
    // ----------------------------------------------------------------------------------------

    function _claim(bytes32 nameKey, string calldata name, address owner) private {
        _checkName(name);
        NameInfo storage info = _names[nameKey];
        info.owner = owner;
        info.name = name;
        _publishers[nameKey][owner] = true;
        emit NameClaimed(nameKey, name, owner);
        emit PublisherAdded(nameKey, name, owner);
    }

    function _onlyNameOwner(string calldata name) private view returns (bytes32 nameKey) {
        nameKey = keccak256(bytes(name));
        address owner = _names[nameKey].owner;
        if (owner == address(0)) revert UnknownName(nameKey);
        if (owner != msg.sender) revert NotNameOwner(nameKey, msg.sender);
    }

    function _requireActive(bytes32 id) private view returns (Record storage record) {
        record = _records[id];
        if (record.publisher == address(0)) revert UnknownRelease(id);
        if (_revocations[id].revokedAt != 0) revert ReleaseIsRevoked(id);
    }

    function _releaseId(bytes32 nameKey, bytes32 versionKey) private pure returns (bytes32) {
        return keccak256(abi.encode(nameKey, versionKey));
    }

    /// @dev `owner/model`, each part 1..64 of [a-z0-9._-].
    function _checkName(string calldata name) private pure {
        bytes calldata b = bytes(name);
        uint256 slash = type(uint256).max;
        for (uint256 i = 0; i < b.length; ++i) {
            bytes1 c = b[i];
            if (c == "/") {
                if (slash != type(uint256).max) revert InvalidName(name);
                slash = i;
            } else if (!((c >= "a" && c <= "z") || (c >= "0" && c <= "9") || c == "." || c == "_" || c == "-")) {
                revert InvalidName(name);
            }
        }
        if (
            slash == type(uint256).max || slash == 0 || slash > 64 || b.length - slash - 1 == 0
                || b.length - slash - 1 > 64 || _isDotPart(b[:slash]) || _isDotPart(b[slash + 1:])
        ) revert InvalidName(name);
    }

    /// @dev `.` and `..` would turn `owner/model` into a path that leaves its directory wherever
    /// a client maps names to files.
    function _isDotPart(bytes calldata part) private pure returns (bool) {
        return (part.length == 1 && part[0] == ".") || (part.length == 2 && part[0] == "." && part[1] == ".");
    }

    /// @dev SemVer's character set ([0-9A-Za-z.+-]), 1..64 bytes. Full SemVer grammar is checked off chain.
    function _checkVersion(string calldata version) private pure {
        bytes calldata b = bytes(version);
        if (b.length == 0 || b.length > 64) revert InvalidVersion(version);
        for (uint256 i = 0; i < b.length; ++i) {
            bytes1 c = b[i];
            if (!((c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9") || c == "." || c == "-"
                    || c == "+")) revert InvalidVersion(version);
        }
    }

    function _splitCid(bytes calldata cid) private pure returns (uint8 codec, bytes32 digest) {
        if (cid.length != 36 || cid[0] != 0x01 || uint8(cid[1]) >= 0x80 || cid[2] != 0x12 || cid[3] != 0x20) {
            revert UnsupportedCid(cid);
        }
        codec = uint8(cid[1]);
        digest = bytes32(cid[4:36]);
        // Zero marks "same as the SHA-256" in storage; no real content hashes to it.
        if (digest == bytes32(0)) revert UnsupportedCid(cid);
    }

    /// @dev Inverse of the storage rule in publish: a zero digest means the content's SHA-256.
    function _joinCid(uint8 codec, bytes32 storedDigest, bytes32 sha256Digest) private pure returns (bytes memory) {
        bytes32 digest = storedDigest == bytes32(0) ? sha256Digest : storedDigest;
        return abi.encodePacked(uint8(0x01), codec, uint8(0x12), uint8(0x20), digest);
    }

    /// @dev The `[start, end)` slice of `total` items that a page at `offset` of `limit` covers.
    function _window(uint256 total, uint256 offset, uint256 limit) private pure returns (uint256 start, uint256 end) {
        if (offset >= total) return (total, total);
        start = offset;
        end = total - offset < limit ? total : offset + limit;
    }
}
