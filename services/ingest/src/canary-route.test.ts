import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { test } from "node:test";

import * as grpc from "@grpc/grpc-js";

import { IngestServiceClient, type CaptureConfig, type WatchConfigResponse } from "@sessiontrack/proto";

import { parseCaptureFile } from "./capture-config.js";
import { auth, startHarness } from "./test-harness.js";

/** The capture-config file as operator/src/capture.ts renders it during a canary. */
function captureText(canary: string | undefined, enabled = true): string {
  const base = `enabled: ${String(enabled)}\nsampleRate: 1\nstage: full\ncohorts: []\n`;
  return canary === undefined ? base : `${base}canary:\n${canary}`;
}

const INDEX_ROUTE =
  "  component: index\n  revision: sst-index-7d9f\n  image: ghcr.io/x/index:2.0\n  weight: 10\n  address: sst-index-canary.prod.svc:7071\n";

test("the canary route is parsed, weight becomes weight_percent, and its absence means no route", () => {
  const file = parseCaptureFile(captureText(INDEX_ROUTE), "capture.yaml");
  assert.deepEqual(file.config.canary, {
    component: "index",
    revision: "sst-index-7d9f",
    weightPercent: 10,
    address: "sst-index-canary.prod.svc:7071",
  });
  assert.equal(parseCaptureFile(captureText(undefined), "capture.yaml").config.canary, undefined);
  const ipv6 = "  component: ingest\n  revision: r2\n  weight: 100\n  address: '[fd00::5]:7070'\n";
  assert.equal(parseCaptureFile(captureText(ipv6), "capture.yaml").config.canary?.weightPercent, 100);
});

test("a bad canary route is left out, with the file and the field named, and the rest of the file still applies", () => {
  const cases: Array<[string, RegExp]> = [
    [
      "  component: search\n  revision: r\n  weight: 5\n  address: a:1\n",
      /canary\.component: must be one of ingest, index, archive/,
    ],
    [
      "  component: index\n  revision: ''\n  weight: 5\n  address: a:1\n",
      /canary\.revision: must not be empty/,
    ],
    [
      "  component: index\n  weight: 5\n  address: a:1\n",
      /canary\.revision: must be the canary's revision name/,
    ],
    [
      "  component: index\n  revision: r\n  weight: 150\n  address: a:1\n",
      /canary\.weight: must be between 0 and 100 \(percent\)/,
    ],
    [
      "  component: index\n  revision: r\n  weight: -1\n  address: a:1\n",
      /canary\.weight: must be between 0 and 100/,
    ],
    [
      "  component: index\n  revision: r\n  weight: ten\n  address: a:1\n",
      /canary\.weight: must be a number/,
    ],
    [
      "  component: index\n  revision: r\n  weight: 5\n  address: sst-index-canary\n",
      /canary\.address: must be host:port of the canary's gRPC Service/,
    ],
    [
      "  component: index\n  revision: r\n  weight: 5\n  address: 'a:0'\n",
      /canary\.address: must be host:port/,
    ],
  ];
  for (const [route, message] of cases) {
    const file = parseCaptureFile(captureText(route, false), "/etc/sessiontrack/capture.yaml");
    assert.equal(file.config.canary, undefined, route);
    assert.equal(file.config.enabled, false, "the kill switch in the same file still applies");
    assert.match(
      file.routeProblem ?? "",
      /^capture config \/etc\/sessiontrack\/capture\.yaml: canary route left out/,
    );
    assert.match(file.routeProblem ?? "", message);
  }
  assert.equal(parseCaptureFile(captureText(INDEX_ROUTE), "c.yaml").routeProblem, undefined);
});

/** A WatchConfig call whose configs can be awaited one by one. */
function watch(address: string, key: string, botId: string) {
  const client = new IngestServiceClient(address, grpc.credentials.createInsecure());
  const call = client.watchConfig({ botId, clientVersion: "test" }, auth(`Bearer ${key}`));
  const received: CaptureConfig[] = [];
  let wake: (() => void) | undefined;
  call.on("data", (response: WatchConfigResponse) => {
    received.push(response.config!);
    wake?.();
  });
  call.on("error", () => undefined);
  return {
    received,
    /** The config number `index` (0 = the initial one), waiting up to 2 s for it. */
    async nth(index: number): Promise<CaptureConfig> {
      const deadline = Date.now() + 2_000;
      while (received.length <= index) {
        const left = deadline - Date.now();
        if (left <= 0) assert.fail(`config #${index} did not arrive within 2 s (got ${received.length})`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
      return received[index]!;
    },
    close(): void {
      call.cancel();
      client.close();
    },
  };
}

test("WatchConfig sends the route to every watcher, drops only a bad route (the kill switch beside it applies), and drops it on rollback", async (t) => {
  const h = await startHarness(t);
  const watchers = [
    watch(h.server.address, h.readKey, "support-bot"),
    watch(h.server.address, h.ingestKey, "sales-bot"),
  ];
  t.after(() => watchers.forEach((watcher) => watcher.close()));
  for (const watcher of watchers) assert.equal((await watcher.nth(0)).canary, undefined);

  writeFileSync(h.captureConfigFile, captureText(INDEX_ROUTE));
  for (const watcher of watchers) {
    assert.deepEqual((await watcher.nth(1)).canary, {
      component: "index",
      revision: "sst-index-7d9f",
      weightPercent: 10,
      address: "sst-index-canary.prod.svc:7071",
    });
  }

  // A bad route next to the kill switch: the switch applies, the route is left out.
  writeFileSync(
    h.captureConfigFile,
    captureText("  component: index\n  revision: sst-index-7d9f\n  weight: 400\n  address: x:1\n", false),
  );
  for (const watcher of watchers) {
    const killed = await watcher.nth(2);
    assert.equal(killed.enabled, false, "the kill switch is not held back by a bad route");
    assert.equal(killed.canary, undefined);
  }

  // Rollback or promotion: the operator publishes the file without the route.
  writeFileSync(h.captureConfigFile, captureText(INDEX_ROUTE));
  for (const watcher of watchers) assert.equal((await watcher.nth(3)).canary?.component, "index");
  writeFileSync(h.captureConfigFile, captureText(undefined));
  for (const watcher of watchers) {
    const after = await watcher.nth(4);
    assert.equal(after.canary, undefined);
    assert.equal(after.enabled, true);
  }
});
