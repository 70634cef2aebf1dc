// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AggregatorV3Interface} from "../../interfaces/AggregatorV3Interface.sol";

/// @title FeedConsumer
/// @notice A DeFi-style consumer written against Chainlink's AggregatorV3Interface only, the way
/// lending protocols read prices: it knows nothing about PredictionFeed, which shows the feed can be
/// dropped in unchanged. Rejects stale or non-positive answers like a careful consumer would.
contract FeedConsumer {
    AggregatorV3Interface public immutable feed;
    uint256 public immutable maxAge;

    int256 public lastAnswer;
    uint80 public lastRound;

    error StaleAnswer(uint256 updatedAt, uint256 nowTimestamp);
    error BadAnswer(int256 answer);
    error IncompleteRound(uint80 roundId, uint80 answeredInRound);

    event Consumed(uint80 roundId, int256 answer, uint8 decimals);

    constructor(AggregatorV3Interface feed_, uint256 maxAge_) {
        feed = feed_;
        maxAge = maxAge_;
    }

    /// @notice The feed's latest answer, checked for freshness and completeness.
    function read() public view returns (uint80 roundId, int256 answer, uint8 decimals) {
        uint256 updatedAt;
        uint80 answeredInRound;
        (roundId, answer,, updatedAt, answeredInRound) = feed.latestRoundData();
        if (answer <= 0) revert BadAnswer(answer);
        if (answeredInRound < roundId) revert IncompleteRound(roundId, answeredInRound);
        if (block.timestamp - updatedAt > maxAge) revert StaleAnswer(updatedAt, block.timestamp);
        decimals = feed.decimals();
    }

    /// @notice Reads and records the latest answer (a state change, as a protocol action would).
    function consume() external returns (int256 answer) {
        uint80 roundId;
        uint8 dec;
        (roundId, answer, dec) = read();
        lastAnswer = answer;
        lastRound = roundId;
        emit Consumed(roundId, answer, dec);
    }
}
