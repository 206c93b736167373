import type { Logger } from "@sessiontrack/runtime";
import { createLogger } from "@sessiontrack/runtime";

import { parseCommandArgs } from "../args.js";
import { waitForShutdownSignal } from "../signals.js";

/** A service the CLI can run in the foreground. */
export interface ServeSpec<Config extends { logLevel: string }> {
  /** Log name and what the ready line says: `<name> serving`. */
  name: string;
  usage: string;
  /** Every flag the service's loader reads (name without dashes). */
  flags: readonly string[];
  load(flags: Readonly<Record<string, string | undefined>>): Config;
  start(
    config: Config,
    logger: Logger,
  ): Promise<{ address: string; metricsAddress: string; close(): Promise<void> }>;
}

/** Parses flags strictly, loads the config (failing fast), serves until SIGINT/SIGTERM, then drains. */
export async function runServe<Config extends { logLevel: string }>(
  spec: ServeSpec<Config>,
  argv: readonly string[],
): Promise<number> {
  const options = Object.fromEntries(spec.flags.map((flag) => [flag, { type: "string" as const }]));
  const args = parseCommandArgs(argv, { ...options, help: { type: "boolean", short: "h" } }, spec.usage);
  if (args.booleans["help"] === true) {
    console.log(spec.usage);
    return 0;
  }
  const config = spec.load(args.flags);
  const logger = createLogger({ name: spec.name, level: config.logLevel });
  const server = await spec.start(config, logger);
  logger.info({ address: server.address, metrics: server.metricsAddress }, `${spec.name} serving`);
  const signal = await waitForShutdownSignal();
  logger.info({ signal }, "draining");
  await server.close();
  logger.info("stopped");
  return 0;
}
