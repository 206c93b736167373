// IPv4 and IPv6 addresses.
import { isIPv6 } from "node:net";
import { CORE_IPV4, CORE_IPV6 } from "../categories.js";
import { ALL, scan, type Detector, type Match } from "./common.js";

const OCTET = String.raw`(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)`;
// Not inside a longer dotted sequence (1.2.3.4.5, OIDs) and not a version ("v1.2.3.4",
// "version 1.2.3.4").
const IPV4 = new RegExp(
  String.raw`(?<![\w.-])(?<!(?:version|ver|release|build|v)[ \t]?)${OCTET}(?:\.${OCTET}){3}(?![\w-]|\.\d)`,
  "gi",
);
const IPV6_CANDIDATE =
  /(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}|[0-9A-Fa-f]{1,4})?(?![\w:]|\.\d)/g;

export const ipAddress: Detector = {
  name: "ip_address",
  cores: CORE_IPV4 | CORE_IPV6,
  find(text, cores = ALL) {
    const out: Match[] = [];
    if (cores & CORE_IPV6 && text.includes(":")) {
      scan(
        IPV6_CANDIDATE,
        text,
        (match) => {
          const candidate = match[0];
          if (!isIPv6(candidate)) return null;
          // "::1", "::" and hex words ("dead::beef") are not anyone's address.
          const groups = candidate.split(/[:.]/).filter((group) => group !== "");
          if (groups.length < 2 || !/\d/.test(candidate)) return null;
          return {
            start: match.index,
            end: match.index + candidate.length,
            value: candidate.toLowerCase(),
          };
        },
        out,
      );
    }
    if ((cores & CORE_IPV4) === 0) return out;
    // IPv4, unless inside an IPv6 address already found (::ffff:192.0.2.1).
    const v6 = out.length;
    return scan(
      IPV4,
      text,
      (match) => {
        const start = match.index;
        const end = start + match[0].length;
        for (let i = 0; i < v6; i += 1) if (start < out[i]!.end && out[i]!.start < end) return null;
        return { start, end, value: match[0] };
      },
      out,
    );
  },
};
