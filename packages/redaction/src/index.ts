export {
  BUILT_IN_DETECTORS,
  builtInDetector,
  DETECTOR_NAMES,
  luhnValid,
  shannonEntropy,
  type Detector,
  type DetectorName,
  type Match,
} from "./detectors.js";
export {
  compileRedactionPolicy,
  type CompiledRule,
  type CustomRuleSettings,
  type RedactionAction,
  type RedactionPolicy,
  type RedactionSettings,
} from "./policy.js";
export { mayContainSensitiveData, textMayContainSensitiveData } from "./prefilter.js";
export { createRedactor, Redactor, type RedactedEvent, type TextRedaction } from "./redactor.js";
