import type { ServerInterceptingCallInterface } from "@grpc/grpc-js";
import type { ServerHttp2Stream } from "node:http2";

/**
 * The HTTP/2 stream of a grpc-js server call, as an interceptor is handed it: grpc-js keeps it in
 * the base call (`stream`, not public), which the first interceptor gets and each later one gets
 * wrapped in the intercepting calls before it (`nextCall`). Undefined if grpc-js keeps it
 * otherwise: what needs it then does without.
 */
export function streamOf(call: ServerInterceptingCallInterface): ServerHttp2Stream | undefined {
  let inner: unknown = call;
  for (let depth = 0; depth < 8 && typeof inner === "object" && inner !== null; depth++) {
    const { stream, nextCall } = inner as { stream?: ServerHttp2Stream; nextCall?: unknown };
    if (stream && typeof stream.close === "function") return stream;
    inner = nextCall;
  }
  return undefined;
}
