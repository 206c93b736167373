import { isStatus, type KubeClient } from "./k8s/index.js";
import {
  REVISION_CODE_ANNOTATION,
  REVISION_REASON_ANNOTATION,
  PROMOTED_AT_ANNOTATION,
  PROMOTED_FROM_ANNOTATION,
  REVISION_VERDICT_ANNOTATION,
  type ControllerRevision,
} from "./revisions.js";

const refOf = (revision: ControllerRevision) => ({
  apiVersion: "apps/v1",
  kind: "ControllerRevision",
  namespace: revision.metadata.namespace ?? "",
  name: revision.metadata.name ?? "",
});

/** Writes to the ControllerRevisions that record a SessionStore's image sets. */
export class RevisionHistory {
  constructor(
    private readonly client: KubeClient,
    /** Called with every revision written, so the caller can wait for its cache to catch up. */
    private readonly written: (revision: ControllerRevision) => Promise<unknown> = () => Promise.resolve(),
  ) {}

  private async settled(revision: ControllerRevision): Promise<ControllerRevision> {
    await this.written(revision);
    return revision;
  }

  /** Creates `revision`; one created meanwhile (409) is read back instead. */
  async create(revision: ControllerRevision): Promise<ControllerRevision> {
    try {
      return await this.settled(await this.client.create<ControllerRevision>(revision));
    } catch (error) {
      if (!isStatus(error, 409)) throw error;
      const existing = await this.client.get<ControllerRevision>(refOf(revision));
      if (existing === undefined) throw error;
      return existing;
    }
  }

  /** Marks a revision bad (with a condition reason `code` and a message) or clears the mark. */
  async mark(
    revision: ControllerRevision,
    verdict: "bad" | "good",
    code: string,
    reason: string,
  ): Promise<ControllerRevision> {
    const annotations =
      verdict === "bad"
        ? {
            [REVISION_VERDICT_ANNOTATION]: "bad",
            [REVISION_CODE_ANNOTATION]: code,
            [REVISION_REASON_ANNOTATION]: reason.slice(0, 1000),
          }
        : {
            [REVISION_VERDICT_ANNOTATION]: null,
            [REVISION_CODE_ANNOTATION]: null,
            [REVISION_REASON_ANNOTATION]: null,
          };
    return this.settled(
      await this.client.mergePatch<ControllerRevision>(refOf(revision), { metadata: { annotations } }),
    );
  }

  /** Records on a revision when it was promoted and which stable revision it replaced (for the rollback window). */
  recordPromotion(
    revision: ControllerRevision,
    from: ControllerRevision,
    at: string,
  ): Promise<ControllerRevision> {
    return this.client.mergePatch<ControllerRevision>(refOf(revision), {
      metadata: {
        annotations: { [PROMOTED_AT_ANNOTATION]: at, [PROMOTED_FROM_ANNOTATION]: from.metadata.name ?? "" },
      },
    });
  }

  /** Keeps the newest `limit` revisions, and always those in `keep` (stable and target). */
  async prune(revisions: ControllerRevision[], limit: number, keep: ControllerRevision[]): Promise<void> {
    const protectedNames = new Set(keep.map((revision) => revision.metadata.name));
    const sorted = [...revisions].sort((a, b) => b.revision - a.revision);
    for (const revision of sorted.slice(limit)) {
      if (!protectedNames.has(revision.metadata.name)) await this.client.delete(refOf(revision));
    }
  }
}
