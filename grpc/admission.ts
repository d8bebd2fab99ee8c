import { type Metadata, ServerInterceptingCall, type ServerInterceptor } from "@grpc/grpc-js";
import { ADMIN_SERVICE } from "./proto.ts";
import { unauthenticated } from "./status.ts";

/**
 * The server interceptor that admits calls as their headers come, before grpc-js reads their
 * request message (which it holds, up to MAX_REQUEST_BYTES, until the whole of it has come and
 * the client has half-closed): a ChatAdmin call without the admin token is refused with
 * UNAUTHENTICATED at once, so a caller without it never has the server hold a byte of its
 * messages. The handlers check the token too.
 */
export function createAdmission(authorized: (metadata: Metadata) => boolean): ServerInterceptor {
  const adminPrefix = `/${ADMIN_SERVICE}/`;
  return (method, call) => {
    if (!method.path.startsWith(adminPrefix)) return new ServerInterceptingCall(call);
    const intercepting: ServerInterceptingCall = new ServerInterceptingCall(call, {
      start(next) {
        next({
          onReceiveMetadata(metadata, pass) {
            // not passed on: the handler never asks for the message, which is never read
            if (!authorized(metadata)) return intercepting.sendStatus({ ...unauthenticated() });
            pass(metadata);
          },
        });
      },
    });
    return intercepting;
  };
}
