import { createHash } from "node:crypto";

import type { KubeObject, OwnerReference } from "./k8s/index.js";
import type { Component, SessionStoreSpec } from "./spec.js";

/** Annotation holding the hash of the manifest the operator last applied to an object. */
export const APPLIED_HASH_ANNOTATION = "sessiontrack.io/applied-hash";
/** Pod-template annotation: hash of the rendered template, so identical renders never restart pods. */
export const TEMPLATE_HASH_ANNOTATION = "sessiontrack.io/template-hash";
export const MANAGED_BY = "sessiontrack-operator";
/** Where ingest finds the capture config the operator publishes. */
export const CAPTURE_FILE_KEY = "capture.yaml";
const CAPTURE_MOUNT = "/etc/sessiontrack/capture";
/** The pod's own annotations (downward API): ingest reads the operator's drain request there. */
const PODINFO_MOUNT = "/etc/sessiontrack/podinfo";

export const PORTS = {
  ingest: { grpc: 7070, metrics: 9464 },
  index: { grpc: 7071, metrics: 9465 },
  archive: { grpc: 7072, metrics: 9466 },
} as const;

/** Names of everything a SessionStore owns. */
export const objectNames = (name: string) => ({
  ingest: `${name}-ingest`,
  index: `${name}-index`,
  archive: `${name}-archive`,
  canary: (component: Component) => `${name}-${component}-canary`,
  meilisearch: `${name}-meilisearch`,
  s3: `${name}-s3`,
  encryptionKeys: `${name}-encryption-keys`,
  serviceKey: `${name}-service-key`,
  serviceTenants: `${name}-service-tenants`,
  capture: `${name}-capture`,
});

/** Stable, sorted-key JSON, so equal manifests hash equally. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

export const shortHash = (value: unknown, length = 16): string =>
  createHash("sha256").update(canonicalJson(value)).digest("hex").slice(0, length);

/** What every rendered object needs from its SessionStore. */
export interface RenderContext {
  name: string;
  namespace: string;
  owner: OwnerReference;
  spec: SessionStoreSpec;
}

export function labels(name: string, component: string, track?: "stable" | "canary"): Record<string, string> {
  return {
    "app.kubernetes.io/name": "sessiontrack",
    "app.kubernetes.io/instance": name,
    "app.kubernetes.io/component": component,
    "app.kubernetes.io/managed-by": MANAGED_BY,
    ...(track === undefined ? {} : { "sessiontrack.io/track": track }),
  };
}

function metadata(ctx: RenderContext, name: string, component: string, track?: "stable" | "canary") {
  return {
    name,
    namespace: ctx.namespace,
    labels: labels(ctx.name, component, track),
    ownerReferences: [ctx.owner],
  };
}

/** Stamps the applied-hash annotation (hash of everything else) on a rendered object. */
export function withAppliedHash(object: KubeObject): KubeObject {
  const hash = shortHash(object);
  return {
    ...object,
    metadata: {
      ...object.metadata,
      annotations: { ...object.metadata.annotations, [APPLIED_HASH_ANNOTATION]: hash },
    },
  };
}

function podTemplate(podLabels: Record<string, string>, podSpec: Record<string, unknown>) {
  const template = { metadata: { labels: podLabels }, spec: podSpec };
  return {
    metadata: { labels: podLabels, annotations: { [TEMPLATE_HASH_ANNOTATION]: shortHash(template) } },
    spec: podSpec,
  };
}

// The user's tenants file plus the operator's shipper key (see service-wiring.ts).
const tenantsVolume = (ctx: RenderContext) => ({
  name: "tenants",
  secret: { secretName: objectNames(ctx.name).serviceTenants },
});
const tenantsMount = { name: "tenants", mountPath: "/etc/sessiontrack/tenants", readOnly: true };
const probes = (metricsPort: number) => ({
  readinessProbe: { httpGet: { path: "/readyz", port: metricsPort }, periodSeconds: 5 },
  livenessProbe: { httpGet: { path: "/healthz", port: metricsPort }, periodSeconds: 10, failureThreshold: 6 },
});

/**
 * The ingest StatefulSet (stable or canary): one WAL PVC per replica. A replica drains when
 * its pod is annotated sessiontrack.io/drain (read through the downward API; see
 * ingest-drain.ts), and on SIGTERM before exit.
 */
