import {
  type Metadata,
  ServerInterceptingCall,
  type ServerInterceptingCallInterface,
  type ServerInterceptor,
  status as Status,
} from "@grpc/grpc-js";
import http2 from "node:http2";
import { streamOf } from "./call_stream.ts";
import { ADMIN_SERVICE } from "./proto.ts";
import { unauthenticated } from "./status.ts";

/**
 * Calls of callers without a token (health, and anything not ChatAdmin) that may wait for their
 * request message at once, by default. grpc-js holds what came of a message (up to
 * MAX_REQUEST_BYTES) and the call's state (about 30 KiB) until the whole of it has come and the
 * client has half-closed, which a client may put off for good: without a bound, one connection
 * opening such calls could take the process's memory (10,000 of them: 600 MB). A request whose
 * message comes whole at once, as every client sends it, waits for no time.
 */
export const MAX_WAITING_CALLS = 200;

export interface Admission {
  /** The server interceptor. */
  interceptor: ServerInterceptor;
  /**
   * Ends the calls still waiting for their request message with UNAVAILABLE, and those that
   * start from now on: a call whose client never finishes its request would otherwise hold the
   * server's graceful shutdown until it is forced.
   */
  close(): void;
}

/**
 * Admits calls as their headers come, before grpc-js reads their request message (which it
 * holds until the whole of it has come and the client has half-closed). A ChatAdmin call without
 * the admin token is refused with UNAUTHENTICATED at once, so a caller without it never has the
 * server hold a byte of its messages (the handlers check the token too). Other calls with a
 * single request message (health) may wait for it `maxWaiting` at a time (MAX_WAITING_CALLS); one
 * more cuts the one that has waited longest with RESOURCE_EXHAUSTED, so that calls sent whole are
 * still answered while a client holds its calls open. Streams of requests (reflection) are
 * bounded by their service, and ended by it at shutdown.
 */
export function createAdmission(
  authorized: (metadata: Metadata) => boolean,
  options: { maxWaiting?: number } = {},
): Admission {
  const maxWaiting = options.maxWaiting ?? MAX_WAITING_CALLS;
  const adminPrefix = `/${ADMIN_SERVICE}/`;
  /** Every call waiting for its request message. */
  const waiting = new Set<ServerInterceptingCall>();
  /** Those of callers without a token, the longest waiting first. */
  const anonymous = new Set<ServerInterceptingCall>();
  let closed = false;
  const cutShort = {
    code: Status.RESOURCE_EXHAUSTED,
    details: "too many calls are waiting for their request message; send it whole",
  };
  const shuttingDown = {
    code: Status.UNAVAILABLE,
    details: "the server is shutting down; call again",
  };
  const done = (call: ServerInterceptingCall) => {
    waiting.delete(call);
    anonymous.delete(call);
  };

  /** Counts `call`, a call without a token, as waiting if it still is; one past the bound cuts. */
  function stillWaiting(call: ServerInterceptingCall) {
    if (!waiting.has(call)) return;
    if (anonymous.size >= maxWaiting) {
      const [longest] = anonymous;
      done(longest!);
      longest!.sendStatus(cutShort);
    }
    anonymous.add(call);
  }

  /**
   * Ends the HTTP/2 stream of a call answered before its client finished its request: grpc-js
   * sends the status and leaves the stream half open, holding it (and the session's graceful
   * close) until the client ends its side, which a client that never finishes its request never
   * does. RST_STREAM with NO_ERROR, after the status, is how HTTP/2 says "stop sending" (RFC
   * 9113, 8.1).
   */
  function endStream(call: ServerInterceptingCallInterface) {
    const stream = streamOf(call);
    if (!stream) return;
    setImmediate(() => {
      if (!stream.closed && !stream.destroyed) stream.close(http2.constants.NGHTTP2_NO_ERROR);
    });
  }

  const interceptor: ServerInterceptor = (method, call) => {
    const admin = method.path.startsWith(adminPrefix);
    if (method.requestStream) return new ServerInterceptingCall(call);
    let halfClosed = false;
    const intercepting: ServerInterceptingCall = new ServerInterceptingCall(call, {
      start(next) {
        next({
          onReceiveMetadata(metadata, pass) {
            // not passed on: the handler never asks for the message, which is never read
            if (admin && !authorized(metadata)) return intercepting.sendStatus(unauthenticated());
            if (closed) return intercepting.sendStatus(shuttingDown);
            waiting.add(intercepting);
            // counted a turn later, if it still waits then: grpc-js reads a call's message a turn
            // after its headers, so that the headers of calls sent together on one connection
            // all come before any of their messages is read, and counting them at once would cut
            // calls sent whole (250 health checks at once: 50 cut)
            if (!admin) setImmediate(() => stillWaiting(intercepting));
            pass(metadata);
          },
          onReceiveHalfClose(pass) {
            halfClosed = true;
            done(intercepting);
            pass();
          },
          onCancel() {
            done(intercepting);
          },
        });
      },
      sendStatus(status, pass) {
        done(intercepting);
        pass(status);
        if (!halfClosed) endStream(call);
      },
    });
    return intercepting;
  };

  return {
    interceptor,
    close() {
      closed = true;
      for (const call of [...waiting]) {
        done(call);
        call.sendStatus(shuttingDown);
      }
    },
  };
}
