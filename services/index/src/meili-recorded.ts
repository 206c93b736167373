// A local HTTP server (node:http on 127.0.0.1:0) answering with responses shaped like
// Meilisearch's documented API: enqueued task summaries (202), task objects that go
// enqueued → processing → succeeded/failed on successive GET /tasks/:uid, error objects
// {message, code, type, link}, and search results with hits/_formatted/estimatedTotalHits.
// It is NOT Meilisearch: it does not search. Tests script its answers and assert what the
// adapter sent. See README.md ("Meilisearch: what is tested against what").
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** One request as the adapter sent it. */
export interface RecordedRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage["headers"];
  body: string;
}

/** How an enqueued task ends. */
export type TaskOutcome =
  | { status: "succeeded"; details?: Record<string, unknown> }
  | { status: "failed"; code: string; message: string; details?: Record<string, unknown> }
  | { status: "never" };

/** A scripted answer: status and JSON body. */
export interface Reply {
  status: number;
  body: unknown;
}

/** The documented error object. */
export function meiliError(code: string, message: string, type = "invalid_request"): Record<string, string> {
  return { message, code, type, link: `https://docs.meilisearch.com/errors#${code}` };
}

interface TaskRecord {
  uid: number;
  indexUid: string | null;
  type: string;
  enqueuedAt: string;
  outcome: TaskOutcome;
  polls: number;
}

/** A running recorded-response server. */
export interface RecordedMeili {
  url: string;
  requests: RecordedRequest[];
  /** Task polls seen per task uid. */
  polls: Map<number, number>;
  /** Sets how the next tasks of a type end (default: succeeded). */
  outcomeFor(type: string, outcome: TaskOutcome): void;
  /** Scripts the answer to `METHOD /path` (exact path, without query). */
  reply(method: string, path: string, answer: Reply | ((request: RecordedRequest) => Reply)): void;
  /** Requests to `METHOD /path`. */
  sent(method: string, path: string): RecordedRequest[];
  close(): Promise<void>;
}

const TASK_TYPE_BY_ROUTE: Array<[string, RegExp, string]> = [
  ["POST", /^\/indexes$/, "indexCreation"],
  ["PATCH", /^\/indexes\/[^/]+\/settings$/, "settingsUpdate"],
  ["POST", /^\/indexes\/[^/]+\/documents$/, "documentAdditionOrUpdate"],
  ["PUT", /^\/indexes\/[^/]+\/documents$/, "documentAdditionOrUpdate"],
  ["POST", /^\/indexes\/[^/]+\/documents\/delete$/, "documentDeletion"],
  ["DELETE", /^\/indexes\/[^/]+$/, "indexDeletion"],
  ["DELETE", /^\/tasks$/, "taskDeletion"],
];

/** Starts the server; `apiKey`, when given, is required as `Authorization: Bearer`. */
export async function startRecordedMeili(apiKey?: string): Promise<RecordedMeili> {
  const requests: RecordedRequest[] = [];
  const polls = new Map<number, number>();
  const tasks = new Map<number, TaskRecord>();
  const outcomes = new Map<string, TaskOutcome>();
  const replies = new Map<string, Reply | ((request: RecordedRequest) => Reply)>();
  let nextUid = 0;

  const taskObject = (task: TaskRecord): Record<string, unknown> => {
    const status =
      task.outcome.status === "never" || task.polls <= 1
        ? "enqueued"
        : task.polls === 2
          ? "processing"
          : task.outcome.status;
    const finished = status === "succeeded" || status === "failed";
    return {
      uid: task.uid,
      batchUid: status === "enqueued" ? null : task.uid,
      indexUid: task.indexUid,
      status,
      type: task.type,
      canceledBy: null,
      details: "details" in task.outcome ? (task.outcome.details ?? {}) : {},
      error:
        finished && task.outcome.status === "failed"
          ? meiliError(task.outcome.code, task.outcome.message)
          : null,
      duration: finished ? "PT0.005S" : null,
      enqueuedAt: task.enqueuedAt,
      startedAt: status === "enqueued" ? null : task.enqueuedAt,
      finishedAt: finished ? new Date().toISOString() : null,
    };
  };

  const answer = (request: RecordedRequest): Reply => {
    if (apiKey !== undefined) {
      const header = request.headers.authorization;
      if (header === undefined) {
        return {
          status: 401,
          body: meiliError(
            "missing_authorization_header",
            "The Authorization header is missing. It must use the bearer authorization method.",
            "auth",
          ),
        };
      }
      if (header !== `Bearer ${apiKey}`) {
        return {
          status: 403,
          body: meiliError("invalid_api_key", "The provided API key is invalid.", "auth"),
        };
      }
    }
    const scripted = replies.get(`${request.method} ${request.path}`);
    if (scripted !== undefined) return typeof scripted === "function" ? scripted(request) : scripted;
    const taskMatch = /^\/tasks\/(\d+)$/.exec(request.path);
    if (request.method === "GET" && taskMatch !== null) {
      const task = tasks.get(Number(taskMatch[1]));
      if (task === undefined) {
        return { status: 404, body: meiliError("task_not_found", `Task \`${taskMatch[1]}\` not found.`) };
      }
      task.polls += 1;
      polls.set(task.uid, task.polls);
      return { status: 200, body: taskObject(task) };
    }
    for (const [method, pattern, type] of TASK_TYPE_BY_ROUTE) {
      if (request.method !== method || !pattern.test(request.path)) continue;
      const indexUid =
        type === "indexCreation"
          ? ((JSON.parse(request.body) as { uid: string }).uid ?? null)
          : type === "taskDeletion"
            ? null
            : decodeURIComponent(request.path.split("/")[2] ?? "");
      const task: TaskRecord = {
        uid: nextUid,
        indexUid,
        type,
        enqueuedAt: new Date().toISOString(),
        outcome: outcomes.get(type) ?? { status: "succeeded" },
        polls: 0,
      };
      nextUid += 1;
      tasks.set(task.uid, task);
      return {
        status: 202,
        body: { taskUid: task.uid, indexUid, status: "enqueued", type, enqueuedAt: task.enqueuedAt },
      };
    }
    return {
      status: 404,
      body: meiliError("not_found", `no recorded response for ${request.method} ${request.path}`),
    };
  };

  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const url = new URL(req.url ?? "/", "http://localhost");
      const request: RecordedRequest = {
        method: req.method ?? "GET",
        path: url.pathname,
        query: url.searchParams,
        headers: req.headers,
        body: Buffer.concat(chunks).toString("utf8"),
      };
      requests.push(request);
      const { status, body } = answer(request);
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    polls,
    outcomeFor(type, outcome) {
      outcomes.set(type, outcome);
    },
    reply(method, path, reply) {
      replies.set(`${method} ${path}`, reply);
    },
    sent(method, path) {
      return requests.filter((request) => request.method === method && request.path === path);
    },
    close() {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
