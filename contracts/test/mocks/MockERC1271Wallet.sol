// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC1271} from "@openzeppelin/contracts/interfaces/IERC1271.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

/// @title MockERC1271Wallet
/// @notice A minimal contract wallet for tests: it accepts a hash when its owner key signed it and
/// the wallet is set to accept, and refuses otherwise, so tests can exercise both ERC-1271 answers.
contract MockERC1271Wallet is IERC1271 {
    address public immutable signer;
    bool public accepting = true;

    constructor(address signer_) {
        signer = signer_;
    }

    /// @notice Switches between accepting valid owner signatures and refusing everything.
    function setAccepting(bool accepting_) external {
        accepting = accepting_;
    }

    /// @inheritdoc IERC1271
    function isValidSignature(bytes32 hash, bytes calldata signature) external view returns (bytes4) {
        (address recovered, ECDSA.RecoverError err,) = ECDSA.tryRecover(hash, signature);
        if (accepting && err == ECDSA.RecoverError.NoError && recovered == signer) {
            return IERC1271.isValidSignature.selector;
        }
        return 0xffffffff;
    }
}
