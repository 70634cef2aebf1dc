// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title AggregatorV3Interface
/// @notice The read interface of a Chainlink price feed, declared here with the same signatures so
/// that existing DeFi consumers can read a PredictionFeed unchanged (no dependency on Chainlink's package).
interface AggregatorV3Interface {
    function decimals() external view returns (uint8);

    function description() external view returns (string memory);

    function version() external view returns (uint256);

    function getRoundData(uint80 roundId)
        external
        view
        returns (uint80 roundId_, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound);

    function latestRoundData()
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound);
}
