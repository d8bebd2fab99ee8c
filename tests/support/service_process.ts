import assert from "node:assert/strict";
import postgres from "postgres";
import { createPostgresStore } from "../../db/postgres_store.ts";
import { freePort } from "./free_port.ts";
import { within } from "./wait.ts";

/** The repository root: `deno task` runs from here. */
export const REPO_ROOT = new URL("../../", import.meta.url);

// deno-lint-ignore no-explicit-any
export type LogLine = Record<string, any>;

/** The service as a real process: `deno task start`, exactly what the container runs. */
export interface ServiceProcess extends AsyncDisposable {
  /** The pid of `deno task`, whose child the service process is. */
  readonly pid: number;
  readonly port: number;
  readonly httpUrl: string;
  readonly wsUrl: string;
  /** Every line printed so far, standard output and error together. */
  readonly lines: readonly string[];
  /** The lines that are JSON log records. */
  logs(): LogLine[];
  /** The first log record matching `predicate`, waiting up to `ms` for it. */
  waitForLog(predicate: (line: LogLine) => boolean, what: string, ms?: number): Promise<LogLine>;
  /**
   * Sends a signal to `deno task`, which hands it on to the service; SIGKILL, which it cannot
   * hand on, goes to the service process itself too (its pid is in the `listening` line).
   */
  kill(signal: Deno.Signal): void;
  /** The exit status, once the process and its output have ended. */
  readonly status: Promise<Deno.CommandStatus>;
}

/**
 * Variables of the test's own environment that a child `deno` (`deno task`, `deno run`)
 * itself needs to find its cache, and NO_COLOR.
 */
export function baseEnvironment(): Record<string, string> {
  const env: Record<string, string> = { NO_COLOR: "1" };
  for (const name of ["PATH", "HOME", "DENO_DIR", "XDG_CACHE_HOME"]) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  return env;
}

/**
 * Runs `deno task start` with exactly `env` (nothing else of the test's environment leaks
 * in) on a free port, unless `env` names one. With `waitUntilListening` (the default)
 * resolves once the service logged that it listens. With `maxOpenFiles`, the process may hold
 * no more file descriptors than that (`prlimit`, which runs the command in its own place).
 */
