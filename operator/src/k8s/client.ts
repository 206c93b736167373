import { request as httpRequest, type IncomingMessage } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest, type RequestOptions } from "node:https";

import { KubeConfig, Watch } from "@kubernetes/client-node";

import type { Logger } from "@sessiontrack/runtime";

import { resourcePath } from "./resources.js";
import {
  KubeApiError,
  NotLeaderError,
  isStatus,
  type KubeObject,
  type ObjectRef,
  type WatchEvent,
} from "./types.js";

/** The field manager every server-side apply of the operator uses. */
export const FIELD_MANAGER = "sessiontrack-operator";

/** How to reach the API server. */
export type KubeConnection = { kubeconfigPath: string; context?: string } | { inCluster: true };

/** Options for {@link KubeClient}. */
export interface KubeClientOptions {
  /** Deadline of every non-watch request; a stalled connection fails instead of hanging. */
  requestTimeoutMs?: number;
  /** Called before every write except leases; returning false refuses the write. */
  writeGuard?: () => boolean;
}

/** One mutating request, reported to write listeners (metrics, tests). */
export interface WriteRecord {
  verb: "apply" | "create" | "replace" | "patch" | "patch-status" | "delete";
  kind: string;
  namespace: string | undefined;
  name: string;
}

interface RequestSpec {
  method: string;
  path: string;
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  contentType?: string;
}

/**
 * The operator's only door to Kubernetes (CONVENTIONS §5). Requests go over the
 * connection settings of a client-node KubeConfig (TLS, tokens, exec plugins); watches use
 * client-node's Watch. Everything above this module sees plain objects and KubeApiError.
 */
export class KubeClient {
  private readonly kubeConfig: KubeConfig;
  private readonly server: URL;
  private readonly requestTimeoutMs: number;
  private writeGuard: () => boolean;
  private readonly writeListeners = new Set<(write: WriteRecord) => void>();
  /** One keep-alive agent per TLS identity (client-node makes a new agent, so a new TLS handshake, per request). */
  private keepAlive: { identity: string; agent: HttpsAgent } | undefined;

  constructor(
    connection: KubeConnection,
    private readonly logger: Logger,
    options: KubeClientOptions = {},
  ) {
    this.kubeConfig = new KubeConfig();
    if ("inCluster" in connection) {
      this.kubeConfig.loadFromCluster();
    } else {
      this.kubeConfig.loadFromFile(connection.kubeconfigPath);
      if (connection.context !== undefined) this.kubeConfig.setCurrentContext(connection.context);
    }
    const cluster = this.kubeConfig.getCurrentCluster();
    if (cluster === null) throw new Error("kubeconfig has no current cluster");
    this.server = new URL(cluster.server);
    this.requestTimeoutMs = options.requestTimeoutMs ?? 15_000;
    this.writeGuard = options.writeGuard ?? (() => true);
  }

  /** Installs the check that gates writes (leader election). */
  setWriteGuard(guard: () => boolean): void {
    this.writeGuard = guard;
  }

  /** Subscribes to every successful write; returns the unsubscribe function. */
  onWrite(listener: (write: WriteRecord) => void): () => void {
    this.writeListeners.add(listener);
    return () => this.writeListeners.delete(listener);
  }

  /** Reads one object; undefined when it does not exist. */
  async get<T extends KubeObject = KubeObject>(ref: ObjectRef): Promise<T | undefined> {
    try {
      return await this.request<T>({
        method: "GET",
        path: resourcePath(ref.apiVersion, ref.kind, ref.namespace, ref.name),
      });
    } catch (error) {
      if (isStatus(error, 404)) return undefined;
      throw error;
    }
  }

  /** Lists objects of a kind (one namespace, or all when `namespace` is undefined). */
  async list<T extends KubeObject = KubeObject>(
    apiVersion: string,
    kind: string,
    namespace: string | undefined,
    labelSelector?: string,
  ): Promise<{ items: T[]; resourceVersion: string }> {
    const answer = await this.request<{ items: T[] | null; metadata: { resourceVersion: string } }>({
      method: "GET",
      path: resourcePath(apiVersion, kind, namespace),
      query: { labelSelector },
    });
    // List items carry no apiVersion/kind; put them back so objects are self-describing.
    const items = (answer.items ?? []).map((item) => ({ ...item, apiVersion, kind }));
    return { items, resourceVersion: answer.metadata.resourceVersion };
  }

  /**
   * Server-side apply of `object` as field manager `sessiontrack-operator`, forcing
   * ownership of the fields it sets (the operator is the authority on its objects).
   */
  async apply<T extends KubeObject = KubeObject>(object: KubeObject): Promise<T> {
    const { name = "", namespace } = object.metadata;
    this.guard(`apply ${object.kind}/${name}`);
    const result = await this.request<T>({
      method: "PATCH",
      path: resourcePath(object.apiVersion, object.kind, namespace, name),
      query: { fieldManager: FIELD_MANAGER, force: true },
      body: object,
      contentType: "application/apply-patch+yaml",
    });
    this.recordWrite({ verb: "apply", kind: object.kind, namespace, name });
    return result;
  }

