// The only entry point to the generated sessiontrack.v1 code (see buf.gen.yaml).
export * from "./gen/sessiontrack/v1/archive.js";
export * from "./gen/sessiontrack/v1/event.js";
export * from "./gen/sessiontrack/v1/index.js";
export * from "./gen/sessiontrack/v1/ingest.js";
export * from "./gen/sessiontrack/v1/privacy.js";
export * from "./gen/sessiontrack/v1/wal.js";
export { Struct, Value, ListValue, NullValue } from "./gen/google/protobuf/struct.js";
export { BinaryReader, BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
