import { randomBytes } from "node:crypto";

import type { Logger } from "@sessiontrack/runtime";

import { isStatus, type Informer, type KubeClient, type KubeObject } from "./k8s/index.js";
import { objectNames, renderSecret, type RenderContext } from "./render.js";
import { newKeyEncryptionKey, newServiceKey, secretValue } from "./service-wiring.js";

/**
 * Secrets the operator generates: created once when missing and never rewritten, so a
 * reconcile never rotates a credential. The tenants' key-encryption keys only ever gain
 * entries (one per new tenant); an existing key is never replaced.
 */
export class GeneratedSecrets {
  constructor(
    private readonly client: KubeClient,
    private readonly secrets: Informer,
    private readonly logger: Logger,
  ) {}

  private async read(namespace: string, name: string): Promise<KubeObject | undefined> {
    return (
      this.secrets.get(namespace, name) ??
      (await this.client.get({ apiVersion: "v1", kind: "Secret", namespace, name }))
    );
  }

  private async create(object: KubeObject): Promise<void> {
    try {
      await this.client.create(object);
      this.logger.info({ secret: object.metadata.name }, "generated secret");
    } catch (error) {
      if (!isStatus(error, 409)) throw error;
    }
  }

  /** Store credentials and the shipper service key; returns the service key. */
  async ensure(ctx: RenderContext): Promise<{ serviceKey: string }> {
    const names = objectNames(ctx.name);
    const wanted: { name: string; component: string; data: () => Record<string, string> }[] = [];
    if (ctx.spec.meilisearch.mode === "managed") {
      wanted.push({
        name: names.meilisearch,
        component: "meilisearch",
        data: () => ({ masterKey: randomBytes(32).toString("base64url") }),
      });
    }
    if (ctx.spec.s3.mode === "managed") {
      wanted.push({
        name: names.s3,
        component: "s3",
        data: () => ({
          accessKeyId: `st${randomBytes(9).toString("hex")}`,
          secretAccessKey: randomBytes(30).toString("base64url"),
        }),
      });
    }
    for (const secret of wanted) {
      if ((await this.read(ctx.namespace, secret.name)) === undefined) {
        await this.create(renderSecret(ctx, secret.name, secret.component, secret.data()));
      }
    }
    const existing = await this.read(ctx.namespace, names.serviceKey);
    const current = existing === undefined ? undefined : secretValue(existing, "key");
    if (current !== undefined) return { serviceKey: current };
    const serviceKey = newServiceKey();
    await this.create(renderSecret(ctx, names.serviceKey, "ingest", { key: serviceKey }));
    // Another writer may have won the race: use what is stored.
    const stored = await this.client.get({
      apiVersion: "v1",
      kind: "Secret",
      namespace: ctx.namespace,
      name: names.serviceKey,
    });
    return { serviceKey: (stored === undefined ? undefined : secretValue(stored, "key")) ?? serviceKey };
  }

  /**
   * One key-encryption key per tenant in Secret NAME-encryption-keys (unless the spec names
   * its own Secret). Deliberately not owned: deleting the SessionStore must never destroy the
   * keys the archive is encrypted with.
   */
  async ensureTenantKeys(ctx: RenderContext, tenants: readonly string[]): Promise<void> {
    if (ctx.spec.privacy.encryption.keySecretRef !== undefined) return;
    const name = objectNames(ctx.name).encryptionKeys;
    const existing = await this.read(ctx.namespace, name);
    if (existing === undefined) {
      const object = renderSecret(
        ctx,
        name,
        "archive",
        Object.fromEntries(tenants.map((tenant) => [tenant, newKeyEncryptionKey()])),
      );
      delete object.metadata.ownerReferences;
      await this.create(object);
      return;
    }
    const data = (existing["data"] as Record<string, string> | undefined) ?? {};
    const missing = tenants.filter((tenant) => data[tenant] === undefined);
    if (missing.length === 0) return;
    const added = Object.fromEntries(
      missing.map((tenant) => [tenant, Buffer.from(newKeyEncryptionKey()).toString("base64")]),
    );
    await this.client.mergePatch(
      { apiVersion: "v1", kind: "Secret", namespace: ctx.namespace, name },
      { data: added },
    );
    this.logger.info({ secret: name, tenants: missing }, "generated key-encryption keys for new tenants");
  }
}
