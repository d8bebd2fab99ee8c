import { ChatError } from "../chat/errors.ts";
import { translateDatabaseError } from "../db/errors.ts";
import { errorFields, logger } from "../observability/log.ts";

/** Every failure that is reported rather than thrown ends here, as one log line. */
export function logError(error: unknown, context: string, fields: Record<string, unknown> = {}) {
  const properties = { context, ...fields, ...errorFields(error) };
  // a dependency that is away for a moment is a warning; the rest is a fault
  // `context` is always one of our own words, never input
  if (error instanceof ChatError && error.retryable) logger().warn(context, properties);
  else logger().error(`${context} failed`, properties);
}

/** A database connection that failed with no query to reject (reportLostConnectionRejections). */
export function logLostConnection(error: unknown) {
  logError(translateDatabaseError(error), "database connection lost in the background");
}