  /**
   * What {@link apply} would store, without storing it (`dryRun=All`): how the operator
   * notices drift, a field someone changed behind its back, without writing.
   */
  async applyDryRun<T extends KubeObject = KubeObject>(object: KubeObject): Promise<T> {
    const { name = "", namespace } = object.metadata;
    return this.request<T>({
      method: "PATCH",
      path: resourcePath(object.apiVersion, object.kind, namespace, name),
      query: { fieldManager: FIELD_MANAGER, force: true, dryRun: "All" },
      body: object,
      contentType: "application/apply-patch+yaml",
    });
  }

  /** Creates an object; KubeApiError 409 when it exists. */
  async create<T extends KubeObject = KubeObject>(
    object: KubeObject,
    options: { lease?: boolean } = {},
  ): Promise<T> {
    const { name = "", namespace } = object.metadata;
    if (options.lease !== true) this.guard(`create ${object.kind}/${name}`);
    const result = await this.request<T>({
      method: "POST",
      path: resourcePath(object.apiVersion, object.kind, namespace),
      query: { fieldManager: FIELD_MANAGER },
      body: object,
    });
    this.recordWrite({ verb: "create", kind: object.kind, namespace, name });
    return result;
  }

  /** Replaces an object; its metadata.resourceVersion makes this a compare-and-swap (409 on conflict). */
  async replace<T extends KubeObject = KubeObject>(
    object: KubeObject,
    options: { lease?: boolean } = {},
  ): Promise<T> {
    const { name = "", namespace } = object.metadata;
    if (options.lease !== true) this.guard(`replace ${object.kind}/${name}`);
    const result = await this.request<T>({
      method: "PUT",
      path: resourcePath(object.apiVersion, object.kind, namespace, name),
      query: { fieldManager: FIELD_MANAGER },
      body: object,
    });
    this.recordWrite({ verb: "replace", kind: object.kind, namespace, name });
    return result;
  }

  /** JSON merge patch of an object (or of its status subresource). */
  async mergePatch<T extends KubeObject = KubeObject>(
    ref: ObjectRef,
    patch: unknown,
    options: { subresource?: "status" } = {},
  ): Promise<T> {
    this.guard(`patch ${ref.kind}/${ref.name}`);
    const suffix = options.subresource === undefined ? "" : `/${options.subresource}`;
    const result = await this.request<T>({
      method: "PATCH",
      path: resourcePath(ref.apiVersion, ref.kind, ref.namespace, ref.name) + suffix,
      query: { fieldManager: FIELD_MANAGER },
      body: patch,
      contentType: "application/merge-patch+json",
    });
    this.recordWrite({
      verb: options.subresource === "status" ? "patch-status" : "patch",
      kind: ref.kind,
      namespace: ref.namespace,
      name: ref.name,
    });
    return result;
  }

  /** Deletes an object; a missing one is not an error. Returns whether it existed. */
  async delete(
    ref: ObjectRef,
    propagationPolicy: "Background" | "Foreground" = "Background",
  ): Promise<boolean> {
    this.guard(`delete ${ref.kind}/${ref.name}`);
    try {
      await this.request({
        method: "DELETE",
        path: resourcePath(ref.apiVersion, ref.kind, ref.namespace, ref.name),
        body: { apiVersion: "v1", kind: "DeleteOptions", propagationPolicy },
      });
    } catch (error) {
      if (isStatus(error, 404)) return false;
      throw error;
    }
    this.recordWrite({ verb: "delete", kind: ref.kind, namespace: ref.namespace, name: ref.name });
    return true;
  }

  /** Records a core/v1 Event about `regarding` (type Normal or Warning). */
  async event(
    regarding: KubeObject,
    type: "Normal" | "Warning",
    reason: string,
    message: string,
  ): Promise<void> {
    const now = new Date().toISOString();
    const namespace = regarding.metadata.namespace ?? "default";
    const stamp = Date.now().toString(16);
    await this.create({
      apiVersion: "v1",
      kind: "Event",
      metadata: { name: `${regarding.metadata.name ?? "object"}.${stamp}${randomSuffix()}`, namespace },
      involvedObject: {
        apiVersion: regarding.apiVersion,
        kind: regarding.kind,
        name: regarding.metadata.name,
        namespace,
        uid: regarding.metadata.uid,
        resourceVersion: regarding.metadata.resourceVersion,
      },
      type,
      reason,
      message: message.slice(0, 1024),
      source: { component: FIELD_MANAGER },
      reportingComponent: FIELD_MANAGER,
      reportingInstance: FIELD_MANAGER,
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    });
  }

