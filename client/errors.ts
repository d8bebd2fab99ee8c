import type { ErrorCode, ReceivedFrameOf } from "./received_frames.ts";

/**
 * The server refused an action: its `error` frame as an exception. `retryable` is true for
 * `unavailable` and `rate_limited`, where the same request may succeed later. `code` is kept as
 * the server sent it, also when this client does not know it (a later server's).
 */
export class RequestError extends Error {
  override readonly name = "RequestError";
  readonly code: ErrorCode;
  readonly action: string;
  readonly issues: ReadonlyArray<{ path: string; message: string }>;
  readonly retryable: boolean;

  constructor(frame: Omit<ReceivedFrameOf<"error">, "type">, action: string) {
    super(`${action}: ${frame.code}: ${frame.message}`);
    this.code = frame.code;
    this.action = action;
    this.issues = frame.issues ?? [];
    this.retryable = frame.code === "unavailable" || frame.code === "rate_limited";
  }
}

/**
 * No `ack` or `error` came within the timeout while the request was on an open socket. The
 * server may still have done it: a `send_message` can be sent again with the same
 * `client_id` (`clientId` here) without making a second message.
 */
export class RequestTimeoutError extends Error {
  override readonly name = "RequestTimeoutError";
  readonly action: string;
  readonly timeoutMs: number;
  readonly clientId: string | undefined;

  constructor(action: string, timeoutMs: number, clientId?: string) {
    super(`${action}: no reply within ${timeoutMs} ms`);
    this.action = action;
    this.timeoutMs = timeoutMs;
    this.clientId = clientId;
  }
}

/**
 * The socket closed after the request was written and before its reply, so whether it was
 * done is unknown. Sends never end this way: they stay in the outbox and are written again.
 */
export class ConnectionLostError extends Error {
  override readonly name = "ConnectionLostError";
  readonly action: string;
  readonly retryable = true;

  constructor(action: string, options: { cause?: unknown } = {}) {
    super(`${action}: the connection was lost before the reply`, options);
    this.action = action;
  }
}

/**
 * The client stopped for good: `close()` was called (code 1000), or the server closed with a
 * code after which reconnecting cannot help (4401 token, unless an expired one can be
 * renewed; 4403 forbidden; 4408 operator).
 */
export class ClientClosedError extends Error {
  override readonly name = "ClientClosedError";
  readonly code: number;
  readonly reason: string;

  constructor(code: number, reason: string) {
    super(`the chat client is closed (${code}${reason ? ` ${reason}` : ""})`);
    this.code = code;
    this.reason = reason;
  }
}
