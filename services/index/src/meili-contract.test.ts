// The backend contract against a REAL Meilisearch. It runs only when MEILI_URL (and,
// for a secured instance, MEILI_MASTER_KEY) is set; Meilisearch cannot be installed on
// the development machine, so there this file reports one skipped test saying so. The
// adapter's requests and failure handling are covered without a server by
// meili-adapter.test.ts (recorded responses).
import { randomBytes } from "node:crypto";
import { test } from "node:test";

import { createLogger } from "@sessiontrack/runtime";

import { backendContract } from "./backend-contract.js";
import { MeilisearchIndexBackend } from "./meili-backend.js";

const url = process.env["MEILI_URL"];
const apiKey = process.env["MEILI_MASTER_KEY"];

if (url === undefined || url === "") {
  test("IndexBackend contract: Meilisearch (real server)", {
    skip: "MEILI_URL is not set: no real Meilisearch to run the contract against (see README.md)",
  });
} else {
  backendContract(`Meilisearch at ${url}`, async () => {
    const backend = await MeilisearchIndexBackend.open({
      url,
      apiKey,
      indexUid: `sessiontrack_test_${randomBytes(6).toString("hex")}`,
      batchDocuments: 5000,
      taskTimeoutMs: 30_000,
      taskPruneIntervalMs: 3_600_000,
      taskRetentionMs: 0,
      logger: createLogger({ name: "meili-contract", level: "silent" }),
    });
    return Object.assign(backend, { destroy: () => backend.deleteIndex() });
  });
}
