export {
  FIELD_MANAGER,
  KubeClient,
  type KubeClientOptions,
  type KubeConnection,
  type WriteRecord,
} from "./client.js";
export { Informer, type InformerEventType, type InformerOptions } from "./informer.js";
export { LeaderElector, type LeaderElectionOptions } from "./lease.js";
export { resourcePath } from "./resources.js";
export {
  KubeApiError,
  NotLeaderError,
  isStatus,
  type KubeObject,
  type ObjectMeta,
  type ObjectRef,
  type OwnerReference,
  type WatchEvent,
} from "./types.js";
