import type { ServerHttp2Session } from "node:http2";

/**
 * Connections the admin plane holds at once, by default: its clients are a few internal systems,
 * each multiplexing its calls and streams over one connection, and health checks and grpcurl,
 * each holding one for a moment. Each holds a file descriptor (five behind the TLS front) out of
 * those the WebSocket plane counts on (open_files.ts keeps this many aside): a tool that opens a
 * connection per call in a loop, without closing them, would otherwise take descriptors until the
 * process had none.
 */
export const MAX_CONNECTIONS = 32;

interface Followed {
  session: ServerHttp2Session;
  openStreams: number;
  /** When its last stream ended, or it began. */
  idleSince: number;
}

/**
 * Holds the connections to `max` (MAX_CONNECTIONS). One past it closes the connection idle (no
 * call open) the longest, so that connections a tool leaks give way to a health check or a tool
 * that comes next, rather than lock them out until the idle timeout; when every other one has a
 * call open, the one that came is closed, and its client connects again later.
 */
export function createConnectionCap(max = MAX_CONNECTIONS) {
  const followed = new Map<ServerHttp2Session, Followed>();

  function idleLongest(): Followed | undefined {
    let found: Followed | undefined;
    for (const connection of followed.values()) {
      if (connection.openStreams > 0) continue;
      if (!found || connection.idleSince < found.idleSince) found = connection;
    }
    return found;
  }

  return {
    /** Counts `session` from its start, until it closes. */
    follow(session: ServerHttp2Session) {
      const connection: Followed = { session, openStreams: 0, idleSince: performance.now() };
      followed.set(session, connection);
      session.once("close", () => followed.delete(session));
      session.on("stream", (stream) => {
        connection.openStreams++;
        stream.once("close", () => {
          if (--connection.openStreams === 0) connection.idleSince = performance.now();
        });
      });
      if (followed.size <= max) return;
      const cut = idleLongest() ?? connection;
      followed.delete(cut.session);
      cut.session.destroy();
    },
  };
}
