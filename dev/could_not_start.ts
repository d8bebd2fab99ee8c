import { isConnectionFailure } from "../db/errors.ts";

/**
 * Ends a development tool (dev, seed) whose service could not start. A database out of reach is
 * said in one line, as `deno task start` says it; anything else is a bug and keeps its stack.
 * Either way the exit is 1, and explicit: rethrown, a connection failure would reach the
 * service's handler of connections lost in the background (reportLostConnectionRejections),
 * which logs it as one and lets the tool end with 0, as if it had worked.
 */
export function couldNotStart(error: unknown): never {
  if (isConnectionFailure(error) && error instanceof Error) {
    console.error(`could not start: ${error.message}`);
  } else {
    console.error("could not start:", error);
  }
  Deno.exit(1);
}