export async function startServiceProcess(
  env: Record<string, string>,
  options: { waitUntilListening?: boolean; maxOpenFiles?: number } = {},
): Promise<ServiceProcess> {
  const port = env.PORT === undefined ? freePort() : Number(env.PORT);
  const command = [Deno.execPath(), "task", "start"];
  if (options.maxOpenFiles !== undefined) {
    command.unshift("prlimit", `--nofile=${options.maxOpenFiles}:${options.maxOpenFiles}`);
  }
  const child = new Deno.Command(command[0]!, {
    args: command.slice(1),
    cwd: REPO_ROOT,
    clearEnv: true,
    env: { ...baseEnvironment(), HOST: "127.0.0.1", PORT: String(port), ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();

  const lines: string[] = [];
  const waiters = new Set<() => void>();
  let ended = false;
  const wake = () => {
    for (const waiter of [...waiters]) waiter();
  };
  const collect = async (stream: ReadableStream<Uint8Array>) => {
    let partial = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      const parts = (partial + chunk).split("\n");
      partial = parts.pop()!;
      lines.push(...parts);
      wake();
    }
    if (partial) lines.push(partial);
  };
  const output = Promise.all([collect(child.stdout), collect(child.stderr)]);
  const status = output.then(() => child.status).finally(() => {
    ended = true;
    wake();
  });

  const logs = () => lines.flatMap((line) => parseLog(line));
  const waitForLog = (predicate: (line: LogLine) => boolean, what: string, ms = 10_000) => {
    let waiter = () => {};
    const found = new Promise<LogLine>((resolve, reject) => {
      waiter = () => {
        const line = logs().find(predicate);
        if (line) resolve(line);
        else if (ended) {
          reject(new Error(`the service exited before ${what}:\n${lines.join("\n")}`));
        }
      };
      waiters.add(waiter);
      waiter();
    });
    return within(found, ms, what).finally(() => waiters.delete(waiter));
  };

  const service: ServiceProcess = {
    pid: child.pid,
    port,
    httpUrl: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}`,
    lines,
    logs,
    waitForLog,
    kill(signal) {
      if (ended) return;
      const pid = logs().find((line) => line.message === "listening")?.pid;
      if (signal === "SIGKILL" && typeof pid === "number") {
        try {
          Deno.kill(pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
      try {
        child.kill(signal);
      } catch {
        // already gone
      }
    },
    status,
    async [Symbol.asyncDispose]() {
      // SIGTERM first: the service shuts down as it would in production
      service.kill("SIGTERM");
      try {
        await within(status, 20_000, "the service to exit");
      } catch (error) {
        service.kill("SIGKILL");
        await status;
        throw error;
      }
    },
  };

  if (options.waitUntilListening ?? true) {
    try {
      // the first start of a test run may still compile the module graph
      await service.waitForLog(
        (line) => line.message === "listening",
        "the service to listen",
        30_000,
      );
    } catch (error) {
      await service[Symbol.asyncDispose]();
      throw error;
    }
  }
  return service;
}

/** Runs `deno task start` to its end (a refused configuration) and returns what it printed. */
export async function runServiceProcess(
  env: Record<string, string>,
): Promise<{ code: number; lines: readonly string[] }> {
  await using service = await startServiceProcess(env, { waitUntilListening: false });
  const status = await within(service.status, 30_000, "the service to exit");
  return { code: status.code, lines: service.lines };
}

/**
 * The service's own lines: what Deno prints about the task, and about setting up
 * node_modules on a first run (progress lines, a boxed warning, and the wait for another
 * process's lock on it, when tests start several at once), is left out.
 */
export function serviceLines(lines: readonly string[]): string[] {
  return lines.filter((line) =>
    line.trim() !== "" &&
    !/^(Task start |Initialize |Download |Blocking waiting for file lock |[╭│╰])/.test(line)
  );
}

/**
 * How long the process's own shutdown took, from the signal it heard ("shutting down") to its
 * last step done ("stopped"), by its log's timestamps: what a test measures from outside also
 * holds the signal's way through `deno task` and the test's own event loop.
 */
export function ownShutdownMs(service: ServiceProcess): number {
  const at = (message: string) => {
    const line = service.logs().find((line) => line.message === message);
    assert.ok(line, `no "${message}" line`);
    return Date.parse(line["@timestamp"]);
  };
  return at("stopped") - at("shutting down");
}

function parseLog(line: string): LogLine[] {
  if (!line.startsWith("{")) return [];
  try {
    return [JSON.parse(line)];
  } catch {
    return [];
  }
}

/**
 * The settings of a real deployment for one test: the admin plane on, a short shutdown
 * deadline, debug logs (so every socket line can be checked), fresh secrets.
 */
export function serviceEnvironment(
  options: { databaseUrl: string; natsUrl?: string },
): Record<string, string> {
  return {
    DATABASE_URL: options.databaseUrl,
    DATABASE_POOL_SIZE: "4",
    JWT_SECRET: crypto.randomUUID() + crypto.randomUUID(),
    GRPC_ENABLED: "1",
    GRPC_PORT: String(freePort()),
    GRPC_ADMIN_TOKEN: crypto.randomUUID(),
    LOG_LEVEL: "debug",
    SHUTDOWN_TIMEOUT: "5",
    ...(options.natsUrl === undefined ? {} : { NATS_URL: options.natsUrl }),
  };
}

/** Creates the chat of a pair directly in the database (the process has no in-test API). */
export async function createChatIn(
  databaseUrl: string,
  userId: string,
  vendorId: string,
): Promise<string> {
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  try {
    return (await createPostgresStore(sql).createChat(userId, vendorId)).chat.id;
  } finally {
    await sql.end();
  }
}

/** The service's `/metrics` text. */
export async function metricsOf(service: ServiceProcess): Promise<string> {
  const response = await fetch(`${service.httpUrl}/metrics`);
  if (!response.ok) throw new Error(`/metrics answered ${response.status}`);
  return await response.text();
}

/** The value of one series (`name{labels}` exactly as exposed) in a metrics text; 0 if absent. */
export function sample(text: string, series: string): number {
  const line = text.split("\n").find((candidate) => candidate.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}
