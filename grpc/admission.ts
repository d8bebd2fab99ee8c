import {
  type Metadata,
  ServerInterceptingCall,
  type ServerInterceptor,
  status as Status,
} from "@grpc/grpc-js";
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

/**
 * The server interceptor that admits calls as their headers come, before grpc-js reads their
 * request message (which it holds until the whole of it has come and the client has
 * half-closed). A ChatAdmin call without the admin token is refused with UNAUTHENTICATED at
 * once, so a caller without it never has the server hold a byte of its messages (the handlers
 * check the token too). Other calls with a single request message (health) may wait for it
 * `maxWaiting` at a time (MAX_WAITING_CALLS); one more cuts the one that has waited longest
 * with RESOURCE_EXHAUSTED, so that calls sent whole are still answered while a client holds
 * its calls open. Streams of requests (reflection) are bounded by their service.
 */
export function createAdmission(
  authorized: (metadata: Metadata) => boolean,
  options: { maxWaiting?: number } = {},
): ServerInterceptor {
  const maxWaiting = options.maxWaiting ?? MAX_WAITING_CALLS;
  const adminPrefix = `/${ADMIN_SERVICE}/`;
  /** The calls waiting for their request message, the longest waiting first. */
  const waiting = new Set<ServerInterceptingCall>();
  const cutShort = {
    code: Status.RESOURCE_EXHAUSTED,
    details: "too many calls are waiting for their request message; send it whole",
  };
  return (method, call) => {
    const admin = method.path.startsWith(adminPrefix);
    const waits = !admin && !method.requestStream;
    if (!admin && !waits) return new ServerInterceptingCall(call);
    const intercepting: ServerInterceptingCall = new ServerInterceptingCall(call, {
      start(next) {
        next({
          onReceiveMetadata(metadata, pass) {
            // not passed on: the handler never asks for the message, which is never read
            if (admin && !authorized(metadata)) return intercepting.sendStatus(unauthenticated());
            if (waits) {
              if (waiting.size >= maxWaiting) {
                const [longest] = waiting;
                waiting.delete(longest!);
                longest!.sendStatus(cutShort);
              }
              waiting.add(intercepting);
            }
            pass(metadata);
          },
          onReceiveHalfClose(pass) {
            waiting.delete(intercepting);
            pass();
          },
          onCancel() {
            waiting.delete(intercepting);
          },
        });
      },
      sendStatus(status, pass) {
        waiting.delete(intercepting);
        pass(status);
      },
    });
    return intercepting;
  };
}
