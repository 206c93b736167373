import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { PassThrough } from "node:stream";
import { test } from "node:test";

import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { protoPath as healthProtoPath } from "grpc-health-check";
import { Counter, Registry } from "prom-client";
import { z } from "zod";

import { ConfigError, InvalidEventError, StorageFullError, UnauthenticatedError } from "@sessiontrack/errors";
import { IngestServiceService } from "@sessiontrack/proto";

import { parseConfig, parseHostPort } from "./config.js";
import { toGrpcError } from "./grpc-errors.js";
import { startGrpcServer } from "./grpc-server.js";
import { createLogger } from "./logger.js";
import { startMetricsServer } from "./metrics-server.js";
import { PROTO_DIR, sessionTrackProtoFiles } from "./protos.js";

const silent = createLogger({ name: "test", level: "silent" });

test("parseHostPort accepts host:port and [v6]:port and names the setting on bad input", () => {
  assert.deepEqual(parseHostPort("127.0.0.1:7070", "--listen"), { host: "127.0.0.1", port: 7070 });
  assert.deepEqual(parseHostPort("[::1]:0", "--listen"), { host: "::1", port: 0 });
  assert.deepEqual(parseHostPort("localhost:9464", "--metrics-listen"), { host: "localhost", port: 9464 });
  for (const bad of ["7070", "host:", ":80", "host:99999", "a b:1", "host:port"]) {
    assert.throws(
      () => parseHostPort(bad, "--listen"),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.match(error.message, /^--listen: ".*" is not HOST:PORT/);
        return true;
      },
    );
  }
});

test("parseConfig freezes the result and lists every bad setting by name", () => {
  const schema = z.object({ dataDir: z.string().min(1), maxBatchEvents: z.number().int().positive() });
  const config = parseConfig(schema, { dataDir: "/data", maxBatchEvents: 10 }, "ingest settings");
  assert.ok(Object.isFrozen(config));
  assert.throws(
    () => parseConfig(schema, { dataDir: "", maxBatchEvents: -1 }, "ingest settings"),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /invalid ingest settings/);
      assert.match(error.message, /dataDir:/);
      assert.match(error.message, /maxBatchEvents:/);
      return true;
    },
  );
});

test("createLogger writes JSON lines, redacts secrets, rejects unknown levels", async () => {
  const sink = new PassThrough();
  const lines: string[] = [];
  sink.on("data", (chunk: Buffer) => lines.push(...chunk.toString().trim().split("\n")));
  const logger = createLogger({ name: "unit", level: "info", destination: sink });
  logger.info({ authorization: "Bearer st_secret", request: { apiKey: "st_other" } }, "hello");
  await new Promise((resolve) => setImmediate(resolve));
  const line = JSON.parse(lines[0] ?? "{}") as Record<string, unknown>;
  assert.equal(line["msg"], "hello");
  assert.equal(line["name"], "unit");
  assert.equal(line["authorization"], "[redacted]");
  assert.deepEqual(line["request"], { apiKey: "[redacted]" });
  assert.throws(() => createLogger({ name: "x", level: "loud" }), ConfigError);
});

test("toGrpcError maps domain errors to their status and hides unknown errors behind a reference", () => {
  const cases = [
    {
      error: new InvalidEventError("bad seq", { eventIndex: 2, field: "seq" }),
      code: grpc.status.INVALID_ARGUMENT,
    },
    { error: new UnauthenticatedError("missing key"), code: grpc.status.UNAUTHENTICATED },
    { error: new StorageFullError("disk full"), code: grpc.status.RESOURCE_EXHAUSTED },
  ];
  for (const { error, code } of cases) {
    const wire = toGrpcError(error, silent);
    assert.equal(wire.code, code);
    assert.equal(wire.details, error.message);
  }
  assert.equal(
    toGrpcError(new InvalidEventError("bad seq", { eventIndex: 2, field: "seq" }), silent).details,
    "events[2].seq: bad seq",
  );
  const hidden = toGrpcError(new TypeError("secret internals at /srv/app.js:12"), silent);
  assert.equal(hidden.code, grpc.status.INTERNAL);
  assert.match(hidden.details, /^internal error \(ref [0-9a-f]{12}\)$/);
  assert.doesNotMatch(hidden.details, /secret|app\.js/);
});

