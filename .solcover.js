// solidity-coverage settings (see hardhat.coverage.config.js). The contracts compile with viaIR;
// instrumented code is compiled with the minimum IR optimizer settings so it stays within stack limits.
module.exports = {
  skipFiles: ["interfaces/", "test/"],
  configureYulOptimizer: true,
  istanbulReporter: ["text", "json-summary", "html"],
};
