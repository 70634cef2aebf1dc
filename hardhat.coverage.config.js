// `make coverage-contracts` only: the project's Hardhat config (solcjs from node_modules, no compiler
// download) plus solidity-coverage's `coverage` task. Kept apart so `npx hardhat test` is unchanged,
// and the instrumented build goes to its own folders so it never replaces the real artifacts.
require("solidity-coverage");
const base = require("./hardhat.config.js");

module.exports = {
  ...base,
  paths: { ...base.paths, cache: "build/coverage-cache", artifacts: "build/coverage-artifacts" },
};