test("metrics server serves /metrics, /healthz and /readyz on its own port", async (t) => {
  const registry = new Registry();
  new Counter({ name: "sessiontrack_test_total", help: "a test counter", registers: [registry] }).inc(3);
  let ready = false;
  const server = await startMetricsServer({
    host: "127.0.0.1",
    port: 0,
    registry,
    isReady: () => ready,
    logger: silent,
  });
  t.after(() => server.close());
  const get = async (path: string): Promise<{ status: number; body: string }> => {
    const response = await fetch(`http://${server.address}${path}`);
    return { status: response.status, body: await response.text() };
  };
  const metrics = await get("/metrics");
  assert.equal(metrics.status, 200);
  assert.match(metrics.body, /sessiontrack_test_total 3/);
  assert.equal((await get("/healthz")).status, 200);
  assert.equal((await get("/readyz")).status, 503);
  ready = true;
  assert.equal((await get("/readyz")).status, 200);
  assert.equal((await get("/nope")).status, 404);
});

test("gRPC server answers health checks and lists its services through reflection", async (t) => {
  const unimplemented = (_call: unknown, callback: (error: grpc.ServiceError) => void): void =>
    callback({
      code: grpc.status.UNIMPLEMENTED,
      details: "test",
      metadata: new grpc.Metadata(),
    } as grpc.ServiceError);
  const running = await startGrpcServer({
    host: "127.0.0.1",
    port: 0,
    logger: silent,
    services: [
      {
        name: "sessiontrack.v1.IngestService",
        definition: IngestServiceService,
        implementation: { append: unimplemented, stream: unimplemented, watchConfig: unimplemented },
      },
    ],
    reflection: { protoFiles: sessionTrackProtoFiles(), includeDirs: [PROTO_DIR] },
  });
  t.after(() => running.shutdown(1_000));

  const healthPackage = grpc.loadPackageDefinition(
    protoLoader.loadSync(healthProtoPath, { enums: String }),
  ) as unknown as {
    grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
  };
  const health = new healthPackage.grpc.health.v1.Health(running.address, grpc.credentials.createInsecure());
  t.after(() => health.close());
  const check = (service: string): Promise<string> =>
    new Promise((resolve, reject) => {
      (
        health as unknown as {
          check: (req: object, cb: (e: Error | null, r?: { status: string }) => void) => void;
        }
      ).check({ service }, (error, response) =>
        error === null ? resolve(response?.status ?? "") : reject(error),
      );
    });
  assert.equal(await check(""), "SERVING");
  assert.equal(await check("sessiontrack.v1.IngestService"), "SERVING");

  const reflectionProto = join(
    dirname(createRequire(import.meta.url).resolve("@grpc/reflection")),
    "../proto/grpc/reflection/v1/reflection.proto",
  );
  const reflectionPackage = grpc.loadPackageDefinition(
    protoLoader.loadSync(reflectionProto, { keepCase: true }),
  ) as unknown as {
    grpc: { reflection: { v1: { ServerReflection: grpc.ServiceClientConstructor } } };
  };
  const reflection = new reflectionPackage.grpc.reflection.v1.ServerReflection(
    running.address,
    grpc.credentials.createInsecure(),
  );
  t.after(() => reflection.close());
  const services = await new Promise<string[]>((resolve, reject) => {
    const call = (
      reflection as unknown as {
        ServerReflectionInfo: () => grpc.ClientDuplexStream<
          object,
          { list_services_response?: { service: { name: string }[] } }
        >;
      }
    ).ServerReflectionInfo();
    call.on("data", (response: { list_services_response?: { service: { name: string }[] } }) => {
      resolve((response.list_services_response?.service ?? []).map((service) => service.name));
      call.end();
    });
    call.on("error", reject);
    call.write({ list_services: "" });
  });
  assert.ok(services.includes("sessiontrack.v1.IngestService"), services.join(","));
  assert.ok(services.includes("grpc.health.v1.Health"), services.join(","));
});
