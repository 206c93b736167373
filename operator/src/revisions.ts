import type { KubeObject, OwnerReference } from "./k8s/index.js";
import { labels, shortHash } from "./render.js";
import { COMPONENTS, type Component, type SessionStoreSpec } from "./spec.js";

/** ControllerRevision annotation: "bad" once a revision was rolled back or aborted. */
export const REVISION_VERDICT_ANNOTATION = "sessiontrack.io/verdict";
export const REVISION_REASON_ANNOTATION = "sessiontrack.io/verdict-reason";
/** Why a revision is bad, as a condition reason: AnalysisFailed, ManualRollback or Aborted. */
export const REVISION_CODE_ANNOTATION = "sessiontrack.io/verdict-code";

/** When a revision became stable, and the stable revision it replaced (the rollback window's way back). */
export const PROMOTED_AT_ANNOTATION = "sessiontrack.io/promoted-at";
export const PROMOTED_FROM_ANNOTATION = "sessiontrack.io/promoted-from";

/** The images of one revision: what a canary changes and a rollback restores. */
export type RevisionImages = Record<Component, string>;

export type ControllerRevision = KubeObject & {
  revision: number;
  data?: { images?: Partial<RevisionImages> };
};

export const imagesOf = (spec: SessionStoreSpec): RevisionImages => ({
  ingest: spec.ingest.image,
  index: spec.index.image,
  archive: spec.archive.image,
});

export const revisionName = (storeName: string, images: RevisionImages): string =>
  `${storeName}-${shortHash(images, 10)}`;

export function revisionImages(revision: ControllerRevision): RevisionImages | undefined {
  const images = revision.data?.images;
  if (images === undefined) return undefined;
  for (const component of COMPONENTS) if (typeof images[component] !== "string") return undefined;
  return images as RevisionImages;
}

export const isBad = (revision: ControllerRevision | undefined): boolean =>
  revision?.metadata.annotations?.[REVISION_VERDICT_ANNOTATION] === "bad";

/** Components whose image differs between two revisions, in rollout order. */
export const changedComponents = (from: RevisionImages, to: RevisionImages): Component[] =>
  COMPONENTS.filter((component) => from[component] !== to[component]);

/** A new ControllerRevision for `images`. */
export function renderRevision(
  storeName: string,
  namespace: string,
  owner: OwnerReference,
  images: RevisionImages,
  number: number,
): ControllerRevision {
  return {
    apiVersion: "apps/v1",
    kind: "ControllerRevision",
    metadata: {
      name: revisionName(storeName, images),
      namespace,
      labels: labels(storeName, "revision"),
      ownerReferences: [owner],
    },
    data: { images },
    revision: number,
  };
}

/** Finds a revision by name or by its revision number ("3"). */
export function findRevision(
  revisions: readonly ControllerRevision[],
  wanted: string,
): ControllerRevision | undefined {
  return (
    revisions.find((revision) => revision.metadata.name === wanted) ??
    (/^\d+$/.test(wanted) ? revisions.find((revision) => revision.revision === Number(wanted)) : undefined)
  );
}