export function renderIngest(
  ctx: RenderContext,
  track: "stable" | "canary",
  image: string,
  replicas: number,
): KubeObject {
  const names = objectNames(ctx.name);
  const { ingest } = ctx.spec;
  const podLabels = labels(ctx.name, "ingest", track);
  const drainMs = ingest.drainTimeoutSeconds * 1000;
  const podSpec = {
    // Enough time for the drain (stop intake, ship every acknowledged record) plus the preStop pause.
    terminationGracePeriodSeconds: ingest.drainTimeoutSeconds + 15,
    containers: [
      {
        name: "ingest",
        image,
        args: [
          "ingest",
          "serve",
          `--listen=0.0.0.0:${PORTS.ingest.grpc}`,
          `--metrics-listen=0.0.0.0:${PORTS.ingest.metrics}`,
          "--data-dir=/var/lib/sessiontrack/wal",
          "--tenants=/etc/sessiontrack/tenants/tenants.yaml",
          `--capture-config=${CAPTURE_MOUNT}/${CAPTURE_FILE_KEY}`,
          `--shutdown-grace-ms=${drainMs}`,
          `--index-url=${names.index}:${PORTS.index.grpc}`,
          `--archive-url=${names.archive}:${PORTS.archive.grpc}`,
          "--service-key-file=/etc/sessiontrack/service-key/key",
        ],
        // `--drain-file` in its environment form; kept so an operator upgrade does not restart every ingest pod.
        env: [{ name: "SESSIONTRACK_DRAIN_FILE", value: `${PODINFO_MOUNT}/annotations` }],
        ports: [
          { name: "grpc", containerPort: PORTS.ingest.grpc },
          { name: "metrics", containerPort: PORTS.ingest.metrics },
        ],
        resources: ingest.resources,
        ...probes(PORTS.ingest.metrics),
        // Let endpoints drop the pod before SIGTERM starts the drain.
        lifecycle: { preStop: { sleep: { seconds: 5 } } },
        volumeMounts: [
          { name: "wal", mountPath: "/var/lib/sessiontrack/wal" },
          { name: "capture", mountPath: CAPTURE_MOUNT, readOnly: true },
          { name: "service-key", mountPath: "/etc/sessiontrack/service-key", readOnly: true },
          { name: "podinfo", mountPath: PODINFO_MOUNT, readOnly: true },
          tenantsMount,
        ],
      },
    ],
    volumes: [
      { name: "capture", configMap: { name: names.capture } },
      { name: "service-key", secret: { secretName: names.serviceKey } },
      {
        name: "podinfo",
        downwardAPI: { items: [{ path: "annotations", fieldRef: { fieldPath: "metadata.annotations" } }] },
      },
      tenantsVolume(ctx),
    ],
  };
  const name = track === "stable" ? names.ingest : names.canary("ingest");
  return {
    apiVersion: "apps/v1",
    kind: "StatefulSet",
    metadata: metadata(ctx, name, "ingest", track),
    spec: {
      serviceName: names.ingest,
      replicas,
      podManagementPolicy: "OrderedReady",
      // Scale-down keeps a removed replica's WAL volume: nothing acknowledged is ever lost.
      persistentVolumeClaimRetentionPolicy: { whenDeleted: "Retain", whenScaled: "Retain" },
      selector: { matchLabels: podLabels },
      template: podTemplate(podLabels, podSpec),
      volumeClaimTemplates: [
        {
          metadata: { name: "wal", labels: labels(ctx.name, "ingest") },
          spec: {
            accessModes: ["ReadWriteOnce"],
            resources: { requests: { storage: ingest.walStorage.size } },
            ...(ingest.walStorage.storageClassName === undefined
              ? {}
              : { storageClassName: ingest.walStorage.storageClassName }),
          },
        },
      ],
    },
  };
}