  /**
   * Opens a watch from `resourceVersion`. `onEvent` gets each event (bookmarks included);
   * `onDone` is called once when the stream ends, with the error if any (an HTTP 410 or
   * an ERROR event with code 410 arrives as KubeApiError 410). Returns the stopper.
   */
  async watch(
    apiVersion: string,
    kind: string,
    namespace: string | undefined,
    resourceVersion: string,
    onEvent: (event: WatchEvent) => void,
    onDone: (error: unknown) => void,
    options: { timeoutSeconds?: number; labelSelector?: string } = {},
  ): Promise<() => void> {
    const path = resourcePath(apiVersion, kind, namespace);
    let finished = false;
    const done = (error: unknown): void => {
      if (finished) return;
      finished = true;
      onDone(error);
    };
    const controller = await new Watch(this.kubeConfig).watch(
      path,
      {
        resourceVersion,
        allowWatchBookmarks: true,
        timeoutSeconds: options.timeoutSeconds,
        labelSelector: options.labelSelector,
      },
      (type: string, object: unknown) => {
        if (finished) return;
        if (type === "ERROR") {
          const status = object as { code?: number; message?: string; reason?: string };
          done(new KubeApiError(status.code ?? 500, status.message ?? "watch error", status.reason));
          stop();
          return;
        }
        const item = object as KubeObject;
        onEvent({ type: type as WatchEvent["type"], object: { ...item, apiVersion, kind } });
      },
      (error: unknown) => {
        const code = (error as { statusCode?: number } | null)?.statusCode;
        done(
          code === undefined ? error : new KubeApiError(code, String((error as Error).message), undefined),
        );
      },
    );
    const stop = (): void => {
      controller.abort();
      done(undefined);
    };
    if (finished) controller.abort();
    return stop;
  }

  /** Swaps client-node's per-request agent for a shared keep-alive one with the same TLS settings. */
  private reuseConnections(options: RequestOptions, url: URL): void {
    if (url.protocol !== "https:" || this.kubeConfig.getCurrentCluster()?.proxyUrl !== undefined) return;
    const identity = [options.ca, options.cert, options.key, options.rejectUnauthorized, options.servername]
      .map((part) =>
        part === undefined ? "" : JSON.stringify(part instanceof Buffer ? part.toString("base64") : part),
      )
      .join("\u0000");
    if (this.keepAlive?.identity !== identity) {
      this.keepAlive?.agent.destroy();
      this.keepAlive = {
        identity,
        agent: new HttpsAgent({
          keepAlive: true,
          maxSockets: 16,
          ...(options.ca === undefined ? {} : { ca: options.ca }),
          ...(options.cert === undefined ? {} : { cert: options.cert }),
          ...(options.key === undefined ? {} : { key: options.key }),
          ...(options.rejectUnauthorized === undefined
            ? {}
            : { rejectUnauthorized: options.rejectUnauthorized }),
          ...(options.servername === undefined ? {} : { servername: options.servername }),
        }),
      };
    }
    options.agent = this.keepAlive.agent;
  }

  /** Closes pooled connections. */
  close(): void {
    this.keepAlive?.agent.destroy();
    this.keepAlive = undefined;
  }

  private guard(what: string): void {
    if (!this.writeGuard()) throw new NotLeaderError(what);
  }

  private recordWrite(write: WriteRecord): void {
    for (const listener of this.writeListeners) listener(write);
  }

  /** One JSON request to the API server, over the kubeconfig's TLS and credentials. */
  async request<T>(spec: RequestSpec): Promise<T> {
    const url = new URL(spec.path, this.server);
    for (const [key, value] of Object.entries(spec.query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    const options: RequestOptions = { method: spec.method, headers: { accept: "application/json" } };
    await this.kubeConfig.applyToHTTPSOptions(options);
    this.reuseConnections(options, url);
    const body = spec.body === undefined ? undefined : JSON.stringify(spec.body);
    const headers = options.headers as Record<string, string>;
    if (body !== undefined) {
      headers["content-type"] = spec.contentType ?? "application/json";
      headers["content-length"] = String(Buffer.byteLength(body));
    }
    const send = url.protocol === "http:" ? httpRequest : httpsRequest;
    const started = Date.now();
    const response = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = send(url, options, (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }),
        );
        res.on("error", reject);
      });
      req.setTimeout(this.requestTimeoutMs, () =>
        req.destroy(
          new Error(`${spec.method} ${url.pathname}: no answer within ${this.requestTimeoutMs} ms`),
        ),
      );
      req.on("error", reject);
      req.end(body);
    });
    this.logger.trace(
      { method: spec.method, path: url.pathname, status: response.status, ms: Date.now() - started },
      "kubernetes request",
    );
    if (response.status < 200 || response.status >= 300) {
      let message = response.text;
      let reason: string | undefined;
      try {
        const status = JSON.parse(response.text) as { message?: string; reason?: string };
        message = status.message ?? message;
        reason = status.reason;
      } catch {
        // not a Status object; keep the raw text
      }
      throw new KubeApiError(
        response.status,
        `${spec.method} ${url.pathname}: ${response.status} ${message}`,
        reason,
      );
    }
    return (response.text === "" ? {} : JSON.parse(response.text)) as T;
  }
}

function randomSuffix(): string {
  return Math.floor(Math.random() * 0xffff)
    .toString(16)
    .padStart(4, "0");
}
