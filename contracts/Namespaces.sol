// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Namespaces
/// @notice The `namespace` part of `namespace/model` names: bound to one account, claimed by
/// commit-reveal so that a mempool watcher cannot take it first, and handed over in two steps.
/// @dev Claiming takes two transactions. First `commitNamespace(makeCommitment(namespace, claimant,
/// salt))`: the commitment hides the namespace and binds the claimant. Then, in a later block and
/// within MAX_COMMITMENT_AGE, the claimant calls `claimNamespace(namespace, salt)`. A watcher that
/// sees the reveal cannot use it (the commitment names the original sender), and a commitment of its
/// own made after seeing the reveal cannot be revealed in the same block. An unexpired commitment
/// cannot be overwritten, so nobody can keep someone else's commitment "too new".
abstract contract Namespaces {
    struct Namespace {
        address owner;
        address pendingOwner;
    }

    /// @dev When a commitment was made: the block (the reveal must come in a later one) and the time
    /// (it expires after MAX_COMMITMENT_AGE).
    struct Commitment {
        uint64 blockNumber;
        uint64 timestamp;
    }

    /// @notice How long a namespace commitment stays usable.
    uint256 public constant MAX_COMMITMENT_AGE = 1 days;

    mapping(bytes32 namespaceKey => Namespace) private _namespaces;
    mapping(bytes32 commitment => Commitment) private _commitments;

    /// @notice Someone committed to claiming a namespace (which one stays hidden until the reveal).
    event NamespaceCommitted(bytes32 indexed commitment, address indexed committer);
    /// @notice A namespace got its first owner.
    event NamespaceClaimed(bytes32 indexed namespaceKey, string namespace, address indexed owner);
    /// @notice The owner proposed a new owner (zero: proposal cancelled); it takes effect on accept.
    event NamespaceTransferProposed(
        bytes32 indexed namespaceKey, string namespace, address indexed from, address indexed to
    );
    /// @notice Ownership of a namespace changed hands.
    event NamespaceTransferred(bytes32 indexed namespaceKey, string namespace, address indexed from, address indexed to);

    /// @notice The name is not `namespace/model`, each part 1 to 64 of lower-case `[a-z0-9._-]` and
    /// neither part `.` or `..`.
    error InvalidName(string name);
    /// @notice The namespace is not 1 to 64 of lower-case `[a-z0-9._-]`, or is `.` or `..`.
    error InvalidNamespace(string namespace);
    /// @notice The commitment was already made and has not expired.
    error CommitmentExists(bytes32 commitment);
    /// @notice No commitment matches this namespace, sender and salt.
    error UnknownCommitment(bytes32 commitment);
    /// @notice The commitment was made in this block; reveal it in a later one.
    error CommitmentTooNew(bytes32 commitment);
    /// @notice The commitment is older than MAX_COMMITMENT_AGE.
    error CommitmentExpired(bytes32 commitment);
    /// @notice The namespace already has an owner.
    error NamespaceAlreadyClaimed(string namespace);
    /// @notice Nobody has claimed the namespace yet.
    error UnknownNamespace(bytes32 namespaceKey);
    /// @notice Only the namespace's owner may do this.
    error NotNamespaceOwner(bytes32 namespaceKey, address account);
    /// @notice Only the proposed new owner may accept the namespace.
    error NotPendingOwner(bytes32 namespaceKey, address account);

    /// @notice The commitment that `claimant` makes before claiming `namespace` with `salt`:
    /// keccak256(abi.encode(keccak256(bytes(namespace)), claimant, salt)).
    function makeCommitment(string calldata namespace, address claimant, bytes32 salt)
        external
        pure
        returns (bytes32)
    {
        return _commitment(keccak256(bytes(namespace)), claimant, salt);
    }

    /// @notice First step of claiming a namespace: records `commitment` (see `makeCommitment`).
    function commitNamespace(bytes32 commitment) external {
        Commitment storage c = _commitments[commitment];
        if (c.timestamp != 0 && block.timestamp <= c.timestamp + MAX_COMMITMENT_AGE) {
            revert CommitmentExists(commitment);
        }
        c.blockNumber = uint64(block.number);
        c.timestamp = uint64(block.timestamp);
        emit NamespaceCommitted(commitment, msg.sender);
    }

    /// @notice Second step: reveals the namespace and salt of the caller's commitment, made at least
    /// one block earlier and at most MAX_COMMITMENT_AGE ago; the caller becomes the owner.
    /// @return namespaceKey keccak256 of the namespace's bytes.
    function claimNamespace(string calldata namespace, bytes32 salt) external returns (bytes32 namespaceKey) {
        if (!_isPart(bytes(namespace))) revert InvalidNamespace(namespace);
        namespaceKey = keccak256(bytes(namespace));
        bytes32 commitment = _commitment(namespaceKey, msg.sender, salt);
        Commitment memory c = _commitments[commitment];
        if (c.timestamp == 0) revert UnknownCommitment(commitment);
        if (c.blockNumber >= block.number) revert CommitmentTooNew(commitment);
        if (block.timestamp > c.timestamp + MAX_COMMITMENT_AGE) revert CommitmentExpired(commitment);
        Namespace storage ns = _namespaces[namespaceKey];
        if (ns.owner != address(0)) revert NamespaceAlreadyClaimed(namespace);
        delete _commitments[commitment];
        ns.owner = msg.sender;
        emit NamespaceClaimed(namespaceKey, namespace, msg.sender);
    }

    /// @notice First step of handing a namespace over: the owner proposes `newOwner`.
    /// @dev Proposing the zero address cancels a pending proposal.
    function proposeNamespaceOwner(string calldata namespace, address newOwner) external {
        bytes32 namespaceKey = keccak256(bytes(namespace));
        _onlyNamespaceOwner(namespaceKey);
        _namespaces[namespaceKey].pendingOwner = newOwner;
        emit NamespaceTransferProposed(namespaceKey, namespace, msg.sender, newOwner);
    }

    /// @notice Second step: the proposed owner accepts. Releases the previous owner signed stop
    /// counting unless the new owner adds it as a publisher of their names (which makes a transfer
    /// the way to rotate a compromised owner key).
    function acceptNamespaceOwner(string calldata namespace) external {
        bytes32 namespaceKey = keccak256(bytes(namespace));
        Namespace storage ns = _namespaces[namespaceKey];
        if (ns.owner == address(0)) revert UnknownNamespace(namespaceKey);
        if (ns.pendingOwner != msg.sender) revert NotPendingOwner(namespaceKey, msg.sender);
        address previous = ns.owner;
        ns.owner = msg.sender;
        ns.pendingOwner = address(0);
        emit NamespaceTransferred(namespaceKey, namespace, previous, msg.sender);
    }

    /// @notice The owner of the namespace (zero if unclaimed) and the proposed next owner.
    function namespaceOwner(string calldata namespace) external view returns (address owner, address pendingOwner) {
        Namespace storage ns = _namespaces[keccak256(bytes(namespace))];
        return (ns.owner, ns.pendingOwner);
    }

    // ----------------------------------------------------------------------------------------
    // For the registry
    // ----------------------------------------------------------------------------------------

    function _namespaceOwnerOf(bytes32 namespaceKey) internal view returns (address) {
        return _namespaces[namespaceKey].owner;
    }

    function _onlyNamespaceOwner(bytes32 namespaceKey) internal view {
        address owner = _namespaces[namespaceKey].owner;
        if (owner == address(0)) revert UnknownNamespace(namespaceKey);
        if (owner != msg.sender) revert NotNamespaceOwner(namespaceKey, msg.sender);
    }

    /// @dev The namespace key of a valid `namespace/model` name; reverts with InvalidName otherwise.
    function _namespaceKeyOf(string calldata name) internal pure returns (bytes32 namespaceKey) {
        bool ok;
        (ok, namespaceKey) = _tryNamespaceKeyOf(bytes(name));
        if (!ok) revert InvalidName(name);
    }

    /// @dev `namespace/model`: exactly one slash, both parts valid (`_isPart`).
    function _tryNamespaceKeyOf(bytes calldata b) internal pure returns (bool ok, bytes32 namespaceKey) {
        uint256 length = b.length;
        if (length > 129) return (false, 0);
        uint256 slash = length;
        for (uint256 i = 0; i < length; ++i) {
            if (b[i] == "/") {
                if (slash != length) return (false, 0);
                slash = i;
            }
        }
        if (slash == length || !_isPart(b[:slash]) || !_isPart(b[slash + 1:])) return (false, 0);
        return (true, keccak256(b[:slash]));
    }

    function _commitment(bytes32 namespaceKey, address claimant, bytes32 salt) private pure returns (bytes32) {
        return keccak256(abi.encode(namespaceKey, claimant, salt));
    }

    /// @dev 1..64 of [a-z0-9._-], not `.` or `..` (those would turn a name into a path that leaves
    /// its directory wherever a client maps names to files).
    function _isPart(bytes calldata part) private pure returns (bool) {
        uint256 length = part.length;
        if (length == 0 || length > 64) return false;
        for (uint256 i = 0; i < length; ++i) {
            bytes1 c = part[i];
            if (!((c >= "a" && c <= "z") || (c >= "0" && c <= "9") || c == "." || c == "_" || c == "-")) {
                return false;
            }
        }
        return !((length == 1 && part[0] == ".") || (length == 2 && part[0] == "." && part[1] == "."));
    }
}
