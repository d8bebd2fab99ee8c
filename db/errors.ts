import { ChatError } from "../chat/errors.ts";

/** postgres.js's own codes for a connection that could not be made or was lost. */
const CONNECTION_CODES = new Set([
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "EHOSTUNREACH",
]);

/** Turns whatever postgres.js threw into a ChatError; the query text never reaches a client. */
export function translateDatabaseError(error: unknown): ChatError {
  if (error instanceof ChatError) return error;
  const code = typeof error === "object" && error !== null && "code" in error
    ? String((error as { code: unknown }).code)
    : "";
  if (
    CONNECTION_CODES.has(code) || code.startsWith("08") || code === "57P01" ||
    code === "57P03" || code === "53300"
  ) {
    return new ChatError("unavailable", "the database is unavailable, retry", { cause: error });
  }
  // malformed ids and dangling references read as "no such thing"
  if (code === "22P02" || code === "23503") {
    return new ChatError("not_found", "not found", { cause: error });
  }
  return new ChatError("internal", "internal error", { cause: error });
}

/** Wraps every method of a store so that only ChatErrors leave it. */
export function withErrorTranslation<T extends object>(store: T): T {
  const wrapped: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(store)) {
    wrapped[name] = typeof value === "function"
      ? async (...args: unknown[]) => {
        try {
          return await value.apply(store, args);
        } catch (error) {
          throw translateDatabaseError(error);
        }
      }
      : value;
  }
  return wrapped as T;
}
