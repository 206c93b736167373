export { createLogger, isLogLevel, type Logger, type LoggerOptions } from "./logger.js";
export { formatHostPort, parseConfig, parseHostPort, type HostPort } from "./config.js";
export { startMetricsServer, type MetricsServer, type MetricsServerOptions } from "./metrics-server.js";
export {
  startGrpcServer,
  type GrpcServerOptions,
  type GrpcServiceRegistration,
  type RunningGrpcServer,
} from "./grpc-server.js";
export { statusForCode, toGrpcError, type GrpcError } from "./grpc-errors.js";
export { PROTO_DIR, sessionTrackProtoFiles } from "./protos.js";
export {
  generateApiKey,
  hashApiKey,
  TenantDirectory,
  writeTenantsFile,
  type Principal,
  type Role,
  type ServiceKeyEntry,
  type ServicePrincipal,
  type TenantEntry,
} from "./tenants.js";
export {
  startServiceEndpoints,
  type ServiceEndpoints,
  type ServiceEndpointsOptions,
} from "./service-endpoints.js";
export { hostPortSetting, logLevelSetting, wholeNumberSetting } from "./settings.js";
