import { Agent } from "node:http";
import type { Readable } from "node:stream";

import * as Minio from "minio";

import { ConfigError, StorageUnavailableError } from "@sessiontrack/errors";

import { checkObjectKey, type ObjectInfo, type ObjectStore } from "./object-store.js";

/** Where and how to reach an S3-compatible store. */
export interface S3StoreOptions {
  /** `http(s)://host:port`. */
  endpoint: string;
  bucket: string;
  region: string;
  accessKey: string;
  secretKey: string;
}

/** One tenant's lifecycle on S3: expiry and, when a storage class is configured, a transition. */
export interface S3LifecycleRule {
  tenant: string;
  coldAfterDays: number;
  retentionDays: number;
}

function s3Error(error: unknown, what: string): Error {
  const code = (error as { code?: string }).code ?? "";
  return new StorageUnavailableError(
    `object store (S3) failed while ${what}: ${code === "" ? "" : `${code}: `}${(error as Error).message}`,
    { cause: error },
  );
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/**
 * An S3-compatible bucket (MinIO in production) through the `minio` client. Every
 * failure to reach or use the store is StorageUnavailableError (UNAVAILABLE, retryable):
 * the shipper keeps the events in its WAL and retries.
 */
export class S3ObjectStore implements ObjectStore {
  readonly kind = "s3" as const;
  readonly location: string;
  readonly client: Minio.Client;
  readonly bucket: string;
  private ready: Promise<void> | undefined;

  constructor(
    private readonly options: S3StoreOptions,
    private readonly lifecycle: readonly S3LifecycleRule[] = [],
    private readonly coldStorageClass: string | undefined = undefined,
  ) {
    let url: URL;
    try {
      url = new URL(options.endpoint);
    } catch {
      throw new ConfigError(`s3-endpoint: "${options.endpoint}" is not a URL such as http://127.0.0.1:9000`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new ConfigError(`s3-endpoint: "${options.endpoint}" must start with http:// or https://`);
    }
    const useSSL = url.protocol === "https:";
    this.client = new Minio.Client({
      endPoint: url.hostname.replace(/^\[|\]$/g, ""),
      port: url.port === "" ? (useSSL ? 443 : 80) : Number(url.port),
      useSSL,
      region: options.region,
      accessKey: options.accessKey,
      secretKey: options.secretKey,
      pathStyle: true,
      // A stopped store must fail a write quickly (the shipper retries), not hang it.
      ...(useSSL ? {} : { transportAgent: new Agent({ keepAlive: true, timeout: 10_000 }) }),
      retryOptions: { disableRetry: true },
    });
    this.bucket = options.bucket;
    this.location = `${url.origin}/${options.bucket}`;
  }

  /** Creates the bucket if needed and applies the lifecycle rules; retried on the next call after a failure. */
  private ensureReady(): Promise<void> {
    this.ready ??= (async () => {
      try {
        if (!(await this.client.bucketExists(this.bucket))) {
          await this.client.makeBucket(this.bucket, this.options.region);
        }
      } catch (error) {
        this.ready = undefined;
        throw s3Error(error, `preparing bucket ${this.bucket}`);
      }
      try {
        await this.applyLifecycle();
      } catch (error) {
        this.ready = undefined;
        throw s3Error(
          error,
          `setting the lifecycle rules of bucket ${this.bucket}${this.coldStorageClass === undefined ? "" : ` (transitions to storage class "${this.coldStorageClass}": on MinIO that needs a remote tier of that name, \`mc ilm tier add\`)`}`,
        );
      }
    })();
    return this.ready;
  }

  /**
   * Sets one rule per tenant prefix `tenants/<t>/`: Expiration after retentionDays, and a
   * Transition to the configured storage class after coldAfterDays (MinIO only accepts a
   * transition to a remote tier configured on the server, so none is set without one).
   */
  private async applyLifecycle(): Promise<void> {
    const rules: Minio.LifecycleRule[] = [];
    for (const rule of this.lifecycle) {
      for (const area of ["objects", "sessions"] as const) {
        const entry: Minio.LifecycleRule = {
          ID: `sessiontrack-${rule.tenant}-${area}`,
          Status: "Enabled",
          Filter: { Prefix: `tenants/${rule.tenant}/${area}/` },
        };
        if (rule.retentionDays > 0) entry.Expiration = { Days: rule.retentionDays };
        if (area === "objects" && rule.coldAfterDays > 0 && this.coldStorageClass !== undefined) {
          entry.Transition = { Days: rule.coldAfterDays, StorageClass: this.coldStorageClass };
        }
        if (entry.Expiration !== undefined || entry.Transition !== undefined) rules.push(entry);
      }
    }
    if (rules.length === 0) {
      // Nothing to enforce: leave whatever lifecycle an operator set on the bucket.
      return;
    }
    await this.client.setBucketLifecycle(this.bucket, { Rule: rules });
  }

  async put(key: string, data: Buffer): Promise<void> {
    checkObjectKey(key);
    await this.ensureReady();
    try {
      await this.client.putObject(this.bucket, key, data, data.length, {
        "Content-Type": "application/octet-stream",
      });
    } catch (error) {
      throw s3Error(error, `writing ${key}`);
    }
  }

  async putMany(entries: ReadonlyArray<readonly [string, Buffer]>): Promise<void> {
    // Bounded parallelism: a batch touches one record per session.
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < entries.length) {
        const [key, data] = entries[next]!;
        next += 1;
        await this.put(key, data);
      }
    };
    await Promise.all(Array.from({ length: Math.min(16, entries.length) }, worker));
  }

  async get(key: string): Promise<Buffer | undefined> {
    checkObjectKey(key);
    await this.ensureReady();
    try {
      return await readAll(await this.client.getObject(this.bucket, key));
    } catch (error) {
      if ((error as { code?: string }).code === "NoSuchKey") return undefined;
      throw s3Error(error, `reading ${key}`);
    }
  }

  async delete(key: string): Promise<void> {
    checkObjectKey(key);
    await this.ensureReady();
    try {
      await this.client.removeObject(this.bucket, key);
    } catch (error) {
      throw s3Error(error, `deleting ${key}`);
    }
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    await this.ensureReady();
    const found: ObjectInfo[] = [];
    try {
      const stream = this.client.listObjectsV2(this.bucket, prefix, true);
      for await (const item of stream as AsyncIterable<Minio.BucketItem>) {
        if (item.name !== undefined) {
          found.push({ key: item.name, size: item.size, lastModified: item.lastModified, tier: "hot" });
        }
      }
    } catch (error) {
      throw s3Error(error, `listing ${prefix}`);
    }
    return found.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  /** The bucket's lifecycle rules as S3 reports them (for operators and tests). */
  async lifecycleRules(): Promise<Minio.LifecycleRule[]> {
    await this.ensureReady();
    try {
      return (await this.client.getBucketLifecycle(this.bucket))?.Rule ?? [];
    } catch (error) {
      throw s3Error(error, "reading the bucket lifecycle");
    }
  }

  async close(): Promise<void> {
    // The minio client holds only pooled sockets; nothing to flush.
  }
}
