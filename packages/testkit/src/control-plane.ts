import { generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { writeKubeconfig } from "./kubeconfig.js";
import {
  ServerProcess,
  freePorts,
  httpStatus,
  httpsGet,
  makeTempDir,
  removeDir,
  runCommand,
} from "./process.js";
import type { CommandResult } from "./process.js";
import { toolPath } from "./tools.js";

/** A user in the API server's static token file. */
export interface ControlPlaneUser {
  name: string;
  /** Groups the user belongs to (besides system:authenticated, which every user gets). */
  groups?: readonly string[];
}

export interface StartControlPlaneOptions {
  /**
   * Non-admin users to put in the static token file (it cannot change after start-up), for
   * {@link ControlPlane.kubeconfigFor}. Default: one user `developer` with no groups and
   * therefore no permissions beyond discovery.
   */
  users?: readonly ControlPlaneUser[];
  /** How long to wait for etcd and then kube-apiserver's /readyz; default 120 s. */
  startTimeoutMs?: number;
}

export interface ToolRunOptions {
  /** Kubeconfig to use; default the admin's. */
  kubeconfig?: string;
  /** Written to stdin (e.g. a manifest for `kubectl apply -f -`). */
  input?: string;
  /** Default 60 s. */
  timeoutMs?: number;
}

/** etcd + kube-apiserver on loopback: a real Kubernetes API with RBAC, and no nodes. */
export interface ControlPlane {
  /** `https://127.0.0.1:PORT` */
  readonly server: string;
  /** Kubeconfig of `admin` (group system:masters). */
  readonly kubeconfigPath: string;
  /** The API server's self-signed serving certificate and its CA (PEM). */
  readonly caPath: string;
  /** The admin's bearer token. */
  readonly token: string;
  /** Temp dir holding etcd's data, certificates, kubeconfigs and both logs. */
  readonly dir: string;
  readonly etcdEndpoint: string;
  readonly apiserverLogPath: string;
  readonly etcdLogPath: string;
  /** Writes (once) and returns a kubeconfig for a user declared in `options.users`. */
  kubeconfigFor(user: string): string;
  /**
   * Creates the namespace and ServiceAccount if missing, asks the TokenRequest API for a
   * token, and returns a kubeconfig for `system:serviceaccount:<namespace>:<name>`.
   */
  serviceAccountKubeconfig(namespace: string, name: string): Promise<string>;
  /** Runs the pinned kubectl against this API server (admin unless `kubeconfig` is given). */
  kubectl(args: readonly string[], options?: ToolRunOptions): Promise<CommandResult>;
  /** Runs the pinned helm against this API server, with its own empty helm home. */
  helm(args: readonly string[], options?: ToolRunOptions): Promise<CommandResult>;
  /** Kills kube-apiserver and etcd and deletes {@link dir}. Idempotent. */
  stop(): Promise<void>;
}

const NAME = /^[a-z0-9]([-a-z0-9.:@]*[a-z0-9])?$/;

function tokenFileLine(token: string, name: string, groups: readonly string[]): string {
  return groups.length === 0 ? `${token},${name},${name}` : `${token},${name},${name},"${groups.join(",")}"`;
}

/**
 * Starts etcd and kube-apiserver from the builds of `make tools` and resolves once
 * /readyz is ok and the `default` namespace exists. No kubelet, scheduler or
 * controller-manager: objects are stored and validated, RBAC is enforced, but nothing
 * reconciles them (no pods run, namespaces are not finalized, ServiceAccounts get no
 * automatic token Secrets). Stop it with `t.after(() => cp.stop())`.
 */
export async function startControlPlane(options: StartControlPlaneOptions = {}): Promise<ControlPlane> {
  const etcdBinary = toolPath("etcd");
  const apiserverBinary = toolPath("kube-apiserver");
  const timeoutMs = options.startTimeoutMs ?? 120_000;
  const users = options.users ?? [{ name: "developer" }];
  for (const user of users) {
    if (!NAME.test(user.name) || user.name === "admin") {
      throw new Error(`startControlPlane: invalid user name ${JSON.stringify(user.name)} in options.users`);
    }
    for (const group of user.groups ?? []) {
      if (group.includes(",") || group.includes('"') || group === "") {
        throw new Error(`startControlPlane: invalid group ${JSON.stringify(group)} for user ${user.name}`);
      }
    }
  }

  const dir = makeTempDir("kube");
  const home = join(dir, "home");
  mkdirSync(home);
  const [etcdClientPort, etcdPeerPort, apiserverPort] = await freePorts(3);
  const etcdEndpoint = `http://127.0.0.1:${etcdClientPort}`;
  const etcdPeer = `http://127.0.0.1:${etcdPeerPort}`;
  const server = `https://127.0.0.1:${apiserverPort}`;

  const adminToken = randomBytes(24).toString("hex");
  const userTokens = new Map(users.map((user) => [user.name, randomBytes(24).toString("hex")]));
  const tokenFile = join(dir, "tokens.csv");
  writeFileSync(
    tokenFile,
    [
      tokenFileLine(adminToken, "admin", ["system:masters"]),
      ...users.map((user) => tokenFileLine(userTokens.get(user.name) ?? "", user.name, user.groups ?? [])),
    ].join("\n") + "\n",
    { mode: 0o600 },
  );
  // ES256 keys are quick to make; the API server signs and verifies ServiceAccount tokens with it.
  const serviceAccountKey = join(dir, "service-account.key");
  const serviceAccountPublicKey = join(dir, "service-account.pub");
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  writeFileSync(serviceAccountKey, privateKey.export({ type: "sec1", format: "pem" }), { mode: 0o600 });
  writeFileSync(serviceAccountPublicKey, publicKey.export({ type: "spki", format: "pem" }));

  const etcdLogPath = join(dir, "etcd.log");
  const apiserverLogPath = join(dir, "kube-apiserver.log");
  const certDir = join(dir, "certs");
  const caPath = join(certDir, "apiserver.crt");
  let etcd: ServerProcess | undefined;
  let apiserver: ServerProcess | undefined;
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    // SIGKILL: everything is thrown away, and a graceful API server shutdown costs a second.
    await apiserver?.kill();
    await etcd?.kill();
    removeDir(dir);
  };

  try {
    etcd = ServerProcess.start({
      name: "etcd",
      command: etcdBinary,
      args: [
        "--name=testkit",
        `--data-dir=${join(dir, "etcd")}`,
        `--listen-client-urls=${etcdEndpoint}`,
        `--advertise-client-urls=${etcdEndpoint}`,
        `--listen-peer-urls=${etcdPeer}`,
        `--initial-advertise-peer-urls=${etcdPeer}`,
        `--initial-cluster=testkit=${etcdPeer}`,
        // Test data is disposable: skipping fsync makes every write (and start-up) faster.
        "--unsafe-no-fsync",
        "--log-level=warn",
      ],
      env: { PATH: process.env["PATH"], HOME: home },
      logPath: etcdLogPath,
    });
    await etcd.waitUntil(
      async () => (await httpStatus(`${etcdEndpoint}/health`)) === 200,
      "health",
      timeoutMs,
    );

    apiserver = ServerProcess.start({
      name: "kube-apiserver",
      command: apiserverBinary,
      args: [
        `--etcd-servers=${etcdEndpoint}`,
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        // The lease reconciler refuses a loopback address; nothing here needs the endpoints.
        "--endpoint-reconciler-type=none",
        `--secure-port=${apiserverPort}`,
        `--cert-dir=${certDir}`,
        `--token-auth-file=${tokenFile}`,
        "--authorization-mode=RBAC",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        `--service-account-key-file=${serviceAccountPublicKey}`,
        `--service-account-signing-key-file=${serviceAccountKey}`,
        "--service-cluster-ip-range=10.96.0.0/24",
        "--enable-priority-and-fairness=false",
        "--profiling=false",
        "--v=0",
      ],
      env: { PATH: process.env["PATH"], HOME: home },
      logPath: apiserverLogPath,
    });
    await apiserver.waitUntil(
      async () => {
        const ca = readFileSync(caPath, "utf8");
        const ready = await httpsGet(`${server}/readyz`, { ca, token: adminToken });
        if (ready.status !== 200) return false;
        // /readyz can turn ok a moment before the bootstrap controller has made `default`.
        const namespace = await httpsGet(`${server}/api/v1/namespaces/default`, { ca, token: adminToken });
        return namespace.status === 200;
      },
      `/readyz (${server})`,
      timeoutMs,
    );
  } catch (error) {
    await stop();
    throw error;
  }

  const caPem = readFileSync(caPath, "utf8");
  const kubeconfigPath = writeKubeconfig(join(dir, "admin.kubeconfig"), {
    server,
    caPem,
    user: { name: "admin", token: adminToken },
  });

  const toolEnv = (kubeconfig: string): NodeJS.ProcessEnv => ({
    PATH: process.env["PATH"],
    HOME: home,
    KUBECONFIG: kubeconfig,
    HELM_CACHE_HOME: join(home, "helm-cache"),
    HELM_CONFIG_HOME: join(home, "helm-config"),
    HELM_DATA_HOME: join(home, "helm-data"),
  });
  // async, so a missing build rejects the call rather than throwing synchronously.
  const kubectl = async (args: readonly string[], run: ToolRunOptions = {}): Promise<CommandResult> =>
    runCommand(toolPath("kubectl"), args, {
      env: toolEnv(run.kubeconfig ?? kubeconfigPath),
      ...(run.input === undefined ? {} : { input: run.input }),
      ...(run.timeoutMs === undefined ? {} : { timeoutMs: run.timeoutMs }),
    });
  const helm = async (args: readonly string[], run: ToolRunOptions = {}): Promise<CommandResult> =>
    runCommand(toolPath("helm"), args, {
      env: toolEnv(run.kubeconfig ?? kubeconfigPath),
      ...(run.input === undefined ? {} : { input: run.input }),
      ...(run.timeoutMs === undefined ? {} : { timeoutMs: run.timeoutMs }),
    });

  return {
    server,
    kubeconfigPath,
    caPath,
    token: adminToken,
    dir,
    etcdEndpoint,
    apiserverLogPath,
    etcdLogPath,
    kubeconfigFor(user: string): string {
      const token = userTokens.get(user);
      if (token === undefined) {
        const known = [...userTokens.keys()].join(", ") || "(none)";
        throw new Error(
          `kubeconfigFor: no user ${JSON.stringify(user)} in the token file; declared users: ${known}. ` +
            "Declare it with startControlPlane({ users: [{ name, groups }] }).",
        );
      }
      return writeKubeconfig(join(dir, `user-${user}.kubeconfig`), {
        server,
        caPem,
        user: { name: user, token },
      });
    },
    async serviceAccountKubeconfig(namespace: string, name: string): Promise<string> {
      const manifest = {
        apiVersion: "v1",
        kind: "List",
        items: [
          { apiVersion: "v1", kind: "Namespace", metadata: { name: namespace } },
          { apiVersion: "v1", kind: "ServiceAccount", metadata: { name, namespace } },
        ],
      };
      const applied = await kubectl(["apply", "-f", "-"], { input: JSON.stringify(manifest) });
      if (applied.code !== 0)
        throw new Error(`serviceAccountKubeconfig: kubectl apply failed: ${applied.stderr}`);
      const created = await kubectl(["create", "token", name, "--namespace", namespace, "--duration=1h"]);
      if (created.code !== 0)
        throw new Error(`serviceAccountKubeconfig: kubectl create token failed: ${created.stderr}`);
      return writeKubeconfig(join(dir, `sa-${namespace}-${name}.kubeconfig`), {
        server,
        caPem,
        user: { name: `system:serviceaccount:${namespace}:${name}`, token: created.stdout.trim() },
        namespace,
      });
    },
    kubectl,
    helm,
    stop,
  };
}
