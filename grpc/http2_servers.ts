import type { Server } from "@grpc/grpc-js";
import type { Http2Server } from "node:http2";

/**
 * Hands `take` each HTTP/2 server grpc-js makes for `server` from now on (one per address bound,
 * again after an unbind, see listener.ts), before it listens: grpc-js hands neither them nor their
 * sessions out, so its factory, not public, is wrapped. Throws if this grpc-js makes them
 * otherwise, so that an upgrade that changes it is found by the first test.
 */
export function followHttp2Servers(server: Server, take: (http2Server: Http2Server) => void) {
  const internals = server as unknown as {
    createHttp2Server?: (...args: unknown[]) => Http2Server;
  };
  const create = internals.createHttp2Server;
  if (typeof create !== "function") {
    throw new Error("this grpc-js makes its HTTP/2 servers otherwise: update http2_servers.ts");
  }
  internals.createHttp2Server = function (this: unknown, ...args: unknown[]) {
    const http2Server = create.apply(this, args);
    take(http2Server);
    return http2Server;
  };
}
