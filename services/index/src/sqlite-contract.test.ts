import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { createLogger } from "@sessiontrack/runtime";

import { backendContract } from "./backend-contract.js";
import { SqliteIndexBackend } from "./sqlite-backend.js";

backendContract("SQLite FTS5", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sessiontrack-index-sqlite-"));
  const backend = await SqliteIndexBackend.open({
    dataDir: dir,
    logger: createLogger({ name: "index-test", level: "silent" }),
  });
  return Object.assign(backend, {
    destroy: async () => {
      await backend.close();
      rmSync(dir, { recursive: true, force: true });
    },
  });
});
