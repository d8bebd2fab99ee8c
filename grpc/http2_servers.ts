import type { Server } from "@grpc/grpc-js";
import type { Http2Server } from "node:http2";

/**
 * Connections the admin plane holds at once, by default: its clients are a few internal systems,
 * each multiplexing its calls and streams over one connection, and health checks and grpcurl,
 * each holding one for a moment. Each holds a file descriptor (five behind the TLS front) out of
 * those the WebSocket plane counts on (open_files.ts keeps this many aside): a tool that opens a
 * connection per call in a loop, without closing them, would otherwise take descriptors until the
 * process had none. One past it is closed as soon as it is accepted; the client sees it fail and
 * connects again later.
 */
export const MAX_CONNECTIONS = 32;

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
