import { writeFileSync } from "node:fs";

export interface KubeconfigUser {
  /** Name of the user entry; also shows up in kubectl's messages. */
  name: string;
  /** Bearer token: a static-token-file token or a ServiceAccount token. */
  token: string;
}

/**
 * Writes a single-context kubeconfig (JSON, which every kubeconfig reader accepts as YAML)
 * with the CA embedded, readable only by its owner (helm warns about anything looser).
 */
export function writeKubeconfig(
  path: string,
  options: { server: string; caPem: string; user: KubeconfigUser; namespace?: string },
): string {
  const config = {
    apiVersion: "v1",
    kind: "Config",
    clusters: [
      {
        name: "testkit",
        cluster: {
          server: options.server,
          "certificate-authority-data": Buffer.from(options.caPem).toString("base64"),
        },
      },
    ],
    users: [{ name: options.user.name, user: { token: options.user.token } }],
    contexts: [
      {
        name: "testkit",
        context: {
          cluster: "testkit",
          user: options.user.name,
          ...(options.namespace === undefined ? {} : { namespace: options.namespace }),
        },
      },
    ],
    "current-context": "testkit",
  };
  writeFileSync(path, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  return path;
}
