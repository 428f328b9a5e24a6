// Fails the build when the console's JavaScript, gzipped, is over budget
// (issue 21: 300 kB). Prints each file's gzipped size.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";

const budget = 300 * 1000;
const dir = new URL("../dist/console/assets/", import.meta.url).pathname;
let total = 0;
for (const name of readdirSync(dir).filter((n) => n.endsWith(".js")).sort()) {
  const size = gzipSync(readFileSync(join(dir, name)), { level: 9 }).length;
  total += size;
  console.log(`  ${name}: ${(size / 1000).toFixed(1)} kB gzipped`);
}
console.log(`console JavaScript: ${(total / 1000).toFixed(1)} kB gzipped (budget ${budget / 1000} kB)`);
if (total > budget) {
  console.error(`check-bundle: the console's JavaScript is ${(total / 1000).toFixed(1)} kB gzipped, over the ${budget / 1000} kB budget`);
  process.exit(1);
}