/** An index or archive Deployment (stable or canary). */
export function renderServiceDeployment(
  ctx: RenderContext,
  component: "index" | "archive",
  track: "stable" | "canary",
  image: string,
  replicas: number,
): KubeObject {
  const names = objectNames(ctx.name);
  const { spec } = ctx;
  const ports = PORTS[component];
  const env: unknown[] = [];
  if (component === "index") {
    const meiliSecret =
      spec.meilisearch.mode === "managed"
        ? { name: names.meilisearch, key: "masterKey" }
        : { name: spec.meilisearch.secretRef?.name ?? "", key: spec.meilisearch.secretRef?.key ?? "apiKey" };
    env.push(
      { name: "SESSIONTRACK_INDEX_BACKEND", value: "meilisearch" },
      {
        name: "SESSIONTRACK_MEILI_URL",
        value:
          spec.meilisearch.mode === "managed"
            ? `http://${names.meilisearch}:7700`
            : (spec.meilisearch.url ?? ""),
      },
      { name: "SESSIONTRACK_MEILI_KEY", valueFrom: { secretKeyRef: meiliSecret } },
      { name: "SESSIONTRACK_MEILI_INDEX", value: `${spec.meilisearch.indexPrefix}_events` },
    );
  } else {
    const s3Secret =
      spec.s3.mode === "managed"
        ? { name: names.s3, id: "accessKeyId", secret: "secretAccessKey" }
        : {
            name: spec.s3.secretRef?.name ?? "",
            id: spec.s3.secretRef?.accessKeyIdKey ?? "accessKeyId",
            secret: spec.s3.secretRef?.secretAccessKeyKey ?? "secretAccessKey",
          };
    env.push(
      { name: "SESSIONTRACK_ARCHIVE_STORE", value: "s3" },
      {
        name: "SESSIONTRACK_S3_ENDPOINT",
        value: spec.s3.mode === "managed" ? `http://${names.s3}:9000` : (spec.s3.url ?? ""),
      },
      { name: "SESSIONTRACK_S3_BUCKET", value: spec.s3.bucket },
      { name: "SESSIONTRACK_S3_REGION", value: spec.s3.region },
      {
        name: "SESSIONTRACK_S3_ACCESS_KEY",
        valueFrom: { secretKeyRef: { name: s3Secret.name, key: s3Secret.id } },
      },
      {
        name: "SESSIONTRACK_S3_SECRET_KEY",
        valueFrom: { secretKeyRef: { name: s3Secret.name, key: s3Secret.secret } },
      },
      // One file per tenant, named by the tenant: the key Secret mounted as a directory.
      { name: "SESSIONTRACK_KEK_DIR", value: "/etc/sessiontrack/encryption-keys" },
      { name: "SESSIONTRACK_COLD_AFTER_DAYS", value: String(spec.privacy.retention.coldAfterDays) },
      { name: "SESSIONTRACK_RETENTION_DAYS", value: String(spec.privacy.retention.retentionDays) },
    );
  }
  const podLabels = labels(ctx.name, component, track);
  const keysSecret = spec.privacy.encryption.keySecretRef?.name ?? names.encryptionKeys;
  const podSpec = {
    terminationGracePeriodSeconds: 30,
    containers: [
      {
        name: component,
        image,
        args: [
          component,
          "serve",
          `--listen=0.0.0.0:${ports.grpc}`,
          `--metrics-listen=0.0.0.0:${ports.metrics}`,
          "--tenants=/etc/sessiontrack/tenants/tenants.yaml",
          ...(component === "index" ? ["--data-dir=/var/lib/sessiontrack/index"] : []),
        ],
        env,
        ports: [
          { name: "grpc", containerPort: ports.grpc },
          { name: "metrics", containerPort: ports.metrics },
        ],
        resources: spec[component].resources,
        ...probes(ports.metrics),
        volumeMounts: [
          tenantsMount,
          ...(component === "archive"
            ? [{ name: "encryption-keys", mountPath: "/etc/sessiontrack/encryption-keys", readOnly: true }]
            : [{ name: "scratch", mountPath: "/var/lib/sessiontrack/index" }]),
        ],
      },
    ],
    volumes: [
      tenantsVolume(ctx),
      component === "archive"
        ? { name: "encryption-keys", secret: { secretName: keysSecret } }
        : { name: "scratch", emptyDir: {} },
    ],
  };
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: metadata(
      ctx,
      track === "stable" ? names[component] : names.canary(component),
      component,
      track,
    ),
    spec: {
      replicas,
      selector: { matchLabels: podLabels },
      strategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      template: podTemplate(podLabels, podSpec),
    },
  };
}

