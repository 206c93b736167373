import { z } from "zod";

import { parseHostPort } from "./config.js";
import { isLogLevel } from "./logger.js";

/** A `HOST:PORT` setting; a bad value is reported under the setting's own name. */
export function hostPortSetting(settingName: string) {
  return z.string().transform((value, ctx) => {
    try {
      return parseHostPort(value, settingName);
    } catch (error) {
      ctx.addIssue({ code: "custom", message: (error as Error).message.replace(`${settingName}: `, "") });
      return z.NEVER;
    }
  });
}

/** A whole-number setting of at least `min`, given as text (a flag or environment variable). */
export function wholeNumberSetting(min: number) {
  return z.coerce
    .number({ error: "must be a number" })
    .int("must be a whole number")
    .min(min, `must be at least ${min}`);
}

/** A pino log level setting. */
export function logLevelSetting() {
  return z.string().refine(isLogLevel, "must be trace, debug, info, warn, error, fatal or silent");
}
