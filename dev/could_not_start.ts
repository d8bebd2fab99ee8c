import postgres from "postgres";
import { ChatError } from "../chat/errors.ts";
import { isConnectionFailure } from "../db/errors.ts";

/**
 * Ends a command-line tool (dev, seed, migrate) that could not do its work: `could not <doing>:`
 * and the reason. A database out of reach or refusing the session (or one lost on the way, which
 * the service reports as an `unavailable` ChatError) is said in one line, as `deno task start`
 * says it; anything else is a bug and keeps its stack. Either way the exit is 1, and explicit:
 * rethrown, a connection failure would reach the service's handler of connections lost in the
 * background (reportLostConnectionRejections), which logs it as one and lets the tool end with
 * 0, as if it had worked.
 */
export function couldNot(doing: string, error: unknown): never {
  const line = oneLine(error);
  if (line === undefined) console.error(`could not ${doing}:`, error);
  else console.error(`could not ${doing}: ${line}`);
  Deno.exit(1);
}

/**
 * {@link couldNot}, once `cleanUp` (closing what the tool opened) has run: the tool's error is the
 * one told, even if the clean-up fails too.
 */
export async function couldNotAfter(
  doing: string,
  error: unknown,
  cleanUp: () => Promise<unknown>,
): Promise<never> {
  try {
    await cleanUp();
  } finally {
    couldNot(doing, error);
  }
}

/** {@link couldNot} for a service that could not start. */
export function couldNotStart(error: unknown): never {
  couldNot("start", error);
}

/**
 * The line that says a database problem, or undefined for anything else (a bug). A FATAL error
 * is the database refusing the session: a database or role that does not exist, a password.
 */
function oneLine(error: unknown): string | undefined {
  if (isConnectionFailure(error) && error instanceof Error) return error.message;
  if (error instanceof postgres.PostgresError && error.severity === "FATAL") return error.message;
  if (!(error instanceof ChatError) || error.code !== "unavailable") return undefined;
  const cause = error.cause;
  return cause instanceof Error && isConnectionFailure(cause)
    ? `${error.message} (${cause.message})`
    : error.message;
}
