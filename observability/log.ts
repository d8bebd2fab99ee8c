import {
  configure,
  getJsonLinesFormatter,
  getLogger,
  type Logger,
  reset,
  type Sink,
} from "@logtape/logtape";
import { redactUrlsIn } from "./redact.ts";

/** The levels `LOG_LEVEL` accepts, in logtape's names. */
export type LogLevelSetting = "debug" | "info" | "warning" | "error";

/** Every logger of the service sits under this category, so one setting governs them all. */
const ROOT = "chat";

/**
 * The logger of one part of the service: `logger("ws")` is the category `chat.ws`. Safe to
 * call before logging is configured; lines are dropped until it is (tests run quiet).
 */
export function logger(...category: string[]): Logger {
  return getLogger([ROOT, ...category]);
}

export interface LoggingOptions {
  /** Where the bytes of each line go; defaults to standard output, written synchronously. */
  write?: (bytes: Uint8Array) => void;
}

/**
 * Sends every line of the service, as one JSON object per line with its properties at the
 * top level, to standard output. Writes are synchronous, so nothing logged before an exit
 * is lost. Returns the undo (for tests).
 */
export async function configureLogging(
  level: LogLevelSetting,
  options: LoggingOptions = {},
): Promise<AsyncDisposable> {
  await configure({
    reset: true,
    sinks: { jsonl: jsonLinesSink(options.write ?? writeStdout) },
    loggers: [
      { category: [ROOT], sinks: ["jsonl"], lowestLevel: level },
      // logtape's own diagnostics: only when something is wrong with logging itself
      { category: ["logtape", "meta"], sinks: ["jsonl"], lowestLevel: "warning" },
    ],
  });
  return { [Symbol.asyncDispose]: () => reset() };
}

/** The line's own fields, which a property of the same name would replace in the flattened line. */
const LINE_FIELDS = new Set(["@timestamp", "level", "message", "logger"]);

function jsonLinesSink(write: (bytes: Uint8Array) => void): Sink {
  const format = getJsonLinesFormatter({ properties: "flatten", message: "rendered" });
  const encoder = new TextEncoder();
  return (record) => {
    const clashes = Object.keys(record.properties).some((key) => LINE_FIELDS.has(key));
    write(
      encoder.encode(
        format(clashes ? { ...record, properties: renamed(record.properties) } : record),
      ),
    );
  };
}

/** A property named as a line field keeps its value under `property_<name>`. */
function renamed(properties: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(properties).map(([key, value]) => [
      LINE_FIELDS.has(key) ? `property_${key}` : key,
      value,
    ]),
  );
}

/**
 * An error nothing caught (a thrown exception or an unhandled rejection) ends the process with
 * one FATAL log line and exit 1, where Deno would print a text stack that a log collector reads
 * as many lines. A rejection an earlier listener handled (`preventDefault`) is left to it, so
 * this is installed after those. The stack goes without its first line, which repeats the
 * message that `errorFields` may withhold.
 */
export function exitOnUncaughtErrors(): void {
  const end = (event: Event, error: unknown) => {
    if (event.defaultPrevented) return;
    event.preventDefault();
    const stack = error instanceof Error && error.stack
      ? error.stack.split("\n").filter((line) => /^\s+at /.test(line)).map((line) => line.trim())
      : [];
    logger().fatal("uncaught error: exiting", { ...errorFields(error), stack });
    Deno.exit(1);
  };
  globalThis.addEventListener("error", (event) => end(event, event.error));
  globalThis.addEventListener("unhandledrejection", (event) => end(event, event.reason));
}

function writeStdout(bytes: Uint8Array): void {
  let written = 0;
  while (written < bytes.length) written += Deno.stdout.writeSync(bytes.subarray(written));
}

/**
 * `text` as a log message that is printed as it is: logtape reads `{name}` in a message as the
 * property `name` (`undefined` when there is none), so a message quoting a value of someone
 * else's, such as a setting with an unexpanded `${VAR}`, has its braces doubled.
 */
export function literalMessage(text: string): string {
  return text.replaceAll("{", "{{").replaceAll("}", "}}");
}

/**
 * The loggable part of an error and its causes: name, code and message (the credentials of a
 * URL it quotes masked). Never the other properties, which for postgres.js errors include the
 * query and its parameters (message content), nor the text of a JSON syntax error, which quotes
 * its input.
 */
export function errorFields(error: unknown): { error: ErrorSummary; causes?: ErrorSummary[] } {
  const chain: ErrorSummary[] = [];
  let current: unknown = error;
  while (current !== undefined && current !== null && chain.length < 5) {
    chain.push(summarise(current));
    current = current instanceof Error ? current.cause : undefined;
  }
  const [first, ...causes] = chain;
  return causes.length > 0 ? { error: first!, causes } : { error: first! };
}

export interface ErrorSummary {
  name: string;
  message: string;
  code?: string;
}

function summarise(error: unknown): ErrorSummary {
  if (!(error instanceof Error)) return { name: typeof error, message: "(not an Error)" };
  const code = "code" in error && (typeof error.code === "string" || typeof error.code === "number")
    ? String(error.code)
    : undefined;
  // a URL quoted in a message (a failed fetch names the one it asked) loses its credentials
  const message = error instanceof SyntaxError
    ? "(withheld: it may quote its input)"
    : redactUrlsIn(error.message);
  return code === undefined ? { name: error.name, message } : { name: error.name, message, code };
}
