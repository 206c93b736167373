import { parseArgs } from "node:util";

import { ConfigError } from "@sessiontrack/errors";
import { createLogger } from "@sessiontrack/runtime";

import { OPERATOR_FLAGS, loadOperatorConfig } from "./config.js";
import { startOperator } from "./operator.js";

const USAGE = `usage: sessiontrack-operator [--kubeconfig FILE | --in-cluster true] [--namespace NS] [--FLAG VALUE ...]
flags: ${OPERATOR_FLAGS.map((flag) => `--${flag}`).join(" ")}`;

/** Runs the operator until SIGTERM/SIGINT; returns the process exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  let flags: Record<string, string | undefined>;
  try {
    const options = Object.fromEntries(OPERATOR_FLAGS.map((flag) => [flag, { type: "string" as const }]));
    const parsed = parseArgs({
      args: [...argv],
      options: { ...options, help: { type: "boolean" } },
      strict: true,
    });
    if (parsed.values["help"] === true) {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    flags = parsed.values as Record<string, string | undefined>;
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n${USAGE}\n`);
    return 2;
  }
  let config;
  try {
    config = loadOperatorConfig(flags);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      return 2;
    }
    throw error;
  }
  const logger = createLogger({ name: "sessiontrack-operator", level: config.logLevel });
  const operator = await startOperator(config, logger);
  await new Promise<void>((resolve) => {
    process.once("SIGTERM", resolve);
    process.once("SIGINT", resolve);
  });
  logger.info("shutting down");
  await operator.close();
  return 0;
}
