#!/usr/bin/env node
// Runs the compiled node:test files (dist/**/*.test.js) under the given project roots.
// Node 20's `--test` takes no globs, so we find the files ourselves.
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

const roots = process.argv.slice(2);
if (roots.length === 0) {
  console.error("usage: run-tests.mjs DIR [DIR...]  (each DIR's dist/ is searched for *.test.js)");
  process.exit(2);
}

function findTests(dir, out) {
  let entries;
  try {
    entries = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of entries) {
    if (name === "node_modules") continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) findTests(path, out);
    else if (name.endsWith(".test.js")) out.push(path);
  }
}

const files = [];
for (const root of roots) findTests(join(root, "dist"), files);
files.sort();
if (files.length === 0) {
  console.error(`no compiled tests under ${roots.join(", ")}: run \`make build\` first`);
  process.exit(1);
}
const result = spawnSync(process.execPath, ["--test", "--test-reporter=spec", ...files], {
  stdio: "inherit",
});
process.exit(result.status ?? 1);
