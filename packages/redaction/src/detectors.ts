// The built-in detectors. Each finds spans of one kind of sensitive value in a string;
// see detectors/common.ts for the rule that keeps them consistent with the prefilter.
import type { Detector, DetectorName } from "./detectors/common.js";
import { apiKey, jwt, secret } from "./detectors/credentials.js";
import { email, phone } from "./detectors/email-phone.js";
import { ipAddress } from "./detectors/ip-address.js";
import { paymentCard } from "./detectors/payment-card.js";

export {
  DETECTOR_NAMES,
  shannonEntropy,
  type Detector,
  type DetectorName,
  type Match,
} from "./detectors/common.js";
export { API_KEY_BODIES, GENERIC_KEY_NAME, looksRandom } from "./detectors/credentials.js";
export { luhnValid } from "./detectors/payment-card.js";

/**
 * The built-in detectors in priority order: where two matches overlap, the one of the
 * earlier detector wins (a JWT inside "Bearer …" is reported as jwt, digits inside a key
 * are not a phone number).
 */
export const BUILT_IN_DETECTORS: readonly Detector[] = [
  jwt,
  secret,
  apiKey,
  email,
  paymentCard,
  ipAddress,
  phone,
];

/** A built-in detector by name. */
export function builtInDetector(name: DetectorName): Detector {
  const found = BUILT_IN_DETECTORS.find((detector) => detector.name === name);
  if (found === undefined) throw new Error(`no built-in detector "${name}"`);
  return found;
}
