export { loadOperatorConfig, OPERATOR_FLAGS, type OperatorConfig } from "./config.js";
export { SessionStoreController, type ControllerOptions } from "./controller.js";
export { ABORT_ANNOTATION, PAUSE_ANNOTATION, ROLLBACK_ANNOTATION } from "./rollout.js";
export { METRICS_URL_ANNOTATION } from "./analysis.js";
export {
  FIELD_MANAGER,
  KubeClient,
  type KubeConnection,
  type KubeObject,
  type WriteRecord,
} from "./k8s/index.js";
export { OperatorMetrics } from "./metrics.js";
export { startOperator, type RunningOperator } from "./operator.js";
export { main } from "./main.js";