/**
 * The Service in front of a component's stable pods, or (`track` canary) its canary pods,
 * which the capture config's canary route names so the cohort reaches the canary.
 */
export function renderService(
  ctx: RenderContext,
  component: Component,
  track: "stable" | "canary",
  headless = false,
): KubeObject {
  const ports = PORTS[component];
  const selector = {
    "app.kubernetes.io/instance": ctx.name,
    "app.kubernetes.io/component": component,
    "sessiontrack.io/track": track,
  };
  const names = objectNames(ctx.name);
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: metadata(
      ctx,
      track === "stable" ? names[component] : names.canary(component),
      component,
      track,
    ),
    spec: {
      ...(headless ? { clusterIP: "None", publishNotReadyAddresses: false } : {}),
      selector,
      ports: [
        { name: "grpc", port: ports.grpc, targetPort: "grpc" },
        { name: "metrics", port: ports.metrics, targetPort: "metrics" },
      ],
    },
  };
}

/** Managed Meilisearch or MinIO: a single-replica StatefulSet with a data PVC, plus its Service. */
export function renderManagedStore(ctx: RenderContext, store: "meilisearch" | "s3"): KubeObject[] {
  const name = objectNames(ctx.name)[store];
  const config = ctx.spec[store];
  const podLabels = labels(ctx.name, store);
  const container =
    store === "meilisearch"
      ? {
          name: "meilisearch",
          image: config.image,
          env: [
            { name: "MEILI_ENV", value: "production" },
            { name: "MEILI_DB_PATH", value: "/data" },
            { name: "MEILI_NO_ANALYTICS", value: "true" },
            { name: "MEILI_MASTER_KEY", valueFrom: { secretKeyRef: { name, key: "masterKey" } } },
          ],
          ports: [{ name: "http", containerPort: 7700 }],
          readinessProbe: { httpGet: { path: "/health", port: 7700 }, periodSeconds: 5 },
        }
      : {
          name: "minio",
          image: config.image,
          args: ["server", "/data", "--address=:9000"],
          env: [
            { name: "MINIO_ROOT_USER", valueFrom: { secretKeyRef: { name, key: "accessKeyId" } } },
            { name: "MINIO_ROOT_PASSWORD", valueFrom: { secretKeyRef: { name, key: "secretAccessKey" } } },
          ],
          ports: [{ name: "http", containerPort: 9000 }],
          readinessProbe: { httpGet: { path: "/minio/health/ready", port: 9000 }, periodSeconds: 5 },
        };
  const podSpec = {
    containers: [
      { ...container, resources: config.resources, volumeMounts: [{ name: "data", mountPath: "/data" }] },
    ],
  };
  const port = store === "meilisearch" ? 7700 : 9000;
  return [
    {
      apiVersion: "apps/v1",
      kind: "StatefulSet",
      metadata: metadata(ctx, name, store),
      spec: {
        serviceName: name,
        replicas: 1,
        selector: { matchLabels: podLabels },
        template: podTemplate(podLabels, podSpec),
        volumeClaimTemplates: [
          {
            metadata: { name: "data", labels: labels(ctx.name, store) },
            spec: {
              accessModes: ["ReadWriteOnce"],
              resources: { requests: { storage: config.storage.size } },
              ...(config.storage.storageClassName === undefined
                ? {}
                : { storageClassName: config.storage.storageClassName }),
            },
          },
        ],
      },
    },
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: metadata(ctx, name, store),
      spec: { selector: podLabels, ports: [{ name: "http", port, targetPort: "http" }] },
    },
  ];
}

/** A generated-credentials Secret; `data` is only ever freshly generated when the Secret does not exist. */
export function renderSecret(
  ctx: RenderContext,
  name: string,
  component: string,
  stringData: Record<string, string>,
): KubeObject {
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: metadata(ctx, name, component),
    type: "Opaque",
    stringData,
  };
}

/** The capture ConfigMap ingest pods mount. */
export function renderCaptureConfigMap(
  ctx: RenderContext,
  text: string,
  annotations: Record<string, string>,
): KubeObject {
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { ...metadata(ctx, objectNames(ctx.name).capture, "capture"), annotations },
    data: { [CAPTURE_FILE_KEY]: text },
  };
}
