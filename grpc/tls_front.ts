import { logger } from "../observability/log.ts";
import { createRelisten } from "../relisten.ts";

/**
 * TLS for the gRPC plane, terminated by Deno in front of grpc-js. grpc-js's own TLS server
 * (node:http2 createSecureServer as grpc-js sets it up) fails its handshakes under Deno 2.9
 * ("excessive message size" at the client), while Deno's native TLS is solid; so the gRPC
 * server listens in plaintext on a loopback port of its own and this front takes the public
 * port, speaks TLS with ALPN h2, and copies bytes both ways. Deno ends the accept loop of a
 * TLS listener at the first failed accept (EMFILE when the process is out of file descriptors),
 * so the port is opened again as relisten.ts has it: the connections open go on, new ones are
 * refused until then, one warning per episode.
 */
export interface TlsFront {
  port: number;
  /** Stops accepting and cuts every connection. */
  close(): Promise<void>;
}

export function startTlsFront(options: {
  host: string;
  port: number;
  cert: string;
  key: string;
  /** The plaintext gRPC server on 127.0.0.1. */
  upstreamPort: number;
}): TlsFront {
  const open = new Set<Deno.Conn>();

  async function relay(client: Deno.TlsConn) {
    let upstream: Deno.TcpConn | undefined;
    open.add(client);
    try {
      await client.handshake();
      upstream = await Deno.connect({ hostname: "127.0.0.1", port: options.upstreamPort });
      open.add(upstream);
      // Either side ending ends both: a half-open gRPC connection is of no use to anyone.
      await Promise.race([
        client.readable.pipeTo(upstream.writable, { preventClose: true }),
        upstream.readable.pipeTo(client.writable, { preventClose: true }),
      ]);
    } catch {
      // a failed handshake or a reset is the client's business; nothing to report
    } finally {
      for (const conn of [client, upstream]) {
        if (!conn) continue;
        open.delete(conn);
        try {
          conn.close();
        } catch {
          // already closed
        }
      }
    }
  }

  /** The listener open now, or the last one that failed. */
  let listener: Deno.TlsListener;
  /** Its accept loop, awaited by `close`. */
  let accepting: Promise<void> = Promise.resolve();
  let closed = false;

  function listen(port: number): Deno.TlsListener {
    const opened = Deno.listenTls({
      hostname: options.host,
      port,
      cert: options.cert,
      key: options.key,
      alpnProtocols: ["h2"],
    });
    listener = opened;
    accepting = accept(opened);
    return opened;
  }

  async function accept(opened: Deno.TlsListener) {
    try {
      for await (const client of opened) {
        relisten.accepted();
        void relay(client);
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

  const relisten = createRelisten(() => listen(port), {
    name: "gRPC TLS",
    log: logger("grpc"),
  });
  const port = (listen(options.port).addr as Deno.NetAddr).port;

  return {
    port,
    async close() {
      closed = true;
      relisten.stop();
      try {
        listener.close();
      } catch {
        // already closed
      }
      await accepting;
      for (const conn of [...open]) {
        try {
          conn.close();
        } catch {
          // already closed
        }
      }
    },
  };
}
