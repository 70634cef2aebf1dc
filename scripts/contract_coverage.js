// After `hardhat coverage`: one line per contract (lines, branches) from coverage/coverage-summary.json,
// and exit 1 when a contract's branch coverage is below the threshold given as the first argument.
const fs = require("fs");
const path = require("path");

const threshold = Number(process.argv[2] ?? 95);
const summary = JSON.parse(fs.readFileSync(path.join(__dirname, "..", "coverage", "coverage-summary.json"), "utf8"));
let failed = false;
for (const [file, figures] of Object.entries(summary)) {
  if (file === "total") continue;
  const { lines, branches } = figures;
  const low = branches.pct < threshold;
  failed ||= low;
  console.log(
    `${path.basename(file).padEnd(20)} lines ${lines.covered}/${lines.total} (${lines.pct}%)  ` +
      `branches ${branches.covered}/${branches.total} (${branches.pct}%)${low ? `  BELOW ${threshold}%` : ""}`
  );
}
process.exit(failed ? 1 : 0);
