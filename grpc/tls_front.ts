import type { TlsPair } from "../config_tls.ts";
import { logger } from "../observability/log.ts";
import { createRelisten } from "../relisten.ts";

/**
 * TLS for the gRPC plane, terminated by Deno in front of grpc-js. grpc-js's own TLS server
 * (node:http2 createSecureServer as grpc-js sets it up) fails its handshakes under Deno 2.9
 * ("excessive message size" at the client), while Deno's native TLS is solid; so the gRPC
 * server listens in plaintext on a loopback port of its own and this front takes the public
 * port, speaks TLS with ALPN h2, and copies bytes both ways.
 *
 * The public port is plain TCP, copied to a TLS listener on loopback: Deno cannot end a TLS
 * connection whose handshake has not finished (`close` leaves its socket open until the peer
 * sends or hangs up), so a client that connected and said nothing would hold a descriptor of
 * the process for good, and enough of them would take every descriptor. A connection whose
 * handshake has not finished within TLS_HANDSHAKE_TIMEOUT_MS is cut on the TCP side, which
 * ends the TLS side's handshake too.
 *
 * Deno ends the accept loop of a listener at the first failed accept (EMFILE when the process
 * is out of file descriptors), so each port is opened again as relisten.ts has it: the
 * connections open go on, new ones are refused until then, one warning per episode.
 */
export interface TlsFront {
  port: number;
  /**
   * Serves `cert` and `key` to the connections that come from now on; those open keep the
   * certificate they were made with. Throws as Deno.listenTls does, the pair before kept.
   */
  renew(pair: TlsPair): void;
  /** Stops accepting and cuts every connection. */
  close(): Promise<void>;
}

/**
 * How long a client has to finish its TLS handshake. Before that no HTTP/2 session exists whose
 * keepalive would find a silent client out.
 */
export const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;

export function startTlsFront(options: {
  host: string;
  port: number;
  cert: string;
  key: string;
  /** The plaintext gRPC server on 127.0.0.1. */
  upstreamPort: number;
}): TlsFront {
  const open = new Set<Deno.Conn>();
  /**
   * The relays of the public port, awaited by `close` (each ends once its connections are
   * closed; not so a TLS handshake, which only its peer can end: the relays of the TLS side are
   * not awaited).
   */
  const relays = new Set<Promise<void>>();
  /** Handshakes under way, by the loopback port of their TCP side: each ends its deadline. */
  const handshaking = new Map<number, () => void>();

  /**
   * Copies bytes between `from` and the connection `to` makes, both ways, until either side
   * ends; then closes both. `began` is told of the other connection once it is made.
   */
  function relay(
    from: Deno.Conn,
    to: () => Promise<Deno.Conn>,
    began?: (to: Deno.Conn) => void,
  ): Promise<void> {
    return (async () => {
      let upstream: Deno.Conn | undefined;
      open.add(from);
      try {
        upstream = await to();
        open.add(upstream);
        began?.(upstream);
        // Either side ending ends both: a half-open gRPC connection is of no use to anyone.
        await Promise.race([
          from.readable.pipeTo(upstream.writable, { preventClose: true }),
          upstream.readable.pipeTo(from.writable, { preventClose: true }),
        ]);
      } catch {
        // a failed handshake or a reset is the client's business; nothing to report
      } finally {
        for (const conn of [from, upstream]) if (conn) closeConn(conn);
      }
    })();
  }

  function closeConn(conn: Deno.Conn) {
    open.delete(conn);
    try {
      conn.close();
    } catch {
      // already closed
    }
  }

  /** The loopback TLS listener of one certificate; a renewal opens another. */
  const tlsAcceptor = (pair: TlsPair) =>
    createAcceptor<Deno.TlsConn>("gRPC TLS handshake", (port) =>
      Deno.listenTls({
        hostname: "127.0.0.1",
        port,
        cert: pair.cert,
        key: pair.key,
        alpnProtocols: ["h2"],
      }), (client) =>
      void relay(client, async () => {
        await client.handshake();
        handshaking.get(client.remoteAddr.port)?.();
        return await Deno.connect({ hostname: "127.0.0.1", port: options.upstreamPort });
      }), 0);
  /** The listener new connections are relayed to. */
  let tls = tlsAcceptor(options);
  /**
   * Listeners of certificates renewed since, each closed once the connections relayed to it
   * before the renewal have had their time to be accepted and finish their handshake.
   */
  const retiring = new Map<ReturnType<typeof tlsAcceptor>, ReturnType<typeof setTimeout>>();
  /** Their closes under way, awaited by `close`. */
  const retired = new Set<Promise<void>>();

  const tcp = createAcceptor<Deno.TcpConn>(
    "gRPC TLS",
    (port) => Deno.listen({ hostname: options.host, port }),
    (client) => {
      let side: number | undefined;
      const late = setTimeout(() => closeConn(client), TLS_HANDSHAKE_TIMEOUT_MS);
      const ended = () => {
        clearTimeout(late);
        // only its own entry: a loopback port let go may already be another connection's
        if (side !== undefined && handshaking.get(side) === ended) handshaking.delete(side);
      };
      const relayed = relay(
        client,
        () => Deno.connect({ hostname: "127.0.0.1", port: tls.port }),
        (tlsSide) => {
          side = (tlsSide.localAddr as Deno.NetAddr).port;
          handshaking.set(side, ended);
        },
      ).finally(() => {
        ended();
        relays.delete(relayed);
      });
      relays.add(relayed);
    },
    options.port,
  );

  return {
    port: tcp.port,
    renew(pair) {
      const renewed = tlsAcceptor(pair);
      const before = tls;
      tls = renewed;
      const timer = setTimeout(() => {
        retiring.delete(before);
        const closed = before.close().finally(() => retired.delete(closed));
        retired.add(closed);
      }, TLS_HANDSHAKE_TIMEOUT_MS);
      retiring.set(before, timer);
    },
    async close() {
      await tcp.close();
      for (const [acceptor, timer] of retiring) {
        clearTimeout(timer);
        retired.add(acceptor.close());
      }
      retiring.clear();
      await Promise.all([...retired]);
      await tls.close();
      for (const conn of [...open]) closeConn(conn);
      await Promise.allSettled([...relays]);
    },
  };
}

/**
 * A listener and its accept loop, opened again (relisten.ts) when the loop fails; `take` is
 * handed each connection. Throws as the first `listen` does (a certificate it cannot read).
 */
function createAcceptor<C extends Deno.Conn>(
  name: string,
  listen: (port: number) => Deno.Listener<C>,
  take: (conn: C) => void,
  port: number,
) {
  /** The listener open now, or the last one that failed. */
  let listener: Deno.Listener<C>;
  /** Its accept loop, awaited by `close`. */
  let accepting: Promise<void> = Promise.resolve();
  let closed = false;

  function open(at: number): number {
    const opened = listen(at);
    listener = opened;
    accepting = accept(opened);
    return (opened.addr as Deno.NetAddr).port;
  }

  async function accept(opened: Deno.Listener<C>) {
    try {
      for await (const conn of opened) {
        relisten.accepted();
        take(conn);
      }
    } catch (error) {
      if (closed) return;
      // the connections open go on; this port is closed until it is opened again
      try {
        opened.close();
      } catch {
        // already closed
      }
      relisten.failed(error);
    }
  }

  const relisten = createRelisten(() => open(bound), { name, log: logger("grpc") });
  const bound = open(port);

  return {
    port: bound,
    async close() {
      closed = true;
      relisten.stop();
      try {
        listener.close();
      } catch {
        // already closed
      }
      await accepting;
    },
  };
}
