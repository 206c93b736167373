/** The parts of a Kubernetes object the operator reads generically. */
export interface ObjectMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
  creationTimestamp?: string;
  deletionTimestamp?: string;
  managedFields?: unknown[];
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

/** Any Kubernetes object; `spec`/`status`/`data` stay loosely typed at this layer. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  [field: string]: unknown;
}

/** Identifies one object. */
export interface ObjectRef {
  apiVersion: string;
  kind: string;
  namespace?: string;
  name: string;
}

/** A watch event as the API server sends it. */
export interface WatchEvent {
  type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
  object: KubeObject;
}

/** An error answer from the API server, carrying its HTTP status. */
export class KubeApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly reason: string | undefined,
  ) {
    super(message);
    this.name = "KubeApiError";
  }
}

/** Raised by a write attempted while this instance does not hold the leader lease. */
export class NotLeaderError extends Error {
  constructor(what: string) {
    super(`refusing to ${what}: this operator instance is not the leader`);
    this.name = "NotLeaderError";
  }
}

/** True when `error` is an API answer with HTTP `status`. */
export function isStatus(error: unknown, status: number): boolean {
  return error instanceof KubeApiError && error.status === status;
}
