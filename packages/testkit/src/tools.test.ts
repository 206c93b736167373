import assert from "node:assert/strict";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { ToolMissingError, toolPath, toolsCacheDir } from "./tools.js";

test("toolPath: finds a built tool under $SESSIONTRACK_TOOLS_CACHE/bin", (t) => {
  const cache = mkdtempSync(join(tmpdir(), "testkit-tools-"));
  t.after(() => rmSync(cache, { recursive: true, force: true }));
  mkdirSync(join(cache, "bin"));
  writeFileSync(join(cache, "bin", "etcd"), "#!/bin/sh\n");
  chmodSync(join(cache, "bin", "etcd"), 0o755);

  assert.equal(toolsCacheDir({ SESSIONTRACK_TOOLS_CACHE: cache }), cache);
  assert.equal(toolPath("etcd", { SESSIONTRACK_TOOLS_CACHE: cache }), join(cache, "bin", "etcd"));
});

test("toolPath: a missing tool throws an error naming it and `make tools`", (t) => {
  const cache = mkdtempSync(join(tmpdir(), "testkit-tools-"));
  t.after(() => rmSync(cache, { recursive: true, force: true }));

  assert.throws(
    () => toolPath("kube-apiserver", { SESSIONTRACK_TOOLS_CACHE: cache }),
    (error: unknown) =>
      error instanceof ToolMissingError &&
      error.tool === "kube-apiserver" &&
      error.message.includes("kube-apiserver") &&
      error.message.includes("make tools") &&
      error.message.includes(join(cache, "bin", "kube-apiserver")),
  );
});

test("toolPath: defaults to ~/.cache/sessiontrack/tools", () => {
  assert.match(toolsCacheDir({ HOME: "/home/x" }), /\.cache\/sessiontrack\/tools$/);
});
