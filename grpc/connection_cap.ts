import type { IncomingHttpHeaders, ServerHttp2Session } from "node:http2";

/**
 * Connections the admin plane holds at once, by default: its clients are a few internal systems,
 * each multiplexing its calls and streams over one connection, and health checks and grpcurl,
 * each holding one for a moment. Each holds a file descriptor (five behind the TLS front) out of
 * those the WebSocket plane counts on (open_files.ts keeps this many aside): a tool that opens a
 * connection per call in a loop, without closing them, would otherwise take descriptors until the
 * process had none.
 */
export const MAX_CONNECTIONS = 32;

/**
 * How long a connection past the bound may stay without a call before the cap decides which one
 * goes: one that closes sooner (a port probe) takes no other's place.
 */
export const ROOM_WAIT_MS = 1_000;

interface Followed {
  session: ServerHttp2Session;
  openStreams: number;
  /** When its last stream ended, or it began. */
  idleSince: number;
  /** Whether one of its calls carried the admin token. */
  trusted: boolean;
}

/**
 * Holds the connections to `max` (MAX_CONNECTIONS). One past it, once it makes a call or has
 * lived ROOM_WAIT_MS, closes the connection idle (no call open) the longest, so that connections a
 * tool leaks give way to a health check or a tool that comes next, rather than lock them out until
 * the idle timeout; when every other one has a call open, the one that came is closed, and its
 * client connects again later, unless its call carried the admin token (`trusted` says so of a
 * call's headers) and another connection's never did: that one, open the longest, goes instead.
 * Health and reflection need no token, so without this anyone who can reach the port could hold
 * every place with a health Watch each and lock the token's holders out.
 */
export function createConnectionCap(
  max = MAX_CONNECTIONS,
  trusted: (headers: IncomingHttpHeaders) => boolean = () => false,
) {
  const followed = new Map<ServerHttp2Session, Followed>();

  function idleLongest(): Followed | undefined {
    let found: Followed | undefined;
    for (const connection of followed.values()) {
      if (connection.openStreams > 0) continue;
      if (!found || connection.idleSince < found.idleSince) found = connection;
    }
    return found;
  }

  /** The connection open the longest whose calls never carried the admin token. */
  function untrustedOldest(): Followed | undefined {
    for (const connection of followed.values()) {
      if (!connection.trusted) return connection;
    }
    return undefined;
  }

  return {
    /** Counts `session` from its start, until it closes. */
    follow(session: ServerHttp2Session) {
      const connection: Followed = {
        session,
        openStreams: 0,
        idleSince: performance.now(),
        trusted: false,
      };
      followed.set(session, connection);
      session.once("close", () => followed.delete(session));
      session.on("stream", (stream, headers) => {
        connection.openStreams++;
        if (!connection.trusted && trusted(headers)) connection.trusted = true;
        stream.once("close", () => {
          if (--connection.openStreams === 0) connection.idleSince = performance.now();
        });
      });
      if (followed.size <= max) return;
      // decided at its first call, or once it has lived ROOM_WAIT_MS: the listener's probe
      // (listener.ts, every 2 s) closes at once, and would otherwise cut an idle client each time
      const makeRoom = () => {
        clearTimeout(timer);
        session.off("stream", makeRoom);
        if (!followed.has(session) || followed.size <= max) return;
        // (the listener above has already judged this call's headers)
        const cut = idleLongest() ?? (connection.trusted ? untrustedOldest() : undefined) ??
          connection;
        followed.delete(cut.session);
        cut.session.destroy();
      };
      const timer = setTimeout(makeRoom, ROOM_WAIT_MS);
      session.once("stream", makeRoom);
      session.once("close", () => clearTimeout(timer));
    },
  };
}
